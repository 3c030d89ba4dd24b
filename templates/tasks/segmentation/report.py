"""What the segmentation shows of itself: its masks in TensorBoard, what it learned, and on
--test the gain of flip test-time augmentation and the coarse-to-fine pipeline's scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from config import Config, apply_overrides
from dataset import class_names, crop_corner, make_dataloaders, model_inputs
from model import SegmentationMetrics, build_task
from utils import checkpoint_config, load_checkpoint, load_weights, to_unit_range


def test_report(
    model: nn.Module, loader: DataLoader, cfg: Config, results: dict[str, Any]
) -> dict[str, Any]:
    """What --test adds to the test split's `results`: Dice and IoU with flip test-time
    augmentation, and their gain; for a fine stage trained with `coarse_from`, the scores of the
    whole coarse-to-fine pipeline on the full-size test images."""
    report = flip_tta_scores(model, loader, cfg)
    report["dice_tta_gain"] = report["dice_tta"] - results["dice"]
    if cfg.stage == "fine" and cfg.coarse_from:
        _, _, full_test_loader = make_dataloaders(apply_overrides(cfg, ["stage=full"]))
        coarse = load_trained(Path(cfg.coarse_from), next(model.parameters()).device)
        report.update(pipeline_scores(coarse, model, full_test_loader, cfg))
    return report


def load_trained(path: Path, device: torch.device) -> nn.Module:
    """The model of a checkpoint, built from the config saved in it, in eval mode on `device`."""
    checkpoint = load_checkpoint(path, torch.device("cpu"))
    cfg = checkpoint_config(checkpoint, path)
    task = build_task(cfg, **model_inputs(cfg))
    load_weights(task, checkpoint, path)
    return task.evaluated().to(device).eval()


@torch.inference_mode()
def predict_with_flips(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Test-time augmentation: the class probabilities averaged over the image as it is and
    flipped left-right, up-down and both, each prediction flipped back first."""
    probs = torch.zeros(())
    for dims in ([], [3], [2], [2, 3]):
        flipped = images.flip(dims) if dims else images
        prediction = model(flipped).float().softmax(dim=1)
        probs = probs + (prediction.flip(dims) if dims else prediction)
    return probs / 4


def flip_tta_scores(model: nn.Module, loader: DataLoader, cfg: Config) -> dict[str, float]:
    """Dice and IoU of `loader` with flip test-time augmentation."""
    device = next(model.parameters()).device
    model.eval()
    metrics = SegmentationMetrics(len(class_names(cfg)))
    for images, masks in loader:
        metrics.update(predict_with_flips(model, images.to(device)), masks.to(device))
    return {f"{name}_tta": value for name, value in metrics.compute().items()}


@torch.inference_mode()
def segment_coarse_to_fine(
    coarse: nn.Module, fine: nn.Module, images: torch.Tensor, cfg: Config
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Full-resolution logits of the two-stage pipeline, and the crops' top-left corners.

    The coarse model segments the shrunk image; the centre of the box around its shape pixels
    (the image's centre if it finds none) places a crop of `crop_size` in the full image; the
    fine model segments the crop, and everything outside it is background.
    """
    small = F.avg_pool2d(images, cfg.coarse_factor)
    found = coarse(small).argmax(dim=1) > 0  # (B, h, w)
    size = images.shape[-1]
    classes = len(class_names(cfg))
    logits = torch.zeros(len(images), classes, size, size, device=images.device)
    logits[:, 0] = 1.0  # background wherever the fine model does not look
    corners = []
    for region in found:
        rows, cols = region.nonzero(as_tuple=True)
        if len(rows):  # box centre, in full-resolution pixels
            centre = [
                (float(rc.min() + rc.max()) / 2 + 0.5) * cfg.coarse_factor - 0.5
                for rc in (rows, cols)
            ]
        else:
            centre = [size / 2, size / 2]
        corners.append(crop_corner(*centre, cfg.crop_size, size))
    crops = torch.stack(
        [
            images[i, :, y : y + cfg.crop_size, x : x + cfg.crop_size]
            for i, (y, x) in enumerate(corners)
        ]
    )
    fine_logits = fine(crops).float()
    for i, (y, x) in enumerate(corners):
        logits[i, :, y : y + cfg.crop_size, x : x + cfg.crop_size] = fine_logits[i]
    return logits, corners


@torch.inference_mode()
def pipeline_scores(
    coarse: nn.Module, fine: nn.Module, loader: DataLoader, cfg: Config
) -> dict[str, float]:
    """Dice and IoU of the coarse-to-fine pipeline on full-resolution `loader`, and the share of
    the shape pixels that fall inside the crops (what the coarse model's regions let through)."""
    device = next(fine.parameters()).device
    coarse.eval()
    fine.eval()
    metrics, inside, total = SegmentationMetrics(len(class_names(cfg))), 0, 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        logits, corners = segment_coarse_to_fine(coarse, fine, images, cfg)
        metrics.update(logits, masks)
        for mask, (y, x) in zip(masks, corners, strict=True):
            inside += int((mask[y : y + cfg.crop_size, x : x + cfg.crop_size] > 0).sum())
            total += int((mask > 0).sum())
    scores = {f"pipeline_{name}": value for name, value in metrics.compute().items()}
    return {**scores, "roi_recall": inside / max(total, 1)}


@torch.inference_mode()
def prediction_pictures(
    model: nn.Module, images: torch.Tensor, masks: torch.Tensor, cfg: Config
) -> dict[str, torch.Tensor]:
    """For TensorBoard, every `log_images_every` epochs: validation images, each beside its true
    mask and the predicted one (class k of n drawn as grey level k / (n - 1): background black)."""
    logits = model(images[:8]).float().cpu()
    images = to_unit_range(images[:8].float().cpu())
    levels = len(class_names(cfg)) - 1

    def grey(mask: torch.Tensor) -> torch.Tensor:
        return (mask.float() / levels).unsqueeze(1).expand_as(images)

    predicted = logits.argmax(1)
    return {"predictions/val": torch.cat([images, grey(masks[:8]), grey(predicted)], dim=3)}


def describe(model: nn.Module, cfg: Config) -> str:
    """What the trained model does."""
    seen = {
        "coarse": f"images shrunk {cfg.coarse_factor}x, to find the region of the shape",
        "fine": f"{cfg.crop_size}x{cfg.crop_size} crops around the shape",
    }.get(cfg.stage, "whole images")
    return f"{type(model).__name__} segments {', '.join(class_names(cfg))} in {seen}"
