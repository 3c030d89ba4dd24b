"""The data: your images under `data_dir`, checked, split into train/val/test and drawn at 32x32.

Two layouts are read, the first that fits:

    data/train/..., data/val/..., data/test/...  your own split (val/ and test/ optional)
    data/...                                     every image, in any sub-folders, split by `seed`

Sub-folder names are ignored: the GAN learns what the images look like, not labels. Every file
is opened once when a new run starts: unreadable files stop the run with their names
(`skip_bad_files=true` skips and counts them). The split (as file lists) is saved as `data.json`
beside the run's checkpoints, so `--resume` and `--test` see exactly the same files, even after
data/ changes.

Images of any size and mode are converted to `color`, resized (or centre-cropped) to 32x32, the
size the DCGAN's layers draw, and decoded into memory once (kept in data_dir/.cache for the next
run); intensities are scaled to [-1, 1], the range of the generator's tanh. `hflip=true` mirrors
training images, which doubles the data of pictures that look as right mirrored (faces, animals,
landscapes: not text or digits); it is off by default. The validation images, which `fd` compares
samples with, stay as they are. The template fills data/ with example images of shapes (`python
src/dataset.py` writes them again) so the project trains on its first run; replace them with your
own.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy
import torch
from PIL import ExifTags, Image, ImageDraw, ImageOps
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from config import Config, UserError
from utils import (
    EpochIndices,
    atomic_save,
    augmentation_rng,
    data_folder,
    data_index,
    fold_range,
    make_loader,
    split_settings,
)

IMAGE_SIZE = 32


{% include "shared/image_files.py" %}


{% include "shared/read_images.py" %}


def image_channels(cfg: Config) -> int:
    """Channels of the images the model sees and draws."""
    return 3 if cfg.color == "rgb" else 1


def model_inputs(cfg: Config) -> dict[str, int]:
    """What the task (`build_task` in model.py) needs to know about the data."""
    return {"channels": image_channels(cfg)}


class Images(Dataset):
    """Images kept in memory as uint8, turned into float tensors in [-1, 1] on access, each with
    the label 0 (the Trainer's batches are pairs; the GAN ignores the label).

    An item is an index, or (epoch, index) from `EpochIndices`: with `hflip`, whether the image
    is mirrored is then drawn from the seed, the epoch and the index, so a resumed run and any
    number of workers mirror the same images as an uninterrupted run.
    """

    def __init__(self, images: torch.Tensor, hflip: bool = False, seed: int = 0) -> None:
        self.images = images  # (N, C, 32, 32) uint8
        self.hflip = hflip
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = item if isinstance(item, tuple) else (0, item)
        image = self.images[index].float().div_(255).sub_(0.5).div_(0.5)  # to [-1, 1]
        if self.hflip:
            with augmentation_rng(self.seed, epoch, index):
                if torch.rand(()) < 0.5:
                    image = image.flip(-1)
        return image, torch.tensor(0)

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per image, to find images that are in two splits."""
        return [
            hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest()
            for image in self.images
        ]


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles (and mirrors)."""
    root, splits = data_folder(cfg), load_index(cfg)["splits"]
    train, val, test = (
        read_images(root, [path for (path,) in splits[name]], cfg, IMAGE_SIZE) for name in SPLITS
    )
    return (
        make_loader(Images(train, cfg.hflip, cfg.seed), cfg, EpochIndices(len(train), cfg.seed)),
        make_loader(Images(val), cfg),
        make_loader(Images(test), cfg),
    )


def load_index(cfg: Config) -> dict[str, Any]:
    """The run's split: saved in its data.json, or scanned for a new run."""
    return data_index(cfg, lambda: scan(cfg), lambda saved: check_saved_files(cfg, saved))


def scan(cfg: Config) -> dict[str, Any]:
    """Find, check and split the images under data_dir."""
    root = data_folder(cfg)
    if (root / "train").is_dir():
        layout = "train/val/test folders"
        found = {
            name: [(path,) for path in image_files(root / name)]
            for name in SPLITS
            if (root / name).is_dir()
        }
    else:
        layout = "every image, sub-folders included"
        found = {"all": [(path,) for path in image_files(root)]}
    empty = [name for name, samples in found.items() if not samples]
    if empty:
        folder = root if empty == ["all"] else root / empty[0]
        raise DataError(
            f"{folder} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))}). Put "
            "your images there, in any sub-folders, or run python src/dataset.py for example "
            "images to start with."
        )
    found, skipped, sizes = check_images(found, root, cfg.skip_bad_files)
    splits = split_samples(found, cfg, group=lambda sample: 0)  # no classes to stratify by
    print(f"data: {root} ({layout}); {sizes_seen(sizes, cfg, IMAGE_SIZE)}")
    if skipped:
        print(f"      skipped {count(len(skipped), 'unreadable file')}: {quote(skipped)}")
    return {
        "splits": {
            name: [[str(path.relative_to(root))] for (path,) in samples]
            for name, samples in splits.items()
        }
    }


def write_example_images(folder: Path, per_class: int = 500, seed: int = 0) -> None:
    """Example data: `per_class` coloured circles, squares and triangles each, of varied sizes
    on varied backgrounds, so a new project trains before your images are in."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("circle", "square", "triangle"):
        for number in range(per_class):
            example_image(rng, name)[0].save(folder / f"{name}_{number:03d}.png")


if __name__ == "__main__":
    refuse_to_mix(Path("data"))
    write_example_images(Path("data"))
    print("wrote 1500 example images into data/: circles, squares and triangles")
