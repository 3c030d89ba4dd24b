"""The task: the network (a small CNN or ResNet-18 with a linear head), its loss, its metric and
its training step. Change the network in `build_model`, the loss or what a step does in
`ImageClassification`; the Trainer runs any `Task` (the contract below)."""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.error import URLError

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from config import AUTO, Config, ConfigError

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum


class ConvBlock(nn.Sequential):
    """3x3 convolution, normalisation, ReLU, then 2x2 max pooling: halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__(
            # With a norm after it, the conv's bias would be cancelled: it has none.
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=norm == "none"),
            normalisation(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )


{% include "shared/normalisation.py" %}


class SmallCNN(nn.Sequential):
    """`blocks` conv blocks, each doubling the channels, and global average pooling:
    (B, C, H, W) -> (B, width * 2 ** (blocks - 1))."""

    def __init__(self, in_channels: int, width: int, blocks: int = 3, norm: str = "batch") -> None:
        channels = [in_channels] + [width * 2**block for block in range(blocks)]
        super().__init__(
            *(ConvBlock(channels[i], channels[i + 1], norm) for i in range(blocks)),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_features = channels[-1]


class ResNet18(nn.Module):
    """torchvision's ResNet-18 without its classifier: (B, C, H, W) -> (B, 512).

    Its max-pool is dropped: on 32x32 images the standard stem would shrink the last stage to 1x1,
    where batch norm cannot train on a single sample. The weights are unaffected, so pretrained
    ImageNet weights still load.
    """

    def __init__(self, pretrained: bool) -> None:
        super().__init__()
        # Imported here: torchvision adds a second to every start, and only this backbone needs it.
        from torchvision.models import ResNet18_Weights, resnet18

        self.net = resnet18(weights=None)
        if pretrained:
            self.net.load_state_dict(download_weights(ResNet18_Weights.DEFAULT))
        self.net.maxpool = nn.Identity()
        self.net.fc = nn.Identity()
        self.out_features = 512

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)  # grey to RGB, as the ImageNet weights expect
        return self.net(images)


def download_weights(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """torchvision's pretrained weights, loaded as plain tensors; a clear error when offline."""
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (OSError, URLError) as error:
        raise ConfigError(
            f"could not download the pretrained weights {weights.url} ({error}). This machine "
            "looks offline: train from scratch with pretrained=false, or download the file "
            "elsewhere into ~/.cache/torch/hub/checkpoints/ on this machine and run again."
        ) from None


class ImageClassifier(nn.Module):
    """A backbone that turns images into features, then dropout and a linear head.

    With `freeze_backbone` only the head trains (seed 001: retrain the last layer of a pretrained
    model): the backbone gets no gradients, runs without autograd, and keeps its batch-norm
    statistics.
    """

    def __init__(
        self, backbone: nn.Module, num_classes: int, dropout: float, freeze_backbone: bool
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        features = backbone.out_features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))
        self.freeze_backbone = freeze_backbone
        self.backbone.requires_grad_(not freeze_backbone)

    def train(self, mode: bool = True) -> ImageClassifier:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # frozen means its batch-norm statistics too
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
            features = self.backbone(images)  # (B, C, H, W) -> (B, features)
        return self.head(features)  # (B, num_classes) logits


def build_model(cfg: Config, num_classes: int, channels: int, image_size: int) -> ImageClassifier:
    """The network described by `cfg` for `image_size`-pixel images of `num_classes` classes,
    with freshly initialised (or pretrained) weights."""
    if cfg.backbone == "resnet18":
        backbone = ResNet18(cfg.pretrained)
    else:
        # width=auto: 32 channels, 64 for more than 32 classes; a block per halving of the
        # image down to 4 pixels, at most 3: 8-pixel images get 1 block, 16-pixel ones 2.
        width = (32 if num_classes <= 32 else 64) if cfg.width == AUTO else cfg.width
        blocks = max(1, min(3, image_size.bit_length() - 3))
        backbone = SmallCNN(channels, width, blocks, cfg.norm)
    return ImageClassifier(backbone, num_classes, cfg.dropout, cfg.freeze_backbone)


{% include "shared/classification_loss.py" %}


