"""The data: your images and their masks under `data_dir`, checked and split into train/val/test.

Two layouts are read, the first that fits:

    data/train/images/..., data/train/masks/..., data/val/..., data/test/...  your own split
    data/images/a.jpg, data/masks/a.png, ...       one pair per name, split by `seed`

A mask has the name of its image (any image suffix; PNG keeps the values exact) and holds a class
index per pixel: 0 for the first name in `classes`, 1 for the second, and so on. It is a grey
(L), palette (P) or 16-bit image of the image's size; a palette mask's indices are the values,
whatever colours the palette shows. Every file is opened once when a new run starts: images
without masks (and masks without images), masks of another size, in colour or with values beyond
`classes` stop the run with their names, and so do unreadable files (`skip_bad_files=true` skips
and counts those); the share of each class's pixels is reported. The split (as file lists) is
saved as `data.json` beside the run's checkpoints, so `--resume` and `--test` see exactly the
same files.

Images are converted to `color` and fitted to `image_size` (the masks with nearest-neighbour
sampling, so no value between two classes appears), decoded into memory once (and kept in
data_dir/.cache for the next run), and scaled to [-1, 1]. `hflip=true` mirrors a training image and
its mask together (off by default: wrong where a class means a side, such as a left lung). The
coarse and fine stages of `stage=coarse_to_fine` see the same images shrunk, or cropped around the
labelled pixels. The template fills data/ with example scenes (`python src/dataset.py` writes them
again) so the project trains on its first run; replace them with your own.
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
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from tqdm import tqdm

from config import Config, ConfigError, UserError
from utils import (
    EpochIndices,
    EpochSampler,
    atomic_save,
    augmentation_rng,
    data_folder,
    data_index,
    fold_range,
    make_loader,
    split_settings,
)

MASK_MODES = frozenset({"L", "P", "1", "I;16", "I"})  # one value per pixel


{% include "shared/image_files.py" %}


{% include "shared/read_images.py" %}


def class_names(cfg: Config) -> tuple[str, ...]:
    """The classes, in the order of their mask values: `classes`."""
    classes = tuple(name.strip() for name in cfg.classes.split(","))
    if len(classes) < 2 or "" in classes or len(set(classes)) != len(classes):
        raise ConfigError(
            f"classes={cfg.classes!r} must name at least two distinct classes, separated by "
            "commas, in the order of their mask values: e.g. classes=background,road,car for "
            "masks of 0, 1 and 2."
        )
    return classes


def image_channels(cfg: Config) -> int:
    """Channels of the images the model sees."""
    return 3 if cfg.color == "rgb" else 1


def model_inputs(cfg: Config) -> dict[str, int]:
    """What the task (`build_task` in model.py) needs to know about the data."""
    return {"num_classes": len(class_names(cfg)), "channels": image_channels(cfg)}


{% include "tasks/segmentation/segmentation_dataset.py" %}


class MirroredScenes(SegmentationDataset):
    """Training scenes whose image and mask are mirrored together half the time.

    An item is (epoch, index) from `EpochIndices`: whether it is mirrored is drawn from the seed,
    the epoch and the index, so a resumed run and any number of workers see the same images.
    """

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, seed: int) -> None:
        super().__init__(images, masks)
        self.seed = seed

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = item if isinstance(item, tuple) else (0, item)
        image, mask = super().__getitem__(index)
        with augmentation_rng(self.seed, epoch, index):
            if torch.rand(()) < 0.5:
                return image.flip(-1), mask.flip(-1)
        return image, mask


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders of `cfg.stage`; only the training loader shuffles (and
    mirrors, with `hflip`)."""
    check_sizes(cfg)
    root, splits = data_folder(cfg), load_index(cfg)["splits"]
    scenes = []
    for name in SPLITS:
        images = read_images(root, [image for image, _ in splits[name]], cfg, cfg.image_size)
        masks = read_masks(root, [mask for _, mask in splits[name]], cfg)
        scenes.append(for_stage(images, masks, cfg))
    train, val, test = scenes
    if cfg.hflip:
        training, sampler = MirroredScenes(*train, cfg.seed), EpochIndices(len(train[0]), cfg.seed)
    else:
        training, sampler = SegmentationDataset(*train), EpochSampler(len(train[0]), cfg.seed)
    return (
        make_loader(training, cfg, sampler),
        make_loader(SegmentationDataset(*val), cfg),
        make_loader(SegmentationDataset(*test), cfg),
    )


def read_masks(root: Path, paths: list[str], cfg: Config) -> torch.Tensor:
    """The masks at `paths` as uint8 class indices (N, image_size, image_size), fitted to the
    size as their images are, but with nearest-neighbour sampling (v2 does that for a Mask)."""
    fit = v2.Compose(fit_to_size(cfg.resize, cfg.image_size))
    return torch.stack([fit(mask_values(root / path))[0].to(torch.uint8) for path in paths])


def mask_values(path: Path) -> tv_tensors.Mask:
    """The class indices of the mask at `path`, as stored (a palette mask's indices), (1, H, W)."""
    mask = read_image(path, "")
    return tv_tensors.Mask(v2.functional.pil_to_tensor(mask).to(torch.int64))


def load_index(cfg: Config) -> dict[str, Any]:
    """The run's split: saved in its data.json, or scanned for a new run."""
    return data_index(cfg, lambda: scan(cfg), lambda saved: check_saved_files(cfg, saved))


