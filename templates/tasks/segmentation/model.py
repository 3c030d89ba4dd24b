"""The task: the network (a U-Net), its compound loss, its metrics and its training step.
Change the network in `build_model`, the loss or what a step does in `Segmentation`; the
Trainer runs any `Task` (the contract below)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from config import Config


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by normalisation and ReLU; keeps the resolution."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        layers: list[nn.Module] = []
        for channels in (in_channels, out_channels):
            layers += [
                # A norm after the conv would cancel its bias: it has one only without.
                nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=norm == "none"),
                normalisation(norm, out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


{% include "shared/normalisation.py" %}


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


def build_model(cfg: Config, num_classes: int, channels: int) -> UNet:
    """The model described by `cfg`, with freshly initialised weights, for `num_classes` classes
    (background included) in `channels`-channel images."""
    return UNet(channels, num_classes, cfg.width, cfg.norm)


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


{% include "shared/weight_average.py" %}


{% include "shared/task_contract.py" %}


class Segmentation(Task):
    """The compound loss between the U-Net's per-pixel logits and the masks; Dice and IoU; an
    average of the weights (EMA) evaluated if `ema` says so."""

    def __init__(self, model: UNet, loss: CompoundLoss, num_classes: int, ema: float) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss
        self.num_classes = num_classes
        self.ema = weight_average(model, ema)  # a copy that follows the model slowly

    def training_step(self, batch: Batch) -> Step:
        images, masks = batch
        logits = self.model(images)  # (B, classes, H, W)
        return Step(self.loss_fn(logits, masks), logits, masks)

    def after_optimizer_step(self) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def evaluated(self) -> nn.Module:
        return self.model if self.ema is None else self.ema.module

    def validation_step(self, batch: Batch) -> Step:
        images, masks = batch
        logits = self.evaluated()(images)
        return Step(self.loss_fn(logits, masks), logits, masks)

    def metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(self.num_classes)

    def overfitted(
        self, batch: Batch, start: dict[str, float], end: dict[str, float]
    ) -> tuple[bool, str]:
        return end["dice"] >= 0.97, "a Dice of at least 0.97 on the batch"


def build_task(cfg: Config, num_classes: int, channels: int) -> Segmentation:
    """The task of `cfg` for images of `channels` channels whose pixels fall into `num_classes`
    classes, background included; the loss is the one named by `cfg.loss`."""
    gamma = cfg.focal_gamma if cfg.loss == "dice_focal" else None
    loss = CompoundLoss(cfg.dice_weight, cfg.pixel_weight, gamma)
    return Segmentation(build_model(cfg, num_classes, channels), loss, num_classes, cfg.ema)
