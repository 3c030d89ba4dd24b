{% if cookiecutter.dataset == "mnist" %}
"""The data: MNIST, 70,000 handwritten digits (28×28, grey, 10 classes), through torchvision.
{% else %}
"""The data: CIFAR-10, 60,000 photos (32×32, colour, 10 classes), through torchvision.
{% endif %}

The first run downloads the dataset into `data_dir` with torchvision and converts it once into one
tensor file there, which later runs load in a moment; offline, the run stops with what to do. The
official test set is the test split, untouched until --test. The validation split is drawn from
the official training set per class by `seed` and `val_fraction` (or `folds`). Exact copies of an
image are dropped before splitting (a copy in two splits would reward memorising), and the split,
with the training split's normalisation statistics, is saved as `data.json` beside the run's
checkpoints.
{% if cookiecutter.dataset == "mnist" %}
Augmentation, on the training split only: `random_crop` (no flips: a mirrored digit is another
symbol).
{% else %}
Augmentation, on the training split only: `random_crop` and `hflip`.
{% endif %}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets

from config import Config, UserError
from utils import (
    EpochIndices,
    TensorBatches,
    cached,
    data_folder,
    data_index,
    fold_range,
    make_loader,
    mixed_seed,
    split_settings,
)

{% if cookiecutter.dataset == "mnist" %}
NAME = "MNIST"
CLASSES = tuple(str(digit) for digit in range(10))
IN_CHANNELS = 1
IMAGE_SIZE = 28
{% else %}
NAME = "CIFAR-10"
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IN_CHANNELS = 3
IMAGE_SIZE = 32
{% endif %}
STATS_IMAGES = 5000  # training images the normalisation statistics are measured on, at most
CACHE = "{{ cookiecutter.dataset }}.pt"  # the converted tensors, in data_dir


class DataError(UserError):
    """Data that cannot be had: not downloaded, and no way to download it."""


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
        "image_size": IMAGE_SIZE,
    }


{% include "tasks/image_classification/image_batches.py" %}


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles."""
    data = cached(data_folder(cfg) / CACHE, lambda: download(data_folder(cfg)))
    index = data_index(cfg, lambda: scan(cfg, data), lambda saved: None)
{% if cookiecutter.dataset == "mnist" %}
    augment = Augment(shift=4 * cfg.random_crop)
{% else %}
    augment = Augment(shift=4 * cfg.random_crop, hflip=cfg.hflip)
{% endif %}
    train, val, test = (
        ImageBatches(
            data[f"{source}_images"][rows],
            data[f"{source}_labels"][rows],
            CLASSES,
            index["mean"],
            index["std"],
            augment if name == "train" else None,
            cfg.seed,
        )
        for name, source, rows in (
            ("train", "train", torch.tensor(index["train"])),
            ("val", "train", torch.tensor(index["val"])),
            ("test", "test", torch.tensor(index["test"])),
        )
    )
    return (
        make_loader(train, cfg, EpochIndices(len(train), cfg.seed)),
        make_loader(val, cfg),
        make_loader(test, cfg),
    )


def download(folder: Path) -> dict[str, torch.Tensor]:
    """Both official sets as uint8 tensors (N, C, H, W) and int64 labels, downloaded if needed."""
    data = {}
    for source in ("train", "test"):
        try:
{% if cookiecutter.dataset == "mnist" %}
            dataset = datasets.MNIST(folder, train=source == "train", download=True)
            images = dataset.data.unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
{% else %}
            dataset = datasets.CIFAR10(folder, train=source == "train", download=True)
            images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2)  # NHWC -> NCHW
{% endif %}
        except (URLError, RuntimeError, OSError) as error:
            reason = str(error).strip().splitlines()[0]
            raise DataError(
                f"{NAME} is not in {folder} and could not be downloaded ({reason}). Connect to "
                f"the internet for the first run (torchvision keeps the files in {folder}), or "
                f"copy them there from a machine that has them. Without {NAME}, generate the "
                "project with dataset=image_folder and train on image files you have."
            ) from None
        data[f"{source}_images"] = images.contiguous()
        data[f"{source}_labels"] = torch.as_tensor(dataset.targets, dtype=torch.long)
    return data


def scan(cfg: Config, data: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Drop exact copies, draw the validation split from the training set, and measure the
    training split's per-channel mean and std."""
    seen: set[bytes] = set()
    kept: dict[str, list[int]] = {}
    for source in ("train", "test"):  # train first: a test image also in it is dropped
        keys = image_keys(data[f"{source}_images"])
        kept[source] = [i for i, key in enumerate(keys) if not (key in seen or seen.add(key))]
    # The validation split is drawn per class (stratified), so that every class is in it.
    shuffler = torch.Generator().manual_seed(cfg.seed)
    pool, labels = torch.tensor(kept["train"]), data["train_labels"][kept["train"]]
    train_parts, val_parts = [], []
    for label in range(len(CLASSES)):
        members = pool[labels == label]
        members = members[torch.randperm(len(members), generator=shuffler)]
        if cfg.folds > 1:
            start, stop = fold_range(len(members), cfg)
        else:
            start, stop = 0, round(len(members) * cfg.val_fraction)
        val_parts.append(members[start:stop])
        train_parts.append(torch.cat([members[:start], members[stop:]]))
    train, val = torch.cat(train_parts), torch.cat(val_parts)
    if not len(val) or not len(train):
        raise DataError(f"{NAME} leaves an empty split with {split_settings(cfg)}; change them.")
    measured = train[:: max(1, len(train) // STATS_IMAGES)][:STATS_IMAGES]
    pixels = data["train_images"][measured].float().div(255).transpose(0, 1).flatten(1)
    mean, std = pixels.mean(dim=1), pixels.std(dim=1).clamp_min(1e-3)
    dropped = len(data["train_labels"]) + len(data["test_labels"]) - len(seen)
    print(
        f"data: {NAME} in {data_folder(cfg)}; {dropped} exact copies dropped; normalised with "
        f"the training split's mean {[round(m, 3) for m in mean.tolist()]} and std "
        f"{[round(s, 3) for s in std.tolist()]}"
    )
    return {
        "train": sorted(train.tolist()),
        "val": sorted(val.tolist()),
        "test": kept["test"],
        "mean": mean.tolist(),
        "std": std.tolist(),
    }
