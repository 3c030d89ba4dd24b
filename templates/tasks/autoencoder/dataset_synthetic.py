"""The data: synthetic images of shapes, generated from the seed, split into train/val/test.

Each image shows one shape at a random position, size and brightness, plus Gaussian noise. The
set is generated once per setting and cached in `data_dir`. The pretrain stage sees the images
only: each image is its own target. The finetune and scratch stages see labels, but only those of
the first `labeled_fraction` of the training images, as if labelling were expensive; validation
and test keep all their labels, so the classifiers are measured on the same images.
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import DataLoader, Dataset

from config import Config
from utils import cached, data_folder, make_loaders, split_indices

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
    return {"num_classes": len(class_names(cfg)), "channels": image_channels(cfg)}


{% include "tasks/autoencoder/images_dataset.py" %}


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders of `cfg.stage`; only the training loader shuffles.

    stage=all starts with pretraining, so its loaders are those of pretrain.
    """
    data = cached(
        data_folder(cfg)
        / f"shapes_n{cfg.num_samples}_size{cfg.image_size}_noise{cfg.noise:g}_seed{cfg.seed}.pt",
        lambda: generate_shapes(cfg.num_samples, cfg.image_size, cfg.noise, cfg.seed),
    )
    # The samples are independent draws, so contiguous ranges are random splits.
    train, val, test = split_indices(len(data["labels"]), cfg)
    images, labels = data["images"], data["labels"]
    test_images = add_noise(images[test], cfg.test_noise, cfg.seed)
    if cfg.stage in ("all", "pretrain"):
        return make_loaders(Images(images[train]), Images(images[val]), Images(test_images), cfg)
    labeled = train[: labeled_count(len(train), cfg)]
    return make_loaders(
        LabeledImages(images[labeled], labels[labeled], CLASSES, drawn_from=len(train)),
        LabeledImages(images[val], labels[val], CLASSES),
        LabeledImages(test_images, labels[test], CLASSES),
        cfg,
    )


{% include "shared/generate_shapes.py" %}
