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


def class_names(cfg: Config) -> tuple[str, ...]:
    """The classes, in the order of their mask values."""
    return CLASSES


def image_channels(cfg: Config) -> int:
    """Channels of the images the model sees."""
    return IN_CHANNELS


def model_inputs(cfg: Config) -> dict[str, int]:
    """What the task (`build_task` in model.py) needs to know about the data."""
    return {"num_classes": len(class_names(cfg)), "channels": image_channels(cfg)}


{% include "tasks/segmentation/segmentation_dataset.py" %}


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders of `cfg.stage`; only the training loader shuffles."""
    check_sizes(cfg)
    data = cached(
        data_folder(cfg)
        / f"scenes_n{cfg.num_samples}_size{cfg.image_size}_noise{cfg.noise:g}_seed{cfg.seed}.pt",
        lambda: generate_scenes(cfg.num_samples, cfg.image_size, cfg.noise, cfg.seed),
    )
    images, masks = for_stage(data["images"], data["masks"], cfg)
    # The samples are independent draws, so contiguous ranges are random splits.
    train, val, test = (
        SegmentationDataset(images[part], masks[part]) for part in split_indices(len(masks), cfg)
    )
    return make_loaders(train, val, test, cfg)


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
