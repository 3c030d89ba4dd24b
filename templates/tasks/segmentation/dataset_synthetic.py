"""The data: synthetic scenes to segment, generated from the seed, split into train/val/test.

Each grayscale image holds one shape (a circle, square, triangle, cross or ring) at a random
position, size and brightness, most also a thin bright line that is *not* to be segmented, all
under strong Gaussian noise. The mask marks the shape's pixels. The set is generated once per
setting and cached in `data_dir`. The coarse and fine stages of `stage=coarse_to_fine` see the
same images shrunk, or cropped around the shape. To train on your own data, load your images and
masks in `make_dataloaders` instead (and set `CLASSES`); keep its contract: three loaders of
`(image, mask)` batches, masks holding a class index per pixel.
"""

from __future__ import annotations

import hashlib

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from config import Config, ConfigError
from utils import cached, data_folder, make_loaders, split_indices

CLASSES = ("background", "shape")  # mask values 0 and 1
IN_CHANNELS = 1


class SegmentationDataset(Dataset):
    """Images and masks kept in memory as uint8, turned into tensors the model takes on access."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        self.images = images  # (N, 1, H, W) uint8
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


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders of `cfg.stage`; only the training loader shuffles."""
    check_sizes(cfg)
    data = cached(
        data_folder(cfg)
        / f"scenes_n{cfg.num_samples}_size{cfg.image_size}_noise{cfg.noise:g}_seed{cfg.seed}.pt",
        lambda: generate_scenes(cfg.num_samples, cfg.image_size, cfg.noise, cfg.seed),
    )
    images, masks = data["images"], data["masks"]
    if cfg.stage == "coarse":
        images, masks = shrink(images, masks, cfg.coarse_factor)
    elif cfg.stage == "fine":
        images, masks = crop_around_shapes(images, masks, cfg.crop_size, cfg.seed)
    # The samples are independent draws, so contiguous ranges are random splits.
    train, val, test = (
        SegmentationDataset(images[part], masks[part]) for part in split_indices(len(masks), cfg)
    )
    return make_loaders(train, val, test, cfg)


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


def generate_scenes(
    num_samples: int, image_size: int, noise: float, seed: int
) -> dict[str, torch.Tensor]:
    """Draw `num_samples` noisy scenes (uint8, (N, 1, S, S)) and their masks ((N, S, S), 1 on
    the shape)."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(num_samples, 1, 1, generator=generator)

    kinds = torch.arange(num_samples) % 5  # every kind of shape in turn
    radius = uniform(0.1, 0.22) * image_size
    # Centres keep the whole shape inside the image.
    cx = radius + uniform(0, 1) * (image_size - 1 - 2 * radius)
    cy = radius + uniform(0, 1) * (image_size - 1 - 2 * radius)
    shape = shape_masks(kinds, radius, cx, cy, image_size)

    # The distractor: a line one or two pixels wide at a random angle, as bright as a shape.
    angle, offset = uniform(0, torch.pi), uniform(-0.3, 0.3) * image_size
    grid = torch.arange(image_size, dtype=torch.float32) - image_size / 2
    across = grid.view(1, 1, -1) * torch.cos(angle) + grid.view(1, -1, 1) * torch.sin(angle)
    line = ((across - offset).abs() <= 0.7) & (uniform(0, 1) < 0.7)

    pixels = torch.maximum(shape * uniform(0.5, 1.0), line * uniform(0.5, 1.0))
    pixels = pixels + noise * torch.randn(pixels.shape, generator=generator)
    images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)
    return {"images": images, "masks": shape.to(torch.uint8)}


{% include "shared/shape_masks.py" %}
