@dataclass(frozen=True)
class DataSettings:
    """Built-in synthetic scenes, one shape and a distracting line each (see dataset.py)."""

    num_samples: int = option(2000, "images generated in total, before the splits", ge=3)
    image_size: int = option(64, "side of the square images in pixels; a multiple of 8", ge=8)
    noise: float = option(0.5, "std of the Gaussian pixel noise (intensities are 0-1)", ge=0)
