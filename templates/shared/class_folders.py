def check_classes(classes: tuple[str, ...], root: Path) -> None:
    if len(classes) < 2:
        raise DataError(
            f"found {len(classes)} class{'' if len(classes) == 1 else 'es'} under {root} "
            f"({', '.join(classes) or 'none'}); a classifier needs at least two. Put each class's "
            "images in a folder of its own, e.g. data/cat/ and data/dog/."
        )


def labelled_by_folder(
    folder: Path, classes: tuple[str, ...], required: bool = True, chosen: bool = False
) -> list[tuple[Path, int]]:
    """(file, label) for each image in the class folders under `folder`; each class must have
    images there when `required` (a val/ or test/ folder may lack a class: it is reported). A
    val/ or test/ folder's class folder that is no class of the training split is refused,
    unless the classes were `chosen` by name (its images would silently be left out)."""
    strays = [
        p.name
        for p in sorted(folder.iterdir())
        if p.is_dir() and not hidden(p) and p.name not in classes and image_files(p)
    ]
    if strays and not required and not chosen:
        raise DataError(
            f"{folder} has images of {quote(strays)}, with no such class folder in "
            f"{folder.parent / 'train'}: the model would never learn "
            f"{'that class' if len(strays) == 1 else 'those classes'}, and those images would be "
            "left out without a word. Add training images of them under train/ too, or move "
            "those folders out of the data folder."
        )
    samples = []
    for label, name in enumerate(classes):
        class_folder = folder / name
        if not required and not (class_folder.is_dir() and image_files(class_folder)):
            continue
        if not class_folder.is_dir():
            raise DataError(
                f"the class folder {class_folder} does not exist. Create it with that class's "
                "images, or leave the class out of classes=... ."
            )
        files = image_files(class_folder)
        if not files:
            raise DataError(
                f"the class folder {class_folder} has no images (looked for "
                f"{', '.join(sorted(IMAGE_SUFFIXES))}). Add images of {name!r}, or remove the "
                "folder."
            )
        samples += [(path, label) for path in files]
    return samples
