@dataclass(frozen=True)
class ImageFileSettings:
    """How image files are read: fitted to the size the model sees, converted, or skipped."""

    resize: str = option(
        "resize",
        "resize: stretch each image to the square the model sees (aspect ratio changes); "
        "center_crop: scale its short side to the square's and cut the middle out",
        choices=("resize", "center_crop"),
    )
    color: str = option("rgb", "rgb or grey: every image is converted to it", choices=COLORS)
    skip_bad_files: bool = option(False, "skip unreadable image files (and count them) instead")
