{% include "shared/config_image_files.py" %}


@dataclass(frozen=True)
class DataSettings(ImageFileSettings):
    """Your images and masks under data_dir, read as dataset.py describes."""

    classes: str = option(
        "background,shape", "names of the mask values 0, 1, ..., comma-separated: background first"
    )
    image_size: int = option(64, "side of the square images the model sees; a multiple of 8", ge=8)
    hflip: bool = option(
        False, "augment: mirror image and mask left-right (train only); not where left is a class"
    )
