    smallest_split = math.floor(cfg.num_samples * min(cfg.val_fraction, cfg.test_fraction))
    if smallest_split < 1:
        raise ConfigError(
            f"num_samples={cfg.num_samples} leaves an empty val or test split with val_fraction="
            f"{cfg.val_fraction} and test_fraction={cfg.test_fraction}; raise num_samples."
        )
