"""The data: your images under `data_dir`, checked, split into train/val/test and transformed.

Three layouts are read, the first that fits:

    data/cat/1.jpg, data/dog/2.png, ...          one folder per class, split by `seed`
    data/train/cat/..., data/val/..., data/test/...  your own split (val/ and test/ optional)
    data/cat_1.jpg, data/dog_2.png, ...          one folder, labelled by file name (classes=cat,dog)

Every file is opened once when a new run starts: unreadable files stop the run with their names
(`skip_bad_files=true` skips and counts them), and so does a class folder without images or a file
name that names no class or several. The split (as file lists), the class names and the
normalisation statistics of the training split are saved as `data.json` beside the run's
checkpoints, so `--resume` and `--test` see exactly the same files, even after data/ changes.

Images of any size and mode are converted to `color` and resized (or centre-cropped) to
`image_size` (auto: the images' median side, rounded up to a multiple of 8, from 16 to 64
pixels, saved in data.json), and decoded once into memory (`data_cache`, `read_images`): a batch
is gathered by index and augmented as a whole (`Augment`), on the training split only. The template
fills data/ with example images of three shapes (`python src/dataset.py` writes them again) so
the project trains on its first run; replace them with your own.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy
import torch
from PIL import ExifTags, Image, ImageDraw, ImageOps
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from config import AUTO, Config, UserError
from utils import (
    EpochIndices,
    TensorBatches,
    atomic_save,
    data_folder,
    data_index,
    fold_range,
    make_loader,
    mixed_seed,
    saved_data_index,
    split_settings,
)

STATS_IMAGES = 2000  # training images the normalisation statistics are computed on, at most


{% include "shared/image_files.py" %}


{% include "shared/class_folders.py" %}


{% include "shared/read_images.py" %}


{% include "tasks/image_classification/image_batches.py" %}


def class_names(cfg: Config) -> tuple[str, ...]:
    """The classes, in label order: `classes` if given, else the class folders' sorted names."""
    saved = saved_data_index(cfg)
    if saved is not None:
        return tuple(saved["classes"])
    if cfg.classes:
        return parse_classes(cfg.classes)
    root = data_folder(cfg)
    folders = root / "train" if (root / "train").is_dir() else root
    return tuple(sorted(p.name for p in folders.iterdir() if p.is_dir() and not hidden(p)))


def image_channels(cfg: Config) -> int:
    """Channels of the images the model sees."""
    return 3 if cfg.color == "rgb" else 1


def model_inputs(cfg: Config) -> dict[str, Any]:
    """What the task (`build_task` in model.py) needs to know about the data; with
    `class_weights=auto`, the loss's weight of each class (see `class_weights`)."""
    weights = class_weights(train_class_counts(cfg)) if cfg.class_weights == "auto" else None
    return {
        "num_classes": len(class_names(cfg)),
        "channels": image_channels(cfg),
        "image_size": load_index(cfg)["image_size"],
        "class_weights": weights,
    }


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles (or balances), and
    augments. The images are decoded once into memory (`read_images`) when `data_cache` says
    so, or read from their files by each batch."""
    index = load_index(cfg)
    root, size = data_folder(cfg), index["image_size"]
    in_memory = keep_in_memory(cfg, index)
    cfg = replace(cfg, num_workers=loader_workers(cfg, in_memory))
    augment = Augment(size // 8 * cfg.random_crop, cfg.hflip, cfg.rotation, cfg.color_jitter)
    train, val, test = (
        ImageBatches(
            read_images(root, [path for path, _ in samples], cfg, size)
            if in_memory
            else ImageFiles([root / path for path, _ in samples], cfg, size),
            torch.tensor([label for _, label in samples], dtype=torch.long),
            tuple(index["classes"]),
            index["mean"],
            index["std"],
            augment if name == "train" else None,
            cfg.seed,
        )
        for name, samples in ((name, index["splits"][name]) for name in SPLITS)
    )
    weights = None
    if cfg.balanced_sampler:
        counts = torch.bincount(train.labels, minlength=len(train.classes)).float()
        weights = 1 / counts[train.labels]
    sampler = EpochIndices(len(train), cfg.seed, weights)
    return (
        make_loader(train, cfg, sampler),
        make_loader(val, cfg),
        make_loader(test, cfg),
    )


def keep_in_memory(cfg: Config, index: dict[str, Any]) -> bool:
    """`data_cache`: decode the images once into memory (memory; auto: if they take at most a
    quarter of this machine's memory), or read their files for every batch (off); says which."""
    samples = sum(len(split) for split in index["splits"].values())
    needed = samples * image_channels(cfg) * index["image_size"] ** 2
    try:
        budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume 16 GB
        budget = 4 * 2**30
    in_memory = cfg.data_cache == "memory" or (cfg.data_cache == "auto" and needed <= budget)
    if in_memory:
        how = f"{samples} images decoded once into memory ({needed / 2**20:.1f} MB)"
    else:
        workers = f"{loader_workers(cfg, False)} DataLoader worker processes (num_workers)"
        if cfg.num_workers == 0:
            cores = min(8, os.cpu_count() or 1)
            workers = f"the main process (num_workers=0: try num_workers={cores}, a core each)"
        how = f"the images are read from their files for every batch, by {workers}"
        if cfg.data_cache == "auto":
            how += (
                f": decoded they would take {needed / 2**30:.1f} GB, more than a quarter of "
                "this machine's memory (data_cache=memory decodes them anyway)"
            )
    print(f"      data_cache={cfg.data_cache}: {how}")
    return in_memory


def loader_workers(cfg: Config, in_memory: bool) -> int:
    """`num_workers`; auto: none for images in memory (a batch is one gather), a core each (at
    most 8) for images read from their files."""
    if cfg.num_workers != AUTO:
        return cfg.num_workers
    return 0 if in_memory else min(8, os.cpu_count() or 1)


class ImageFiles:
    """Image files read for every batch (data_cache=off), each as `read_images` decodes it: a
    tensor of indices gathers their stacked uint8 pixels."""

    def __init__(self, files: list[Path], cfg: Config, size: int) -> None:
        self.files, self.cfg, self.size = files, cfg, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, indices: torch.Tensor) -> torch.Tensor:
        files = [self.files[index] for index in indices.tolist()]
        return torch.stack([fitted_image(path, self.cfg, self.size) for path in files])

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per file's contents, to find the same image in two splits."""
        return [hashlib.blake2b(path.read_bytes(), digest_size=16).digest() for path in self.files]


