    # Data: your images under data_dir, read as dataset.py describes
    image_size: int = option(32, "side of the square images the model sees; a multiple of 8", ge=8)
{% include "shared/config_image_files.py" %}

