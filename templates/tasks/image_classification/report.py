"""What the classifier shows of itself: its predictions in TensorBoard, what it learned, and the
per-class scores and confusion matrix of --test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from config import Config
from dataset import class_names
from utils import RunPaths, titled_grid, unused_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@torch.inference_mode()
def prediction_pictures(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: Config
) -> dict[str, Figure]:
    """For TensorBoard, every `log_images_every` epochs: validation images titled with the
    predicted class."""
    logits = model(images).float().cpu()
    return {"predictions/val": labelled_grid(images.cpu(), logits, labels, class_names(cfg))}


{% include "shared/labelled_grid.py" %}


def describe(model: nn.Module, cfg: Config) -> str:
    """What the trained model tells apart."""
    classes = class_names(cfg)
    return f"{type(model).__name__} tells apart {len(classes)} classes: {', '.join(classes)}"


def test_report(
    model: nn.Module, loader: DataLoader, cfg: Config, results: dict[str, Any]
) -> dict[str, Any]:
    """What --test adds to the test split's `results`: macro F1, per-class precision, recall and
    F1, the confusion matrix (printed, drawn, in TensorBoard) and, with `tta`, the accuracy of
    predictions averaged with the mirror image's."""
    report = classification_report(model, loader, cfg)
    if cfg.tta:
        report["acc_tta_gain"] = report["acc_tta"] - results["acc"]
    print(per_class_table(report))
    run = RunPaths.for_run(cfg)
    picture = unused_path(run.plots / "confusion_matrix.png")  # never an earlier --test's
    save_confusion_matrix(report, picture, run.logs)
    print(f"confusion matrix  {picture} (and in TensorBoard)")
    return report


@torch.inference_mode()
def classification_report(model: nn.Module, loader: DataLoader, cfg: Config) -> dict[str, Any]:
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

    device = next(model.parameters()).device
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
    from matplotlib.figure import Figure  # imported here: slow to load; drawn without pyplot

    classes = list(report["per_class"])
    matrix = report["confusion_matrix"]
    size = 1.5 + 0.6 * len(classes)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
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
        writer.add_figure("test/confusion_matrix", fig)


def per_class_table(report: dict[str, Any]) -> str:
    """The per-class scores as a table to print."""
    width = max(len(name) for name in [*report["per_class"], "class"])
    lines = ["class".ljust(width) + "  precision  recall      f1"]
    for name, scores in report["per_class"].items():
        values = "".join(f"{scores[key]:>9.3f}" for key in ("precision", "recall", "f1"))
        lines.append(name.ljust(width) + values)
    return "\n".join(lines)
{% if cookiecutter.dataset == "image_folder" %}


{% include "shared/classifier_predictions.py" %}
{% endif %}
