"""The network (a U-Net), its compound loss, its metrics, flip TTA and the coarse-to-fine
pipeline."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from config import Config
from dataset import class_names, crop_corner, image_channels
from utils import to_unit_range


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by normalisation and ReLU; keeps the resolution."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        layers: list[nn.Module] = []
        for channels in (in_channels, out_channels):
            layers += [
                nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=False),
                normalisation(norm, out_channels),  # makes the conv's bias redundant
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


def normalisation(norm: str, channels: int) -> nn.Module:
    """Batch norm, or group norm (independent of the batch: for batches of a few images)."""
    if norm == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.BatchNorm2d(channels)


class UNet(nn.Module):
    """The U-Net of Ronneberger et al. (2015), three levels deep: (B, C, H, W) -> (B, classes,
    H, W) logits, for H and W multiples of 8.

    The encoder halves the resolution and doubles the channels at each level; the decoder goes
    back up with transposed convolutions, and at each level concatenates the encoder's features
    of the same resolution (the skip connections), which carry the fine detail the bottleneck
    has lost.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int, norm: str) -> None:
        super().__init__()
        channels = [width, 2 * width, 4 * width, 8 * width]
        self.down = nn.ModuleList(
            [ConvBlock(in_channels, channels[0], norm)]
            + [ConvBlock(channels[i], channels[i + 1], norm) for i in range(3)]
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(channels[i + 1], channels[i], kernel_size=2, stride=2)
            for i in reversed(range(3))
        )
        self.merge = nn.ModuleList(
            ConvBlock(2 * channels[i], channels[i], norm) for i in reversed(range(3))
        )
        self.head = nn.Conv2d(channels[0], num_classes, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.down[0](images)
        skips = [features]
        for block in self.down[1:]:
            features = block(F.max_pool2d(features, 2))
            skips.append(features)
        skips.pop()  # the bottleneck is not a skip
        for up, merge in zip(self.up, self.merge, strict=True):
            features = merge(torch.cat([skips.pop(), up(features)], dim=1))
        return self.head(features)


def build_model(cfg: Config) -> nn.Module:
    """The model described by `cfg`, with freshly initialised weights."""
    return UNet(image_channels(cfg), len(class_names(cfg)), cfg.width, cfg.norm)


def parameter_groups(model: nn.Module, cfg: Config) -> list[dict]:
    """Every parameter learns at `lr`."""
    return [{"params": list(model.parameters()), "lr": cfg.lr}]


class CompoundLoss(nn.Module):
    """`dice_weight` x soft Dice loss + `pixel_weight` x a per-pixel loss (cross-entropy, or
    focal with `focal_gamma`).

    The per-pixel term gives smooth gradients everywhere; the Dice term scores the overlap of
    each foreground class as a whole, so a small shape counts as much as the large background.
    The focal term (Lin et al., 2017) scales each pixel's cross-entropy by (1 - p)^gamma, which
    discounts the easy pixels and puts the weight on the hard ones near edges.
    """

    def __init__(self, dice_weight: float, pixel_weight: float, focal_gamma: float | None) -> None:
        super().__init__()
        self.dice_weight = dice_weight
        self.pixel_weight = pixel_weight
        self.focal_gamma = focal_gamma  # None: plain cross-entropy

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # softmax and sums in float32, also under mixed precision
        log_probs = F.log_softmax(logits, dim=1)  # (B, classes, H, W)
        pixel = F.nll_loss(log_probs, masks, reduction="none")  # (B, H, W)
        if self.focal_gamma is not None:
            pixel = (1 - torch.exp(-pixel)) ** self.focal_gamma * pixel
        return self.dice_weight * dice_loss(log_probs.exp(), masks) + self.pixel_weight * (
            pixel.mean()
        )


def dice_loss(probs: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - the soft Dice of the foreground classes over the batch, averaged over the classes."""
    one_hot = F.one_hot(masks, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    overlap = (probs * one_hot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
    dice = (2 * overlap + smooth) / (total + smooth)
    return 1 - dice[1:].mean()  # class 0 is the background


def build_loss(cfg: Config) -> nn.Module:
    """The compound loss named by `cfg.loss`, on logits."""
    gamma = cfg.focal_gamma if cfg.loss == "dice_focal" else None
    return CompoundLoss(cfg.dice_weight, cfg.pixel_weight, gamma)


class SegmentationMetrics:
    """Dice and IoU of the foreground classes over a whole split: overlaps and areas are summed
    on the device over every pixel first, so large and small shapes weigh by their area."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.counts = torch.zeros(3, num_classes)  # overlap, predicted area, true area

    def update(self, logits: torch.Tensor, masks: torch.Tensor) -> None:
        """Add one batch of predictions."""
        predicted = F.one_hot(logits.argmax(dim=1), self.num_classes)  # (B, H, W, classes)
        true = F.one_hot(masks, self.num_classes)
        batch = torch.stack(
            [
                (predicted & true).sum(dim=(0, 1, 2)),
                predicted.sum(dim=(0, 1, 2)),
                true.sum(dim=(0, 1, 2)),
            ]
        )
        self.counts = self.counts.to(batch.device) + batch

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The sums so far, as plain data for mid-epoch checkpoints."""
        return {"counts": self.counts.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.counts = state["counts"]

    def compute(self) -> dict[str, float]:
        """Dice = 2|P∩T| / (|P| + |T|) and IoU = |P∩T| / |P∪T|, averaged over the foreground
        classes (1 where a class is neither predicted nor present)."""
        overlap, predicted, true = self.counts[:, 1:].double().cpu()
        dice = torch.where(predicted + true > 0, 2 * overlap / (predicted + true), 1.0)
        union = predicted + true - overlap
        iou = torch.where(union > 0, overlap / union, 1.0)
        return {"dice": dice.mean().item(), "iou": iou.mean().item()}


def build_metrics(cfg: Config) -> Callable[[], SegmentationMetrics]:
    """The metrics of this task: Dice and IoU."""
    return partial(SegmentationMetrics, len(class_names(cfg)))


def overfitted(
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    start: dict[str, float],
    end: dict[str, float],
) -> tuple[bool, str]:
    """Whether --overfit-batch has memorised this batch, and that goal in words."""
    goal = 0.1 * start["loss"]
    return (
        end["loss"] <= goal and end["dice"] >= 0.97,
        f"the loss down by 90% (to <= {goal:.4g}) and a Dice of at least 0.97 on the batch",
    )


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


def flip_tta_scores(
    model: nn.Module, loader: DataLoader, cfg: Config, device: torch.device
) -> dict[str, float]:
    """Dice and IoU of `loader` with flip test-time augmentation."""
    model.eval()
    metrics = build_metrics(cfg)()
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


def pipeline_scores(
    coarse: nn.Module, fine: nn.Module, loader: DataLoader, cfg: Config, device: torch.device
) -> dict[str, float]:
    """Dice and IoU of the coarse-to-fine pipeline on full-resolution `loader`, and the share of
    the shape pixels that fall inside the crops (what the coarse model's regions let through)."""
    coarse.eval()
    fine.eval()
    metrics, inside, total = build_metrics(cfg)(), 0, 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        logits, corners = segment_coarse_to_fine(coarse, fine, images, cfg)
        metrics.update(logits, masks)
        for mask, (y, x) in zip(masks, corners, strict=True):
            inside += int((mask[y : y + cfg.crop_size, x : x + cfg.crop_size] > 0).sum())
            total += int((mask > 0).sum())
    scores = {f"pipeline_{name}": value for name, value in metrics.compute().items()}
    return {**scores, "roi_recall": inside / max(total, 1)}


def prediction_picture(
    images: torch.Tensor, logits: torch.Tensor, masks: torch.Tensor, cfg: Config
) -> tuple[str, torch.Tensor]:
    """For TensorBoard: validation images, each beside its true mask and the predicted one (class
    k of n drawn as grey level k / (n - 1): background black)."""
    images = to_unit_range(images[:8].float())
    levels = len(class_names(cfg)) - 1

    def grey(mask: torch.Tensor) -> torch.Tensor:
        return (mask.float() / levels).unsqueeze(1).expand_as(images)

    predicted = logits[:8].argmax(1)
    return "predictions/val", torch.cat([images, grey(masks[:8]), grey(predicted)], dim=3)


def describe(model: nn.Module, cfg: Config) -> str:
    """What the trained model does."""
    seen = {
        "coarse": f"images shrunk {cfg.coarse_factor}x, to find the region of the shape",
        "fine": f"{cfg.crop_size}x{cfg.crop_size} crops around the shape",
    }.get(cfg.stage, "whole images")
    return f"{type(model).__name__} segments {', '.join(class_names(cfg))} in {seen}"
