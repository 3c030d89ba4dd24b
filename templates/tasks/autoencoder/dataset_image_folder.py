"""The data: your images under `data_dir`, labelled and not, checked and split into train/val/test.

    data/cat/1.jpg, data/dog/2.png, ...        labelled images, one folder per class
    data/train/cat/..., data/val/..., data/test/...  or your own split (val/ and test/ optional)
    data/unlabeled/...                         images without labels, in any sub-folders

The labelled images are split per class (stratified) by `seed`; the validation and test splits
are always labelled, so the classifiers are measured on them. The pretrain stage learns from the
images alone: every training image, labelled or not, is its own target. The finetune and scratch
stages see the labelled training images, or `labeled_fraction` of each class's.

Every file is opened once when a new run starts: unreadable files stop the run with their names
(`skip_bad_files=true` skips and counts them), and so does a class folder without images. The split
(as file lists) and the class names are saved as `data.json` beside the run's checkpoints, so
`--resume` and `--test` see exactly the same files, even after data/ changes. Images of any size
and mode are converted to `color`, resized (or centre-cropped) to `image_size`, decoded into memory
once (kept in data_dir/.cache for the next run) and scaled to [-1, 1], the range of the decoder's
tanh. The template fills data/ with example images of three shapes, a few labelled and many not
(`python src/dataset.py` writes them again); replace them with your own.
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
    atomic_save,
    data_folder,
    data_index,
    fold_range,
    make_loaders,
    saved_data_index,
    split_settings,
)

UNLABELED = "unlabeled"  # the folder of images without labels


{% include "shared/image_files.py" %}


{% include "shared/class_folders.py" %}


{% include "shared/read_images.py" %}


def class_names(cfg: Config) -> tuple[str, ...]:
    """The classes, in label order: the class folders' sorted names."""
    saved = saved_data_index(cfg)
    if saved is not None:
        return tuple(saved["classes"])
    root = data_folder(cfg)
    folders = root / "train" if (root / "train").is_dir() else root
    return tuple(
        sorted(
            p.name
            for p in folders.iterdir()
            if p.is_dir() and not hidden(p) and p.name not in (UNLABELED, *SPLITS)
        )
    )


def image_channels(cfg: Config) -> int:
    """Channels of the images the model sees."""
    return 3 if cfg.color == "rgb" else 1


def model_inputs(cfg: Config) -> dict[str, int]:
    """What the task (`build_task` in model.py) needs to know about the data."""
    return {"num_classes": len(class_names(cfg)), "channels": image_channels(cfg)}


{% include "tasks/autoencoder/images_dataset.py" %}


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders of `cfg.stage`; only the training loader shuffles.

    stage=all starts with pretraining, so its loaders are those of pretrain.
    """
    index = load_index(cfg)
    root, splits, classes = data_folder(cfg), index["splits"], tuple(index["classes"])

    def labeled(samples: list[list[Any]], drawn_from: int | None = None) -> LabeledImages:
        images = read_images(root, [path for path, _ in samples], cfg, cfg.image_size)
        labels = torch.tensor([label for _, label in samples], dtype=torch.long)
        return LabeledImages(images, labels, classes, drawn_from)

    val, test = labeled(splits["val"]), labeled(splits["test"])
    test.images = add_noise(test.images, cfg.test_noise, cfg.seed)
    if cfg.stage in ("all", "pretrain"):
        paths = [path for path, _ in splits["train"] + splits[UNLABELED]]
        train = read_images(root, paths, cfg, cfg.image_size)
        return make_loaders(Images(train), Images(val.images), Images(test.images), cfg)
    train = labeled(labeled_share(splits["train"], cfg), len(splits["train"]))
    return make_loaders(train, val, test, cfg)


def labeled_share(samples: list[list[Any]], cfg: Config) -> list[list[Any]]:
    """The first `labeled_fraction` of each class's training images (already shuffled by the
    split), so that every class keeps some labels however small the share."""
    by_class: dict[int, list[list[Any]]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    return [s for group in by_class.values() for s in group[: labeled_count(len(group), cfg)]]


def load_index(cfg: Config) -> dict[str, Any]:
    """The run's split and classes: saved in its data.json, or scanned for a new run."""
    return data_index(cfg, lambda: scan(cfg), lambda saved: check_saved_files(cfg, saved))


def scan(cfg: Config) -> dict[str, Any]:
    """Find, check, label and split the images under data_dir."""
    root = data_folder(cfg)
    if not image_files(root):
        raise DataError(
            f"{root} holds no images. Put them in one folder per class (e.g. {root}/cat/1.jpg, "
            f"{root}/dog/2.jpg) and any without labels in {root}/{UNLABELED}/, or run python "
            "src/dataset.py for example images to start with."
        )
    classes = class_names(cfg)
    check_classes(classes, root)
    if (root / "train").is_dir():
        layout = "train/val/test folders, one folder per class in each"
        found = {
            name: labelled_by_folder(root / name, classes, required=name == "train")
            for name in SPLITS
            if (root / name).is_dir()
        }
    else:
        layout = "one folder per class"
        found = {"all": labelled_by_folder(root, classes)}
    unlabeled = root / UNLABELED
    found[UNLABELED] = [(path, -1) for path in image_files(unlabeled)] if unlabeled.is_dir() else []
    found, skipped, sizes = check_images(found, root, cfg.skip_bad_files)
    extra = found.pop(UNLABELED)
    splits = split_samples(found, cfg)
    print(
        f"data: {root} ({layout}); {len(classes)} classes: {', '.join(classes)}; "
        f"{count(len(extra), 'unlabeled image')} for pretraining\n"
        f"      {sizes_seen(sizes, cfg, cfg.image_size)}"
    )
    if skipped:
        print(f"      skipped {count(len(skipped), 'unreadable file')}: {quote(skipped)}")
    relative = {
        name: [[str(path.relative_to(root)), label] for path, label in samples]
        for name, samples in splits.items()
    }
    relative[UNLABELED] = [[str(path.relative_to(root)), label] for path, label in extra]
    return {"classes": list(classes), "splits": relative}


def write_example_images(
    folder: Path, per_class: int = 100, unlabeled: int = 0, seed: int = 0
) -> None:
    """Example data: `per_class` labelled coloured circles, squares and triangles each, in one
    folder per class, and `unlabeled` more of them in unlabeled/, as if labelling were costly."""
    rng = random.Random(seed)
    shapes = ("circle", "square", "triangle")
    for name in shapes:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for number in range(per_class):
            example_image(rng, name)[0].save(folder / name / f"{name}_{number:03d}.png")
    for number in range(unlabeled):
        (folder / UNLABELED).mkdir(parents=True, exist_ok=True)
        image = example_image(rng, shapes[number % len(shapes)])[0]
        image.save(folder / UNLABELED / f"{number:04d}.png")


if __name__ == "__main__":
    refuse_to_mix(Path("data"))
    write_example_images(Path("data"), per_class=100, unlabeled=900)
    print(
        "wrote 100 labelled example images per class into data/circle, data/square and "
        "data/triangle, and 900 without labels into data/unlabeled"
    )
