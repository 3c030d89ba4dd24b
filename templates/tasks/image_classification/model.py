"""The network (a small CNN or ResNet-18 with a linear head), its loss and its metric."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from config import Config, ConfigError
{% if cookiecutter.dataset == "image_folder" %}
from dataset import class_names, class_weights, image_channels, train_class_counts
{% else %}
from dataset import class_names, image_channels
{% endif %}
from utils import titled_grid

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torchvision.models import WeightsEnum


class ConvBlock(nn.Sequential):
    """3x3 convolution, batch norm, ReLU, then 2x2 max pooling: halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),  # the bias of the conv would be cancelled by the norm
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )


class SmallCNN(nn.Sequential):
    """Three conv blocks and global average pooling: (B, C, H, W) -> (B, 4 * width)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__(
            ConvBlock(in_channels, width),
            ConvBlock(width, 2 * width),
            ConvBlock(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_features = 4 * width


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


def build_model(cfg: Config) -> nn.Module:
    """The model described by `cfg`, with freshly initialised (or pretrained) weights."""
    if cfg.backbone == "resnet18":
        backbone = ResNet18(cfg.pretrained)
    else:
        backbone = SmallCNN(image_channels(cfg), cfg.width)
    return ImageClassifier(backbone, len(class_names(cfg)), cfg.dropout, cfg.freeze_backbone)


def parameter_groups(model: ImageClassifier, cfg: Config) -> list[dict]:
    """The head learns at `lr`, the backbone at `lr * backbone_lr_factor` (seed 001: fine-tune
    all layers, the pretrained ones more gently)."""
    return [
        {"params": list(model.head.parameters()), "lr": cfg.lr},
        {"params": list(model.backbone.parameters()), "lr": cfg.lr * cfg.backbone_lr_factor},
    ]


{% if cookiecutter.dataset == "image_folder" %}
def build_loss(cfg: Config) -> nn.Module:
    """Cross-entropy on logits: the model must not apply a softmax itself. With
    `class_weights=auto`, each class weighs inversely to its share of the training split."""
    if cfg.class_weights == "auto":
        return nn.CrossEntropyLoss(weight=class_weights(train_class_counts(cfg)))
    return nn.CrossEntropyLoss()
{% else %}
def build_loss(cfg: Config) -> nn.Module:
    """Cross-entropy on logits: the model must not apply a softmax itself."""
    return nn.CrossEntropyLoss()
{% endif %}


{% include "shared/accuracy.py" %}


def build_metrics(cfg: Config) -> type[Accuracy]:
    """The metric of this task: accuracy."""
    return Accuracy


@torch.inference_mode()
def classification_report(
    model: nn.Module, loader: DataLoader, cfg: Config, device: torch.device
) -> dict[str, Any]:
    """Per-class precision, recall and F1 and the confusion matrix over `loader`, computed with
    torchmetrics; with `cfg.tta`, also the accuracy of predictions averaged with those of the
    mirrored images."""
    # Imported here: only --test needs torchmetrics, and it adds a second to every start.
    from torchmetrics import MetricCollection
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassConfusionMatrix,
        MulticlassF1Score,
        MulticlassPrecision,
        MulticlassRecall,
    )

    classes = class_names(cfg)
    num_classes = len(classes)
    metrics = MetricCollection(
        {
            "precision": MulticlassPrecision(num_classes, average=None),
            "recall": MulticlassRecall(num_classes, average=None),
            "f1": MulticlassF1Score(num_classes, average=None),
            "confusion": MulticlassConfusionMatrix(num_classes),
        }
    ).to(device)
    tta_accuracy = MulticlassAccuracy(num_classes, average="micro").to(device)
    model.eval()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        probabilities = model(images).softmax(dim=1)
        metrics.update(probabilities, labels)
        if cfg.tta:
            mirrored = model(images.flip(-1)).softmax(dim=1)
            tta_accuracy.update((probabilities + mirrored) / 2, labels)
    scores = metrics.compute()
    report: dict[str, Any] = {
        "macro_f1": scores["f1"].mean().item(),
        "per_class": {
            name: {key: scores[key][i].item() for key in ("precision", "recall", "f1")}
            for i, name in enumerate(classes)
        },
        "confusion_matrix": scores["confusion"].tolist(),
    }
    if cfg.tta:
        report["acc_tta"] = tta_accuracy.compute().item()
    return report


def save_confusion_matrix(report: dict[str, Any], path: Path, log_dir: Path) -> None:
    """The report's confusion matrix (rows: true class, columns: predicted) as a PNG at `path`
    and as a figure in the TensorBoard logs in `log_dir`."""
    import matplotlib  # imported here: only --test needs it, and it is slow to load

    matplotlib.use("Agg")  # no display needed: the figure only goes to a file
    import matplotlib.pyplot as plt

    classes = list(report["per_class"])
    matrix = report["confusion_matrix"]
    size = 1.5 + 0.6 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(matrix, cmap="Blues")
    darkest = max(max(counts) for counts in matrix)
    for row, counts in enumerate(matrix):
        for column, count in enumerate(counts):
            color = "white" if count > darkest / 2 else "black"
            ax.text(column, row, str(count), ha="center", va="center", color=color)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    with SummaryWriter(log_dir) as writer:
        writer.add_figure("test/confusion_matrix", fig)  # closes the figure


def per_class_table(report: dict[str, Any]) -> str:
    """The per-class scores as a table to print."""
    width = max(len(name) for name in [*report["per_class"], "class"])
    lines = ["class".ljust(width) + "  precision  recall      f1"]
    for name, scores in report["per_class"].items():
        values = "".join(f"{scores[key]:>9.3f}" for key in ("precision", "recall", "f1"))
        lines.append(name.ljust(width) + values)
    return "\n".join(lines)


{% include "shared/overfitted_classifier.py" %}


def prediction_picture(
    images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, cfg: Config
) -> tuple[str, Figure]:
    """Validation images titled with the predicted class, for TensorBoard."""
    return "predictions/val", labelled_grid(images, logits, labels, class_names(cfg))


{% include "shared/labelled_grid.py" %}


{% if cookiecutter.dataset == "image_folder" %}
{% include "shared/classifier_predictions.py" %}


{% endif %}
def describe(model: nn.Module, cfg: Config) -> str:
    """What the trained model tells apart."""
    classes = class_names(cfg)
    return f"{type(model).__name__} tells apart {len(classes)} classes: {', '.join(classes)}"