def mixed(
    images: torch.Tensor, labels: torch.Tensor, classes: int, mix: str, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch mixed in pairs: each image with the one `shift` places after it, in a
    share drawn from Beta(alpha, alpha) for the batch; mixup blends the two (Zhang et al., 2018),
    cutmix pastes a box of the other into it (Yun et al., 2019). The targets are the two
    classes in the same shares, (B, classes). The draws come from Python's random state (no
    wait for the device), which checkpoints keep, so that a resumed run mixes alike."""
    share = random.betavariate(alpha, alpha)
    shift = random.randrange(1, max(len(images), 2))
    others = images.roll(shift, dims=0)
    if mix == "mixup":
        images = share * images + (1 - share) * others
    else:  # a box of 1 - share of the area, at a random place
        height, width = images.shape[-2:]
        box_h, box_w = round(height * (1 - share) ** 0.5), round(width * (1 - share) ** 0.5)
        top, left = random.randint(0, height - box_h), random.randint(0, width - box_w)
        box = (..., slice(top, top + box_h), slice(left, left + box_w))
        images = images.clone()
        images[box] = others[box]
        share = 1 - box_h * box_w / (height * width)  # the share the rounded box leaves
    targets = F.one_hot(labels, classes).float()
    return images, share * targets + (1 - share) * targets.roll(shift, dims=0)


{% include "shared/weight_average.py" %}


{% include "shared/task_contract.py" %}


class ImageClassification(Task):
    """Cross-entropy (or focal loss) on the logits of the image classifier, on images mixed in
    pairs if `cfg.mix` says so; accuracy as its metric; an average of the weights (EMA)
    evaluated if `cfg.ema` says so."""

{% if cookiecutter.dataset == "image_folder" %}
    def __init__(
        self, model: ImageClassifier, cfg: Config, class_weights: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.model = model
        # On logits: the model must not apply a softmax itself. Class weights, if any, make a
        # rare class count as much as a frequent one.
        self.loss_fn = build_loss(cfg, class_weights)
{% else %}
    def __init__(self, model: ImageClassifier, cfg: Config) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = build_loss(cfg)  # on logits: the model must not apply a softmax
{% endif %}
        self.mix, self.mix_alpha = cfg.mix, cfg.mix_alpha
        self.ema = weight_average(model, cfg.ema)  # a copy that follows the model slowly

    def parameter_groups(self, cfg: Config) -> list[dict[str, Any]]:
        """The head learns at `lr`, the backbone at `lr * backbone_lr_factor` (seed 001: fine-tune
        all layers, the pretrained ones more gently)."""
        return [
            {"params": list(self.model.head.parameters()), "lr": cfg.lr},
            {
                "params": list(self.model.backbone.parameters()),
                "lr": cfg.lr * cfg.backbone_lr_factor,
            },
        ]

    def training_step(self, batch: Batch) -> Step:
        images, labels = batch
        if self.mix != "none":  # targets: the two classes of each image, in their shares
            images, labels = mixed(images, labels, self.model.num_classes, self.mix, self.mix_alpha)
        logits = self.model(images)  # (B, classes)
        return Step(self.loss_fn(logits, labels), logits, labels)

    def after_optimizer_step(self) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def evaluated(self) -> nn.Module:
        return self.model if self.ema is None else self.ema.module

    def validation_step(self, batch: Batch) -> Step:
        images, labels = batch
        logits = self.evaluated()(images)
        return Step(self.loss_fn(logits, labels), logits, labels)

    def metrics(self) -> Accuracy:
        return Accuracy()

    def overfitted(
        self, batch: Batch, start: dict[str, float], end: dict[str, float]
    ) -> tuple[bool, str]:
        return end["acc"] == 1.0, "every sample of the batch classified correctly"


{% if cookiecutter.dataset == "image_folder" %}
def build_task(
    cfg: Config,
    num_classes: int,
    channels: int,
    image_size: int,
    class_weights: torch.Tensor | None,
) -> ImageClassification:
    """The task of `cfg` for data of `num_classes` classes of `channels`-channel images of
    `image_size` pixels, with the loss's `class_weights` (see dataset.py)."""
    model = build_model(cfg, num_classes, channels, image_size)
    return ImageClassification(model, cfg, class_weights)
{% else %}
def build_task(
    cfg: Config, num_classes: int, channels: int, image_size: int
) -> ImageClassification:
    """The task of `cfg` for data of `num_classes` classes of `channels`-channel images of
    `image_size` pixels."""
    return ImageClassification(build_model(cfg, num_classes, channels, image_size), cfg)
{% endif %}


{% include "shared/accuracy.py" %}
