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
from utils import cached, data_folder, make_loaders, split_slices

CLASSES = ("circle", "square", "triangle", "cross", "ring")
IMAGE_SIZE = 32
IN_CHANNELS = 1


class ShapesDataset(Dataset):
    """Images kept in memory as uint8 and turned into float tensors in [-1, 1] on access, the
    range of the generator's tanh output."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images  # (N, 1, H, W) uint8
        self.labels = labels  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].float().div_(255).sub_(0.5).div_(0.5)  # to [-1, 1]
        return image, self.labels[index]

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per sample, to find samples that are in two splits."""
        return [
            hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest()
            for image in self.images
        ]

    def class_counts(self) -> dict[str, int]:
        """How many samples of each kind of shape this split holds."""
        counts = torch.bincount(self.labels, minlength=len(CLASSES)).tolist()
        return dict(zip(CLASSES, counts, strict=True))


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles."""
    data = cached(
        data_folder(cfg)
        / f"shapes_n{cfg.num_samples}_size{IMAGE_SIZE}_noise{cfg.noise:g}_seed{cfg.seed}.pt",
        lambda: generate_shapes(cfg.num_samples, IMAGE_SIZE, cfg.noise, cfg.seed),
    )
    # The samples are independent draws, so contiguous slices are random splits.
    train, val, test = (
        ShapesDataset(data["images"][part], data["labels"][part])
        for part in split_slices(len(data["labels"]), cfg)
    )
    return make_loaders(train, val, test, cfg)


{% include "shared/generate_shapes.py" %}
