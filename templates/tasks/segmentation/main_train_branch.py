    elif cfg.stage == "coarse_to_fine":
        return train_coarse_to_fine(cfg, overrides)
