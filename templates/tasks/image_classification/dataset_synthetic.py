"""The data: synthetic images of shapes, generated from the seed, split into train/val/test.

Each image shows one shape (the class) at a random position, size and brightness, plus Gaussian
noise. The set is generated once per setting and cached in `data_dir`, so every run of the same
setting sees exactly the same images. To train on your own data, load your images and labels in
`make_dataloaders` instead (and set `CLASSES`); keep its contract: three loaders of
`(image, label)` batches.
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import DataLoader, Dataset

from config import Config
from utils import TensorBatches, cached, data_folder, make_loaders, split_indices

CLASSES = ("circle", "square", "triangle", "cross", "ring")
IN_CHANNELS = 1


def class_names(cfg: Config) -> tuple[str, ...]:
    """The classes, in label order."""
    return CLASSES


def image_channels(cfg: Config) -> int:
    """Channels of the images the model sees."""
    return IN_CHANNELS


def model_inputs(cfg: Config) -> dict[str, int]:
    """What the task (`build_task` in model.py) needs to know about the data."""
    return {
        "num_classes": len(class_names(cfg)),
        "channels": image_channels(cfg),
        "image_size": cfg.image_size,
    }


{% include "shared/shapes_dataset.py" %}


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles."""
    data = cached(
        data_folder(cfg)
        / f"shapes_n{cfg.num_samples}_size{cfg.image_size}_noise{cfg.noise:g}_seed{cfg.seed}.pt",
        lambda: generate_shapes(cfg.num_samples, cfg.image_size, cfg.noise, cfg.seed),
    )
    # The samples are independent draws, so contiguous ranges are random splits.
    train, val, test = (
        ShapesDataset(data["images"][part], data["labels"][part])
        for part in split_indices(len(data["labels"]), cfg)
    )
    return make_loaders(train, val, test, cfg)


{% include "shared/generate_shapes.py" %}
