def fitted_image(path: Path, cfg: Config, size: int) -> torch.Tensor:
    """The image at `path` as uint8 pixels (C, size, size), in `cfg.color`, fitted to the size
    as `cfg.resize` says."""
    fit = v2.Compose([v2.ToImage(), *fit_to_size(cfg.resize, size)])
    return fit(read_image(path, "RGB" if cfg.color == "rgb" else "L"))


def decode(files: list[Path], cfg: Config, size: int) -> torch.Tensor:
    """The images in `files` as `fitted_image`s (N, C, size, size), decoded by parallel threads;
    refused when every pixel of every image has one value: nothing to learn, and a sign that the
    files are not read as meant."""
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as threads:
        images = threads.map(lambda path: fitted_image(path, cfg, size), files)
        images = torch.stack(list(tqdm(images, "decode images", len(files), leave=False)))
    if len(files) > 1 and images.amin() == images.amax():
        raise DataError(
            f"the {len(files)} images decoded (the first: {files[0]}) are one flat value, "
            f"{images.amin().item()} of 255 in every pixel with color={cfg.color}: there is "
            "nothing to learn. Open a few of them: if they look different, save them as 8-bit "
            "PNG or JPEG and run again; if not, replace them."
        )
    return images


def read_images(root: Path, paths: list[str], cfg: Config, size: int) -> torch.Tensor:
    """The images at `paths` (relative to `root`) decoded into memory as uint8 (N, C, size,
    size) by `decode`. Every epoch then runs as fast as on generated
    data; the cost is N x C x size x size bytes of memory.

    The decoded images are kept in `root`/.cache, named by a fingerprint of the files' contents
    and of the settings above, for the next run to load instead of decoding: a changed file or
    setting makes another name, so an outdated cache is never read (and is replaced)."""
    files = [root / path for path in paths]
    which = hashlib.blake2b("\n".join(paths).encode(), digest_size=6).hexdigest()
    contents = hashlib.blake2b(f"{cfg.color} {cfg.resize} {size}".encode(), digest_size=12)
    for path in files:
        contents.update(path.read_bytes())
    cache = root / ".cache" / f"images-{which}-{contents.hexdigest()}.pt"
    if cache.is_file():
        try:
            return torch.load(cache, weights_only=True)
        except Exception:  # a damaged cache is decoded again, never trusted
            pass
    images = decode(files, cfg, size)
    try:
        for outdated in cache.parent.glob(f"images-{which}-*.pt"):
            outdated.unlink(missing_ok=True)
        atomic_save(images, cache)
    except (OSError, UserError):  # a read-only data folder: decoded again by each run
        print(f"      cannot keep the decoded images in {cache.parent}: decoding them each run")
    return images
