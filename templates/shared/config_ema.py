    ema: float = option(
        0.0,
        "decay of an average of the weights (EMA), updated after every step, that validation, "
        "best.pt and --test use, e.g. 0.999; 0: off",
        ge=0,
        lt=1,
    )
