    # Data: your images under data_dir, read as dataset.py describes, drawn at 32x32
{% include "shared/config_image_files.py" %}
    hflip: bool = option(True, "augment: mirror left-right half the time (train only)")

