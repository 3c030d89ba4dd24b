{% include "shared/config_image_files.py" %}


@dataclass(frozen=True)
class DataSettings(ImageFileSettings):
    """Your images under data_dir, read as dataset.py describes."""

    image_size: int = option(32, "side of the square images the model sees; a multiple of 8", ge=8)
