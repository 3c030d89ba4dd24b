class SegmentationDataset(Dataset):
    """Images and masks kept in memory as uint8, turned into tensors the model takes on access."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        self.images = images  # (N, C, H, W) uint8
        self.masks = masks  # (N, H, W) uint8 class indices

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].float().div_(255).sub_(0.5).div_(0.5)  # to [-1, 1]
        return image, self.masks[index].long()

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per sample, to find samples that are in two splits."""
        return [
            hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest()
            for image in self.images
        ]


def check_sizes(cfg: Config) -> None:
    """The U-Net halves its input three times, so every side it sees is a multiple of 8."""
    sides = {"image_size": cfg.image_size}
    if cfg.stage in ("coarse_to_fine", "coarse", "fine"):
        sides["image_size / coarse_factor"] = cfg.image_size / cfg.coarse_factor
        sides["crop_size"] = cfg.crop_size
    for name, side in sides.items():
        if side % 8:
            raise ConfigError(
                f"{name} must be a multiple of 8 (the U-Net halves it three times), got "
                f"{side:g}; e.g. image_size=64 coarse_factor=4 crop_size=32."
            )
    if cfg.crop_size > cfg.image_size:
        raise ConfigError(
            f"crop_size ({cfg.crop_size}) is larger than the images (image_size="
            f"{cfg.image_size}); a crop must fit inside them."
        )


def for_stage(
    images: torch.Tensor, masks: torch.Tensor, cfg: Config
) -> tuple[torch.Tensor, torch.Tensor]:
    """What `cfg.stage` trains on: the images shrunk (coarse), crops around the shapes (fine),
    or the images as they are."""
    if cfg.stage == "coarse":
        return shrink(images, masks, cfg.coarse_factor)
    if cfg.stage == "fine":
        return crop_around_shapes(images, masks, cfg.crop_size, cfg.seed)
    return images, masks


def shrink(
    images: torch.Tensor, masks: torch.Tensor, factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images averaged down by `factor`; a coarse pixel is the shape's if any of its pixels is,
    so the coarse model errs towards a region that holds all of the shape."""
    small = F.avg_pool2d(images.float(), factor).round().to(torch.uint8)
    return small, F.max_pool2d(masks.unsqueeze(1).float(), factor).squeeze(1).to(torch.uint8)


def crop_corner(
    centre_y: float, centre_x: float, crop_size: int, image_size: int
) -> tuple[int, int]:
    """Top-left corner of the crop of side `crop_size` centred as near `centre` as fits."""
    top = round(centre_y - crop_size / 2)
    left = round(centre_x - crop_size / 2)
    limit = image_size - crop_size
    return min(max(top, 0), limit), min(max(left, 0), limit)


def crop_around_shapes(
    images: torch.Tensor, masks: torch.Tensor, crop_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fine stage's samples: a crop around each shape, its centre shifted by up to an eighth
    of the crop (drawn from `seed`), as a coarse model's imperfect region would be."""
    generator = torch.Generator().manual_seed(seed)
    shifts = (torch.rand(len(masks), 2, generator=generator) - 0.5) * (crop_size / 4)
    image_size = masks.shape[-1]
    crops, crop_masks = [], []
    for image, mask, (dy, dx) in zip(images, masks, shifts.tolist(), strict=True):
        rows, cols = mask.nonzero(as_tuple=True)
        if len(rows):
            centre = ((rows.min() + rows.max()).item() / 2, (cols.min() + cols.max()).item() / 2)
        else:
            centre = (image_size / 2, image_size / 2)
        top, left = crop_corner(centre[0] + dy, centre[1] + dx, crop_size, image_size)
        crops.append(image[:, top : top + crop_size, left : left + crop_size])
        crop_masks.append(mask[top : top + crop_size, left : left + crop_size])
    return torch.stack(crops), torch.stack(crop_masks)
