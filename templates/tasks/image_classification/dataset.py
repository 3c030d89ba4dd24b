"""The data: synthetic images of shapes, generated from the seed, split into train/val/test.

Each image shows one shape (the class) at a random position, size and brightness, plus Gaussian
noise. The set is generated once per setting and cached in `data_dir`, so every run of the same
setting sees exactly the same images. To train on your own data, replace `load_samples` (and
`CLASSES`) and keep `make_dataloaders`' contract: three loaders of `(image, label)` batches.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from config import Config, ConfigError
from utils import EpochSampler, atomic_save, resolve_device, seed_worker

CLASSES = ("circle", "square", "triangle", "cross", "ring")
IN_CHANNELS = 1


class ShapesDataset(Dataset):
    """Images kept in memory as uint8 and turned into normalised float tensors on access."""

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
        """How many samples of each class this split holds."""
        counts = torch.bincount(self.labels, minlength=len(CLASSES)).tolist()
        return dict(zip(CLASSES, counts, strict=True))


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles."""
    images, labels = load_samples(cfg)
    n_val = int(len(labels) * cfg.val_fraction)
    n_test = int(len(labels) * cfg.test_fraction)
    n_train = len(labels) - n_val - n_test
    # The samples are independent draws, so contiguous slices are random splits.
    splits = (slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, None))
    train, val, test = (ShapesDataset(images[s], labels[s]) for s in splits)

    def loader(dataset: Dataset, **order: object) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            pin_memory=resolve_device(cfg.device).type == "cuda",  # faster copies to the GPU
            persistent_workers=cfg.num_workers > 0,
            worker_init_fn=seed_worker,
            # Worker seeds come from the loader's own generator, never from the global one that
            # dropout draws from, so (re)starting workers cannot change the model's randomness.
            generator=torch.Generator().manual_seed(cfg.seed),
            **order,
        )

    return (
        loader(train, sampler=EpochSampler(len(train), cfg.seed)),
        loader(val, shuffle=False),
        loader(test, shuffle=False),
    )


def load_samples(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels for `cfg`, from the cache in `data_dir` or freshly generated."""
    folder = Path(cfg.data_dir)
    if not folder.is_dir():
        raise ConfigError(
            f"data_dir {cfg.data_dir!r} is not a folder (looked for {folder.resolve()}). Run from "
            "the project folder, or point data_dir= at an existing folder."
        )
    path = folder / (
        f"shapes_n{cfg.num_samples}_size{cfg.image_size}_noise{cfg.noise:g}_seed{cfg.seed}.pt"
    )
    if path.is_file():
        try:
            cached = torch.load(path, weights_only=True)
            return cached["images"], cached["labels"]
        except Exception as error:  # a damaged cache is rebuilt, never trusted
            warnings.warn(f"regenerating the damaged data cache {path}: {error}", stacklevel=2)
    images, labels = generate_shapes(cfg.num_samples, cfg.image_size, cfg.noise, cfg.seed)
    atomic_save({"images": images, "labels": labels, "classes": list(CLASSES)}, path)
    return images, labels


def generate_shapes(
    num_samples: int, image_size: int, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw `num_samples` noisy shape images (uint8, (N, 1, S, S)) and their class indices."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(num_samples, 1, 1, generator=generator)

    # Classes take turns, so every contiguous split is balanced to within one sample per class.
    labels = torch.arange(num_samples) % len(CLASSES)
    radius = uniform(0.15, 0.4) * image_size
    # Centres keep the whole shape inside the image.
    cx = radius + uniform(0, 1) * (image_size - 1 - 2 * radius)
    cy = radius + uniform(0, 1) * (image_size - 1 - 2 * radius)
    brightness = uniform(0.5, 1.0)

    grid = torch.arange(image_size, dtype=torch.float32)
    dx = (grid.view(1, 1, -1) - cx).abs()  # (N, 1, S) -> broadcast to (N, S, S)
    dy = (grid.view(1, -1, 1) - cy).abs()
    distance = (dx**2 + dy**2).sqrt()
    bar = radius / 3
    masks = torch.stack(
        [
            distance <= radius,  # circle
            torch.maximum(dx, dy) <= 0.85 * radius,  # square of similar area
            (dy <= radius) & (dx <= ((grid.view(1, -1, 1) - cy) + radius) / 2),  # triangle
            ((dx <= bar) & (dy <= radius)) | ((dy <= bar) & (dx <= radius)),  # cross
            (distance <= radius) & (distance >= radius / 2),  # ring
        ]
    )  # (classes, N, S, S)
    shape = masks[labels, torch.arange(num_samples)].float()
    pixels = shape * brightness + noise * torch.randn(shape.shape, generator=generator)
    images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)
    return images, labels
