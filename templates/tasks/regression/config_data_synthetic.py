@dataclass(frozen=True)
class DataSettings:
    """The data: y = x . weights + 2 + noise, seed 004's y = 3x + 2 + noise for one feature."""

    num_samples: int = option(6000, "samples generated in total, before the splits", ge=3)
    num_features: int = option(1, "inputs per sample; true weights 3, -2, 1.33, ...", ge=1)
    noise: float = option(2.0, "std of the Gaussian noise added to y", ge=0)