def prediction_inputs(cfg: Config, paths: list[Path]) -> tuple[list[str], torch.Tensor]:
    """The image files at `paths` (files, or folders searched for images) and the images as the
    model sees them in evaluation, with the run's normalisation statistics."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise DataError(f"{path} does not exist; give image files or folders of images.")
        files += image_files(path) if path.is_dir() else [path]
    if not files:
        raise DataError(f"no image files in {', '.join(map(str, paths))}.")
    index = load_index(cfg)
    images = []
    for path in files:
        try:
            images.append(fitted_image(path, cfg, index["image_size"]))
        except DataError:
            raise DataError(f"{path} cannot be read as an image; leave it out.") from None
    labels = torch.zeros(len(files), dtype=torch.long)
    dataset = ImageBatches(torch.stack(images), labels, (), index["mean"], index["std"])
    return [str(path) for path in files], dataset[torch.arange(len(files))][0]


def train_class_counts(cfg: Config) -> list[int]:
    """Samples per class in the training split, for `class_weights=auto`."""
    index = load_index(cfg)
    counts = Counter(label for _, label in index["splits"]["train"])
    return [counts[label] for label in range(len(index["classes"]))]


def load_index(cfg: Config) -> dict[str, Any]:
    """The run's split, classes and statistics: saved in its data.json, or scanned for a new run."""
    return data_index(cfg, lambda: scan(cfg), lambda saved: check_saved_files(cfg, saved))


def scan(cfg: Config) -> dict[str, Any]:
    """Find, check, label and split the images under data_dir; measure the training split."""
    root = data_folder(cfg)
    presplit = {name: root / name for name in SPLITS if (root / name).is_dir()}
    if "train" in presplit:
        layout = "train/val/test folders, one folder per class in each"
        classes = class_names(cfg)
        found = {
            name: labelled_by_folder(folder, classes, name == "train", bool(cfg.classes))
            for name, folder in presplit.items()
        }
    elif any(p.is_dir() and not hidden(p) for p in root.iterdir()):
        layout = "one folder per class"
        classes = class_names(cfg)
        found = {"all": labelled_by_folder(root, classes)}
    elif not image_files(root):
        raise DataError(
            f"{root} holds no images. Put them in one folder per class (e.g. {root}/cat/1.jpg, "
            f"{root}/dog/2.jpg), or run python src/dataset.py for example images to start with."
        )
    else:
        layout = "one folder, labelled by file name"
        if not cfg.classes:
            raise DataError(
                f"{root} has image files but no class folders, so the labels must come from the "
                "file names: name the classes, e.g. classes=cat,dog (a file's label is the class "
                "its name contains), or move the images into one folder per class."
            )
        classes = parse_classes(cfg.classes)
        found = {"all": labelled_by_name(root, classes)}
    check_classes(classes, root)
    found, skipped, sizes = check_images(found, root, cfg.skip_bad_files)
    size = typical_size(sizes) if cfg.image_size == AUTO else cfg.image_size
    splits = split_samples(found, cfg)
    for label, name in enumerate(classes):
        if not any(sample_label == label for _, sample_label in splits["train"]):
            raise DataError(
                f"the class {name!r} has no image in the training split, so the model cannot "
                "learn it. Add images of it, or leave it out with classes=... ."
            )
    relative = {name: [[str(p.relative_to(root)), y] for p, y in s] for name, s in splits.items()}
    index = {"classes": list(classes), "splits": relative, "image_size": size}
    index["mean"], index["std"] = channel_statistics(root, relative["train"], cfg, size)
    report(cfg, root, layout, index, skipped, sizes)
    return index