def scan(cfg: Config) -> dict[str, Any]:
    """Find, pair, check and split the images and masks under data_dir."""
    root, classes = data_folder(cfg), class_names(cfg)
    if (root / "train").is_dir():
        layout = "train/val/test folders, each with images/ and masks/"
        found = {name: pairs(root / name) for name in SPLITS if (root / name).is_dir()}
    else:
        layout = "images/ and masks/"
        found = {"all": pairs(root)}
    found, skipped, sizes = check_images(found, root, cfg.skip_bad_files)
    pixels = check_masks(found, root, classes)
    splits = split_samples(found, cfg, group=lambda sample: 0)  # one label per pixel, not image
    shares = ", ".join(f"{name} {share:.1%}" for name, share in zip(classes, pixels, strict=True))
    print(
        f"data: {root} ({layout}); pixels per class: {shares}\n"
        f"      {sizes_seen(sizes, cfg, cfg.image_size)}"
    )
    if skipped:
        print(f"      skipped {count(len(skipped), 'unreadable file')}: {quote(skipped)}")
    relative = {
        name: [
            [str(image.relative_to(root)), str(mask.relative_to(root))] for image, mask in samples
        ]
        for name, samples in splits.items()
    }
    return {"splits": relative}


def pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(image, mask) for each image under folder/images and the mask of the same name (its path
    without the suffix) under folder/masks."""
    images_folder, masks_folder = folder / "images", folder / "masks"
    if not images_folder.is_dir() or not masks_folder.is_dir():
        raise DataError(
            f"{folder} needs an images/ and a masks/ folder: {images_folder}/a.jpg is segmented "
            f"by {masks_folder}/a.png, whose pixels hold class indices. Put your data there, or "
            "run python src/dataset.py for example scenes to start with."
        )
    images = {key(path, images_folder): path for path in image_files(images_folder)}
    masks = {key(path, masks_folder): path for path in image_files(masks_folder)}
    if not images:
        raise DataError(f"{images_folder} holds no images; add them with their masks.")
    lonely = [str(images[name]) for name in images.keys() - masks.keys()]
    lonely += [str(masks[name]) for name in masks.keys() - images.keys()]
    if lonely:
        raise DataError(
            f"{count(len(lonely), 'file')} under {folder} {'has' if len(lonely) == 1 else 'have'} "
            f"no partner: {quote(sorted(lonely))}. Every image needs a mask of the same name "
            "(the suffix may differ) and every mask an image; add or remove them."
        )
    return [(images[name], masks[name]) for name in sorted(images)]


def key(path: Path, folder: Path) -> Path:
    """What pairs an image with its mask: the path under its folder, without the suffix."""
    return path.relative_to(folder).with_suffix("")


def check_masks(
    found: dict[str, list[tuple[Path, Path]]], root: Path, classes: tuple[str, ...]
) -> list[float]:
    """Every mask must hold one class index per pixel for every pixel of its image; returns the
    share of each class among the pixels of all masks."""
    problems, counts = [], torch.zeros(len(classes), dtype=torch.long)
    for image_path, mask_path in (pair for samples in found.values() for pair in samples):
        name = mask_path.relative_to(root)
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            size, mode, mask_size = upright_size(image), mask.mode, upright_size(mask)
        if mode not in MASK_MODES:
            problems.append(f"{name} is {mode}, not one value per pixel")
            continue
        if mask_size != size:
            width, height = mask_size
            problems.append(f"{name} is {width}x{height}, its image {size[0]}x{size[1]}")
            continue
        values = mask_values(mask_path).flatten()
        if values.max() >= len(classes):
            problems.append(f"{name} holds the value {values.max().item()}")
            continue
        counts += torch.bincount(values, minlength=len(classes))
    if problems:
        raise DataError(
            f"{count(len(problems), 'mask')} cannot be used: {quote(problems)}. A mask is a grey "
            f"or palette PNG of its image's size whose pixels are class indices, 0 to "
            f"{len(classes) - 1} for classes={','.join(classes)}; name every value in classes= "
            "(255, which marks 'ignore' in some datasets, must be mapped to a class first)."
        )
    absent = [name for name, pixels in zip(classes, counts.tolist(), strict=True) if not pixels]
    if absent:
        them = "it" if len(absent) == 1 else "them"
        raise DataError(
            f"no mask under {root} holds a pixel of {quote(absent)} (value "
            f"{', '.join(str(classes.index(name)) for name in absent)}), so the model cannot "
            f"learn {them}, and its scores would be undefined. Check that the masks mark {them}, "
            f"or leave {them} out of classes= (the values that remain must be 0, 1, ...)."
        )
    return (counts / counts.sum()).tolist()


def write_example_images(folder: Path, per_class: int = 100, seed: int = 0) -> None:
    """Example data: `per_class` scenes each of a coloured circle, square and triangle on a
    varied background, with masks marking the shape (1) and the background (0)."""
    rng = random.Random(seed)
    for kind in ("images", "masks"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for name in ("circle", "square", "triangle"):
        for number in range(per_class):
            image, mask = example_image(rng, name)
            image.save(folder / "images" / f"{name}_{number:03d}.jpg", quality=90)
            mask.save(folder / "masks" / f"{name}_{number:03d}.png")


if __name__ == "__main__":
    refuse_to_mix(Path("data"))
    write_example_images(Path("data"))
    print("wrote 300 example scenes into data/images, with their masks in data/masks")
