    loss: str = option(
        "cross_entropy",
        "cross_entropy, or focal: well-classified samples count less (hard or rare classes)",
        choices=LOSSES,
    )
    focal_gamma: float = option(
        2.0,
        "focal: how strongly well-classified samples are discounted; 0: cross-entropy",
        ge=0,
        only=("loss", "focal"),
    )
    label_smoothing: float = option(
        0.0, "share of each target spread evenly over all classes (0.1 is common)", ge=0, lt=1
    )
