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


class Images(Dataset):
    """Images without labels, kept in memory as uint8: each image is its own target."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images  # (N, 1, H, W) uint8

    def __len__(self) -> int:
        return len(self.images)

    def image(self, index: int) -> torch.Tensor:
        return self.images[index].float().div_(255).sub_(0.5).div_(0.5)  # to [-1, 1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.image(index)
        return image, image

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per sample, to find samples that are in two splits."""
        return [
            hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest()
            for image in self.images
        ]


class LabeledImages(Images):
    """Images with their class indices, for the classifier stages."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        super().__init__(images)
        self.labels = labels  # (N,) int64

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(index), self.labels[index]

    def class_counts(self) -> dict[str, int]:
        """How many samples of each class this split holds."""
        counts = torch.bincount(self.labels, minlength=len(CLASSES)).tolist()
        return dict(zip(CLASSES, counts, strict=True))


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
        LabeledImages(images[labeled], labels[labeled]),
        LabeledImages(images[val], labels[val]),
        LabeledImages(test_images, labels[test]),
        cfg,
    )


def labeled_count(num_train: int, cfg: Config) -> int:
    """How many training images the classifier stages may use the labels of."""
    return max(1, round(cfg.labeled_fraction * num_train))


def add_noise(images: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """`images` (uint8) with extra Gaussian noise of `std` (intensities 0-1): a distribution
    shift between training and test, the setting test-time training is meant for."""
    if std == 0:
        return images
    generator = torch.Generator().manual_seed(seed + 1)
    noise = std * 255 * torch.randn(images.shape, generator=generator)
    return (images.float() + noise).clamp(0, 255).round().to(torch.uint8)


{% include "shared/generate_shapes.py" %}
