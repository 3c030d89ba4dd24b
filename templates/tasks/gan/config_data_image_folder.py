    # Data: your images under data_dir, read as dataset.py describes, drawn at 32x32
    resize: str = option(
        "resize",
        "resize: scale the whole image to 32x32 (aspect ratio changes); center_crop: scale the "
        "short side to 32 and cut the middle out",
        choices=("resize", "center_crop"),
    )
    color: str = option("rgb", "rgb or grey: every image is converted to it", choices=COLORS)
    skip_bad_files: bool = option(False, "skip unreadable image files (and count them) instead")
    hflip: bool = option(True, "augment: mirror left-right half the time (train only)")

