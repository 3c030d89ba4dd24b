@dataclass(frozen=True)
class DataSettings:
    """The built-in synthetic shapes (see dataset.py)."""

    num_samples: int = option(6000, "images generated in total, before the splits", ge=3)
    image_size: int = option(32, "side of the square images in pixels", ge=16)
    noise: float = option(0.4, "std of the Gaussian pixel noise (intensities are 0-1)", ge=0)
