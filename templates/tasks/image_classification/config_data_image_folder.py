{% include "shared/config_image_files.py" %}


@dataclass(frozen=True)
class DataSettings(ImageFileSettings):
    """Your images under data_dir, read as dataset.py describes."""

    classes: str = option("", "class names, comma-separated; empty: the class folders' names")
    image_size: int = option(
        AUTO,
        "side of the square images the model sees; auto: the images' own, 16-64",
        ge=8,
        auto=True,
    )
    random_crop: bool = option(True, "augment: shift by up to 1/8 of the side (train only)")
    hflip: bool = option(
        False, "augment: mirror left-right half the time (train only); not for text, digits..."
    )
    rotation: float = option(0.0, "augment: rotate by up to this many degrees (train only)", ge=0)
    color_jitter: float = option(
        0.0, "augment: vary brightness, contrast (and saturation) by up to this share", ge=0, lt=1
    )
    class_weights: str = option(
        "none", "auto: weight the loss by inverse class frequency", choices=("none", "auto")
    )
    balanced_sampler: bool = option(False, "draw training samples with equal odds per class")
    data_cache: str = option(
        "auto",
        "memory: decode the images once (cached in data_dir/.cache); off: read the files for "
        "every batch; auto: memory if they fit in a quarter of this machine's memory",
        choices=("auto", "memory", "off"),
    )
