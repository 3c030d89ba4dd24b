@dataclass(frozen=True)
class DataSettings:
    """The built-in synthetic shapes, 32x32 (see dataset.py); the labels go unused."""

    num_samples: int = option(6000, "images generated in total, before the splits", ge=3)
    noise: float = option(0.05, "std of the Gaussian pixel noise (intensities are 0-1)", ge=0)
