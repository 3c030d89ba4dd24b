"""The network (a Transformer encoder over token sequences), its loss and its metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import nn

from config import Config, ConfigError
from dataset import PAD, class_names, vocabulary_size

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal position signal of "Attention Is All You Need" to token vectors.

    Attention by itself ignores order; this gives each position its own pattern of sines and
    cosines, so a query can single out a position. Fixed, not learned: a buffer, not a parameter.
    """

    def __init__(self, d_model: int, max_positions: int) -> None:
        super().__init__()
        positions = torch.arange(max_positions, dtype=torch.float32).unsqueeze(1)
        frequencies = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_positions, d_model)
        table[:, 0::2] = torch.sin(positions * frequencies)
        table[:, 1::2] = torch.cos(positions * frequencies)
        self.register_buffer("table", table, persistent=False)  # rebuilt, never checkpointed

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors + self.table[: vectors.shape[1]]  # (B, T, d_model)


class SequenceClassifier(nn.Module):
    """Token embedding plus positions, a pre-norm Transformer encoder, and a linear head on the
{% if cookiecutter.dataset == "csv" %}
    first position's output, the [CLS] token, as in BERT.
{% else %}
    first position's output (the query token, in the role of BERT's [CLS]).
{% endif %}

    Padding takes no part: the padding mask hides it from every attention, so a sequence gets the
    same prediction however much padding its batch adds.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary_size(cfg), cfg.d_model, padding_idx=PAD)
        self.positions = PositionalEncoding(cfg.d_model, 1 + cfg.max_length)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.num_heads,
            cfg.ff_dim,
            cfg.dropout,
            batch_first=True,
            norm_first=True,  # pre-norm: trains stably without a long warmup
        )
        self.encoder = nn.TransformerEncoder(
            layer, cfg.num_layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False
        )
        self.head = nn.Linear(cfg.d_model, len(class_names(cfg)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        padding = tokens == PAD  # (B, T), True where attention must not look
        vectors = self.encoder(self.positions(self.embed(tokens)), src_key_padding_mask=padding)
        return self.head(vectors[:, 0])  # (B, classes) logits


def build_model(cfg: Config) -> nn.Module:
    """The model described by `cfg`, with freshly initialised weights."""
    if cfg.d_model % cfg.num_heads or cfg.d_model % 2:
        raise ConfigError(
            f"d_model={cfg.d_model} must be even and divisible by num_heads={cfg.num_heads} "
            "(each head attends over d_model / num_heads of the dimensions); e.g. d_model=64 "
            "num_heads=4."
        )
    return SequenceClassifier(cfg)


def parameter_groups(model: nn.Module, cfg: Config) -> list[dict]:
    """Every parameter learns at `lr`."""
    return [{"params": list(model.parameters()), "lr": cfg.lr}]


def build_loss(cfg: Config) -> nn.Module:
    """Cross-entropy on logits: the model must not apply a softmax itself."""
    return nn.CrossEntropyLoss()


class ClassificationMetrics:
    """Accuracy and macro F1 from a confusion matrix summed on the device over many batches."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)  # true, predicted

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one batch of predictions."""
        pairs = labels * self.num_classes + logits.argmax(dim=1)
        counts = torch.bincount(pairs, minlength=self.num_classes**2)
        counts = counts.view(self.num_classes, self.num_classes)
        self.confusion = self.confusion.to(counts.device) + counts

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The counts so far, as plain data for mid-epoch checkpoints."""
        return {"confusion": self.confusion.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.confusion = state["confusion"]

    def compute(self) -> dict[str, float]:
        """Accuracy, and F1 averaged over the classes (each class counts the same)."""
        confusion = self.confusion.double().cpu()
        hits = confusion.diagonal()
        precision = hits / confusion.sum(dim=0).clamp_min(1)
        recall = hits / confusion.sum(dim=1).clamp_min(1)
        f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
        return {"acc": (hits.sum() / confusion.sum()).item(), "macro_f1": f1.mean().item()}


def build_metrics(cfg: Config) -> Callable[[], ClassificationMetrics]:
    """The metrics of this task: accuracy and macro F1 over the classes."""
    return partial(ClassificationMetrics, len(class_names(cfg)))


{% include "shared/overfitted_classifier.py" %}


{% if cookiecutter.dataset == "csv" %}
{% include "shared/classifier_predictions.py" %}


{% endif %}
def prediction_picture(
    tokens: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, cfg: Config
) -> tuple[str, Figure]:
    """For TensorBoard: the predicted class probabilities of 16 validation sequences (one row
    each), with a red ring on the true class."""
    from matplotlib.figure import Figure  # imported here: slow to load, and only pictures need it

    probabilities, labels = logits[:16].softmax(1), labels[:16]
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
    return "predictions/val", fig


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
