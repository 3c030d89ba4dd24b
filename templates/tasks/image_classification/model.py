"""The network, its loss and the metric that says how well it classifies."""

from __future__ import annotations

import torch
from torch import nn

from config import Config
from dataset import CLASSES, IN_CHANNELS


class ConvBlock(nn.Sequential):
    """3x3 convolution, batch norm, ReLU, then 2x2 max pooling: halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),  # the bias of the conv would be cancelled by the norm
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )


class ShapeClassifier(nn.Module):
    """A small CNN: three conv blocks, global average pooling, dropout and a linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, width: int, dropout: float) -> None:
        super().__init__()
        self.features = nn.Sequential(
            ConvBlock(in_channels, width),
            ConvBlock(width, 2 * width),
            ConvBlock(2 * width, 4 * width),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, num_classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)  # (B, C, H, W) -> (B, 4 * width, H / 8, W / 8)
        return self.classifier(self.pool(features))  # (B, num_classes) logits


def build_model(cfg: Config) -> nn.Module:
    """The model described by `cfg`, with freshly initialised weights."""
    return ShapeClassifier(IN_CHANNELS, len(CLASSES), cfg.width, cfg.dropout)


def build_loss(cfg: Config) -> nn.Module:
    """Cross-entropy on logits: the model must not apply a softmax itself."""
    return nn.CrossEntropyLoss()


class Metrics:
    """Accuracy over many batches, summed on the device so a training step never waits for it."""

    def __init__(self) -> None:
        self.correct: torch.Tensor | int = 0
        self.count = 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one batch of predictions."""
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.count += labels.numel()

    def state_dict(self) -> dict[str, int]:
        """The counts so far, as plain data for mid-epoch checkpoints."""
        return {"correct": int(self.correct), "count": self.count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.correct, self.count = state["correct"], state["count"]

    def compute(self) -> dict[str, float]:
        """The metrics of everything added so far."""
        return {"acc": float(self.correct) / max(self.count, 1)}


def overfitted(
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    start: dict[str, float],
    end: dict[str, float],
) -> tuple[bool, str]:
    """Whether --overfit-batch has memorised this batch, and that goal in words."""
    goal = 0.01 * start["loss"]
    return (
        end["loss"] <= goal and end["acc"] == 1.0,
        f"the loss down by 99% (to <= {goal:.4g}) and every sample classified correctly",
    )


def describe(model: nn.Module, cfg: Config) -> str:
    """What the trained model tells apart."""
    return f"{type(model).__name__} tells apart {len(CLASSES)} shapes: {', '.join(CLASSES)}"
