"""The data: synthetic 32x32 images of shapes, generated from the seed, split into train/val/test.

Each image shows one shape (circle, square, triangle, cross or ring) at a random position, size
and brightness, plus light Gaussian noise: the distribution the generator learns to sample from.
The labels only serve the data report; the GAN never sees them. The set is generated once per
setting and cached in `data_dir`. To train on your own images, load them as a uint8 tensor
`(N, 1, 32, 32)` in `make_dataloaders` instead (other sizes need the layers in model.py changed).
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import DataLoader, Dataset

from config import Config
from utils import TensorBatches, cached, data_folder, make_loaders, split_indices

CLASSES = ("circle", "square", "triangle", "cross", "ring")
IMAGE_SIZE = 32
IN_CHANNELS = 1


def image_channels(cfg: Config) -> int:
    """Channels of the images the model sees and draws."""
    return IN_CHANNELS


def model_inputs(cfg: Config) -> dict[str, int]:
    """What the task (`build_task` in model.py) needs to know about the data."""
    return {"channels": image_channels(cfg)}


{% include "shared/shapes_dataset.py" %}


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles."""
    data = cached(
        data_folder(cfg)
        / f"shapes_n{cfg.num_samples}_size{IMAGE_SIZE}_noise{cfg.noise:g}_seed{cfg.seed}.pt",
        lambda: generate_shapes(cfg.num_samples, IMAGE_SIZE, cfg.noise, cfg.seed),
    )
    # The samples are independent draws, so contiguous ranges are random splits.
    train, val, test = (
        ShapesDataset(data["images"][part], data["labels"][part])
        for part in split_indices(len(data["labels"]), cfg)
    )
    return make_loaders(train, val, test, cfg)


{% include "shared/generate_shapes.py" %}
