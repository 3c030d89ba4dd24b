{% include "shared/config_image_files.py" %}


@dataclass(frozen=True)
class DataSettings(ImageFileSettings):
    """Your images under data_dir, read as dataset.py describes, drawn at 32x32."""

    hflip: bool = option(
        False, "augment: mirror left-right half the time (train only); not for text, digits..."
    )
