def read_images(root: Path, paths: list[str], cfg: Config, size: int) -> torch.Tensor:
    """The images at `paths` (relative to `root`) in memory as uint8 (N, C, size, size), in
    `cfg.color`, fitted to the size as `cfg.resize` says. Reading once per run makes every epoch
    as fast as with generated data; the cost is N x C x size x size bytes of memory."""
    fit = v2.Compose([v2.ToImage(), *fit_to_size(cfg.resize, size)])
    mode = "RGB" if cfg.color == "rgb" else "L"
    progress = tqdm(paths, "read images", leave=False)
    return torch.stack([fit(read_image(root / path, mode)) for path in progress])
