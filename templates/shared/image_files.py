IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
SHOWN = 5  # file names quoted in an error message, at most
SPLITS = ("train", "val", "test")


class DataError(UserError):
    """Data that cannot be used as they are: missing, empty, unreadable or without a label."""


def image_files(folder: Path) -> list[Path]:
    """The image files in `folder` and its sub-folders, in a fixed order."""
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not hidden(p)
    )


def refuse_to_mix(folder: Path) -> None:
    """Stop `python src/dataset.py` from writing example images beside images already in
    `folder`: they would join that dataset without a word (and replace files of their names)."""
    found = image_files(folder) if folder.is_dir() else []
    if found:
        raise SystemExit(
            f"{folder} already holds images ({found[0]}, ...), which the example images would "
            "join. Move them away first to write the example images."
        )


# What PIL raises for a file it cannot read: damaged or not an image (OSError, which includes
# UnidentifiedImageError; SyntaxError, ValueError), or so many pixels that decoding it could
# exhaust memory, as a decompression bomb would (DecompressionBombError).
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def hidden(path: Path) -> bool:
    return path.name.startswith(".")


def read_image(path: Path, mode: str) -> Image.Image:
    """The image at `path` upright (as its EXIF orientation says) and on white where it is
    transparent, as viewers show it, in `mode` ("RGB" or "L", from any bit depth, see
    `eight_bit`; "" for the values as stored: a mask's); a file that was readable when the run
    started and is not any more stops the run with its name."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return on_white(eight_bit(image, path)).convert(mode) if mode else image
    except UNREADABLE as error:
        raise DataError(
            f"cannot read the image {path}: {error}. It passed the check when the run started, "
            "so it was changed since. Put a readable copy in its place and continue with "
            "`python src/main.py --resume auto` (the last checkpoint is intact), or remove it and "
            "start a new run."
        ) from None


def eight_bit(image: Image.Image, path: Path) -> Image.Image:
    """`image` with 8 bits a channel: 16-bit integer greys (16-bit PNG, TIFF; PIL may open
    them as 32-bit) scaled from 0..65535, float greys from 0..1. PIL's own conversion clips them
    at 255, so that a 16-bit image turned white; 32-bit values have no known white."""
    if not (image.mode.startswith("I") or image.mode == "F"):
        return image
    pixels = numpy.asarray(image, dtype=numpy.float64)
    top = 1.0 if image.mode == "F" else 65535
    if pixels.min() < 0 or pixels.max() > top:
        raise DataError(
            f"{path} holds {image.mode} pixels from {pixels.min():g} to {pixels.max():g}, outside "
            f"0..{top:g}, so what is black and what is white is unknown. Save it with 8 or 16 "
            "bits a channel (unsigned), or float pixels in 0..1."
        )
    return Image.fromarray(numpy.round(pixels * (255 / top)).astype(numpy.uint8))


def on_white(image: Image.Image) -> Image.Image:
    """`image` laid on a white background where it is transparent. Dropping the alpha channel
    instead shows the colour stored under transparent pixels, often one colour everywhere: an
    icon's shape, drawn by its alpha, was lost."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return image
    white = Image.new("RGBA", image.size, "white")
    return Image.alpha_composite(white, image.convert("RGBA"))


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the opened `image` as `read_image` turns it: swapped by a quarter turn
    in its EXIF (not looked for in PNGs, where finding it would decode the whole image)."""
    exif = image.getexif() if image.format != "PNG" else {}
    turned = exif.get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
    return image.size[::-1] if turned else image.size


def check_images(
    found: dict[str, list[tuple[Any, ...]]], root: Path, skip_bad_files: bool
) -> tuple[dict[str, list[tuple[Any, ...]]], list[str], Counter]:
    """Open every file of every sample (a sample is a tuple; its paths are its files): the
    samples whose files are all readable, the names of the bad files, and the image sizes seen."""
    bad: list[str] = []
    sizes: Counter = Counter()
    kept: dict[str, list[tuple[Any, ...]]] = {}
    for name, samples in found.items():
        kept[name] = []
        for sample in samples:
            readable = True
            for path in (part for part in sample if isinstance(part, Path)):
                try:
                    with Image.open(path) as image:
                        if path == sample[0]:
                            sizes[upright_size(image)] += 1
                        image.verify()
                except UNREADABLE as error:
                    bad.append(f"{path.relative_to(root)} ({error})")
                    readable = False
            if readable:
                kept[name].append(sample)
    if bad and not skip_bad_files:
        raise DataError(
            f"{count(len(bad), 'file')} under {root} cannot be read as "
            f"{'an image' if len(bad) == 1 else 'images'}: {quote(bad)}. Replace or "
            "remove them, or pass skip_bad_files=true to train without them (they are counted)."
        )
    if not any(kept.values()):
        raise DataError(f"no readable image under {root}; add images in one of the layouts above.")
    return kept, bad, sizes


def check_saved_files(cfg: Config, saved: dict[str, Any]) -> None:
    """Stop when files of a run's saved split (a sample lists its files and its label) have gone
    from data_dir."""
    root = data_folder(cfg)
    listed = [part for split in saved["splits"].values() for sample in split for part in sample]
    gone = [path for path in listed if isinstance(path, str) and not (root / path).is_file()]
    if gone:
        are = "is" if len(gone) == 1 else "are"
        raise DataError(
            f"{count(len(gone), 'file')} of this run's split {are} gone from {root}: "
            f"{quote(gone)}. Put them back, or start a new run to split the data again."
        )


def split_samples(
    found: dict[str, list[tuple[Any, ...]]],
    cfg: Config,
    group: Callable[[tuple[Any, ...]], Any] = lambda sample: sample[1],
) -> dict[str, list[tuple[Any, ...]]]:
    """train/val/test: the folders given, and the missing splits drawn from the training data,
    per `group` (a sample's class: stratified) and from `seed`: test by test_fraction, then val
    by val_fraction, or with folds=k the fold's k-th of the rest (a val/ folder then joins the
    pool)."""
    pool = found.pop("all", None) or found.pop("train")
    if cfg.folds > 1:
        pool += found.pop("val", [])
    splits: dict[str, list[tuple[Any, ...]]] = {name: [] for name in SPLITS}
    shuffler = random.Random(cfg.seed)
    for label in sorted({group(sample) for sample in pool}):
        members = [sample for sample in pool if group(sample) == label]
        shuffler.shuffle(members)
        n_val = 0 if "val" in found else round(len(members) * cfg.val_fraction)
        if "test" not in found:
            count = round(len(members) * cfg.test_fraction)
            splits["test"] += members[:count]
            members = members[count:]
        start, stop = fold_range(len(members), cfg) if cfg.folds > 1 else (0, n_val)
        splits["val"] += members[start:stop]
        splits["train"] += members[:start] + members[stop:]
    for name in found:
        splits[name] = found[name]
    for name, samples in splits.items():
        fraction = {"val": cfg.val_fraction, "test": cfg.test_fraction}.get(name, 0)
        sizes = Counter(group(sample) for sample in pool)  # of each class: drawn per class
        by_fraction = fraction > 0 and (name == "test" or cfg.folds == 1)
        if not samples and by_fraction and len(sizes) > 1 and max(sizes.values()) * fraction < 0.5:
            raise DataError(
                f"the {name} split is empty: it takes {name}_fraction={fraction} of each class's "
                f"images, and none of the {len(sizes)} classes has enough for one (the largest "
                f"has {max(sizes.values())}; {math.ceil(0.5 / fraction)} or more are "
                f"needed). Add images to the classes, or give your own {name}/ folder."
            )
        if not samples:
            raise DataError(
                f"the {name} split is empty: {len(pool)} images are too few for "
                f"{split_settings(cfg)}. Add images, or change those settings."
            )
    return splits


def fit_to_size(resize: str, size: int) -> list[v2.Transform]:
    """`resize`: scale the whole image to size x size; `center_crop`: scale its short side to
    size and cut out the middle."""
    if resize == "resize":
        return [v2.Resize((size, size), antialias=True)]
    return [v2.Resize(size, antialias=True), v2.CenterCrop(size)]


{% if cookiecutter.task == "gan" %}
{% set upscale_hint = ": slower training for nothing more to learn." %}
{% else %}
{% set upscale_hint = "; a smaller image_size trains faster, and often better." %}
{% endif %}
def sizes_seen(sizes: Counter, cfg: Config, size: int) -> str:
    """The image sizes found (the commonest three) and how they are brought to `size`."""
    shown = ", ".join(f"{w}x{h}" for (w, h), _ in sizes.most_common(3))
    more = ", ..." if len(sizes) > 3 else ""
    text = (
        f"{count(len(sizes), 'image size')} ({shown}{more}), {cfg.resize} to {size}x{size}, "
        f"{cfg.color}"
    )
    side = median_side(sizes)
    if 2 * side < size:  # blown up: slower, and no more to learn from
        text += (
            f"\n      note: the images' median side is {side} pixels, so they are blown up "
            f"{size / side:.0f} times{{ upscale_hint }}"
        )
    return text


def median_side(sizes: Counter) -> int:
    """The median of the images' longer sides, from their (width, height) counts."""
    sides = sorted(max(size) for size in sizes.elements())
    return sides[len(sides) // 2]


def count(number: int, thing: str) -> str:
    """`1 file`, `2 files`."""
    return f"{number} {thing}{'' if number == 1 else 's'}"


def quote(items: list[Any]) -> str:
    """The first few items of a list for a message, with how many more there are."""
    shown = ", ".join(str(item) for item in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def example_image(rng: random.Random, shape: str) -> tuple[Image.Image, Image.Image]:
    """An example picture for data/ (one coloured circle, square or triangle of random size and
    place on a random dark background, of random size) and its mask (1 on the shape)."""
    width, height = rng.randint(40, 80), rng.randint(40, 80)
    background = tuple(rng.randint(0, 110) for _ in range(3))
    image, mask = Image.new("RGB", (width, height), background), Image.new("L", (width, height))
    radius = rng.uniform(0.25, 0.4) * min(width, height)
    x, y = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
    fill = tuple(rng.randint(140, 255) for _ in range(3))
    box = (x - radius, y - radius, x + radius, y + radius)
    for draw, colour in ((ImageDraw.Draw(image), fill), (ImageDraw.Draw(mask), 1)):
        if shape == "circle":
            draw.ellipse(box, fill=colour)
        elif shape == "square":
            draw.rectangle(box, fill=colour)
        else:
            corners = [(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)]
            draw.polygon(corners, fill=colour)
    return image, mask
