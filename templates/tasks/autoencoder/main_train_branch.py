    elif cfg.stage != "pretrain":  # the stages that train a classifier
        return train_stages(cfg, overrides)
