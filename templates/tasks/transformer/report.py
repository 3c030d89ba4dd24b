"""What the sequence classifier shows of itself: its predicted class probabilities in
TensorBoard, and what it learned."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from config import Config
{% if cookiecutter.dataset == "csv" %}
from dataset import class_names, vocabulary_size
{% else %}
from dataset import class_names
{% endif %}

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@torch.inference_mode()
def prediction_pictures(
    model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor, cfg: Config
) -> dict[str, Figure]:
    """For TensorBoard, every `log_images_every` epochs: the predicted class probabilities of 16
    validation sequences (one row each), with a red ring on the true class."""
    from matplotlib.figure import Figure  # imported here: slow to load, and only pictures need it

    probabilities, labels = model(tokens[:16]).float().softmax(1).cpu(), labels[:16]
    names = class_names(cfg)
    width, height = 2 + 0.6 * len(names), 1.5 + 0.3 * len(labels)
    fig = Figure(figsize=(width, height))
    # Fixed margins (inches over the figure's size): tight_layout would cost more than the drawing.
    fig.subplots_adjust(0.9 / width, 0.9 / height, 1 - 0.15 / width, 1 - 0.4 / height)
    ax = fig.subplots()
    ax.imshow(probabilities.numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.scatter(labels.numpy(), range(len(labels)), s=80, facecolors="none", edgecolors="tab:red")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("validation sequence")
    ax.set_title("predicted probability (ring: true class)", fontsize=9)
    return {"predictions/val": fig}


def describe(model: nn.Module, cfg: Config) -> str:
    """What the trained model does."""
{% if cookiecutter.dataset == "csv" %}
    return (
        f"{type(model).__name__} reads the first {cfg.max_length} tokens of a text, with a "
        f"vocabulary of {vocabulary_size(cfg)} tokens, and names its class: "
        + ", ".join(class_names(cfg))
    )
{% else %}
    return (
        f"{type(model).__name__} reads sequences of {cfg.min_length}-{cfg.max_length} of "
        f"{cfg.num_symbols} symbols and names the symbol the query token points at"
    )
{% endif %}


def test_report(
    model: nn.Module, loader: DataLoader, cfg: Config, results: dict[str, Any]
) -> dict[str, Any]:
    """What --test adds to the test split's `results`: nothing; accuracy and macro F1 say it."""
    return {}
{% if cookiecutter.dataset == "csv" %}


{% include "shared/classifier_predictions.py" %}
{% endif %}