def typical_size(sizes: Counter) -> int:
    """image_size=auto: the images' median side rounded up to a multiple of 8, from 16 (the
    least that the CNN learns well from) to 64 (more is slow on a CPU: set image_size)."""
    return min(64, max(16, -(-median_side(sizes) // 8) * 8))


def parse_classes(text: str) -> tuple[str, ...]:
    """`classes=cat,dog` as a tuple, refusing empty or repeated names."""
    classes = tuple(name.strip() for name in text.split(","))
    if "" in classes or len(set(classes)) != len(classes):
        raise DataError(
            f"classes={text!r} must be distinct names separated by commas, e.g. classes=cat,dog."
        )
    return classes


def labelled_by_name(folder: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    """(file, label) where each file name contains exactly one class name as a word."""
    samples, undecided = [], []
    for path in image_files(folder):
        words = set(re.split(r"[^a-z0-9]+", path.stem.lower()))
        labels = [label for label, name in enumerate(classes) if name.lower() in words]
        if len(labels) == 1:
            samples.append((path, labels[0]))
        else:
            undecided.append(path)
    if undecided:
        raise DataError(
            f"{count(len(undecided), 'file name')} decide no label: each must contain exactly one "
            f"of the classes {', '.join(classes)} as a word, and these contain none or several: "
            f"{quote(undecided)}. Rename or remove them (a picture of a cat and a dog needs a "
            "decision: which class is it?)."
        )
    return samples


def channel_statistics(
    root: Path, samples: list[list[Any]], cfg: Config, size: int
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of (up to STATS_IMAGES) training images, as the model sees them
    at `size` pixels."""
    step = max(1, len(samples) // STATS_IMAGES)
    chosen = samples[::step][:STATS_IMAGES]
    images = decode([root / path for path, _ in chosen], cfg, size)
    pixels = images.float().div(255).transpose(0, 1).flatten(1)
    std = pixels.std(dim=1).clamp_min(1e-3)  # a constant channel must not divide by zero
    return pixels.mean(dim=1).tolist(), std.tolist()


def report(
    cfg: Config,
    root: Path,
    layout: str,
    index: dict[str, Any],
    skipped: list[str],
    sizes: Counter,
) -> None:
    """Print what was found and how it will be used."""
    classes, mean, std = index["classes"], index["mean"], index["std"]
    print(
        f"data: {root} ({layout}); {len(classes)} classes: {', '.join(classes)}\n"
        f"      {sizes_seen(sizes, cfg, index['image_size'])}; normalised with the training "
        f"split's mean {[round(m, 3) for m in mean]} and std {[round(s, 3) for s in std]}"
    )
    if cfg.image_size == AUTO:
        print(
            f"      image_size=auto: {index['image_size']}, the images' median side "
            f"({median_side(sizes)}) rounded up to a multiple of 8, from 16 to 64"
        )
    mirrored = ["hflip=true"] * cfg.hflip + [f"rotation={cfg.rotation:g}"] * bool(cfg.rotation)
    if mirrored:
        print(
            f"      {' and '.join(mirrored)}: training images are mirrored or turned. Right for "
            "photos of things; wrong where that changes the class (digits, letters, text, "
            "left/right): turn it off there."
        )
    if skipped:
        skipped_files = count(len(skipped), "unreadable file")
        print(f"      skipped {skipped_files} (skip_bad_files=true): {quote(skipped)}")
    counts = Counter(label for _, label in index["splits"]["train"])
    if cfg.class_weights == "auto":
        weights = class_weights([counts[label] for label in range(len(classes))])
        pairs = zip(classes, weights.tolist(), strict=True)
        shown = ", ".join(f"{name} {weight:.2f}" for name, weight in pairs)
        print(f"      class_weights=auto: the loss weighs {shown}")
    if cfg.balanced_sampler:
        print("      balanced_sampler=true: each training draw picks every class equally often")


def class_weights(counts: list[int]) -> torch.Tensor:
    """Inverse-frequency weights that average 1 over the training samples."""
    counts_tensor = torch.tensor(counts, dtype=torch.float)
    return counts_tensor.sum() / (len(counts) * counts_tensor)


def write_example_images(folder: Path, per_class: int = 150, seed: int = 0) -> None:
    """Example data in the class-folder layout: coloured circles, squares and triangles of
    varied sizes on varied backgrounds, so a new project trains before your data are in."""
    rng = random.Random(seed)
    for name in ("circle", "square", "triangle"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for number in range(per_class):
            example_image(rng, name)[0].save(folder / name / f"{name}_{number:03d}.png")


if __name__ == "__main__":
    refuse_to_mix(Path("data"))
    write_example_images(Path("data"))
    print("wrote 150 example images per class into data/circle, data/square and data/triangle")
