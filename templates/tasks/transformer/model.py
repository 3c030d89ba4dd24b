"""The task: the network (a Transformer encoder over token sequences), its loss, its metrics
and its training step. Change the network in `build_model`, the loss or what a step does in
`SequenceClassification`; the Trainer runs any `Task` (the contract below)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from config import Config, ConfigError


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

    def __init__(self, cfg: Config, vocabulary_size: int, num_classes: int, padding: int) -> None:
        super().__init__()
        self.padding = padding  # the token id of padding
        self.embed = nn.Embedding(vocabulary_size, cfg.d_model, padding_idx=padding)
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
        self.head = nn.Linear(cfg.d_model, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        padding = tokens == self.padding  # (B, T), True where attention must not look
        vectors = self.encoder(self.positions(self.embed(tokens)), src_key_padding_mask=padding)
        return self.head(vectors[:, 0])  # (B, classes) logits


def build_model(
    cfg: Config, vocabulary_size: int, num_classes: int, padding: int
) -> SequenceClassifier:
    """The model described by `cfg`, with freshly initialised weights, for sequences of
    `vocabulary_size` token ids (`padding` among them) and `num_classes` classes."""
    if cfg.d_model % cfg.num_heads or cfg.d_model % 2:
        raise ConfigError(
            f"d_model={cfg.d_model} must be even and divisible by num_heads={cfg.num_heads} "
            "(each head attends over d_model / num_heads of the dimensions); e.g. d_model=64 "
            "num_heads=4."
        )
    return SequenceClassifier(cfg, vocabulary_size, num_classes, padding)


{% include "shared/classification_loss.py" %}


{% include "shared/weight_average.py" %}


{% include "shared/task_contract.py" %}


class SequenceClassification(Task):
    """Cross-entropy (or focal loss) on the logits of the sequence classifier; accuracy and
    macro F1; an average of the weights (EMA) evaluated if `cfg.ema` says so."""

    def __init__(self, model: SequenceClassifier, num_classes: int, cfg: Config) -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.loss_fn = build_loss(cfg)  # on logits: the model must not apply a softmax
        self.ema = weight_average(model, cfg.ema)  # a copy that follows the model slowly

    def training_step(self, batch: Batch) -> Step:
        tokens, labels = batch
        logits = self.model(tokens)  # (B, classes)
        return Step(self.loss_fn(logits, labels), logits, labels)

    def after_optimizer_step(self) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def evaluated(self) -> nn.Module:
        return self.model if self.ema is None else self.ema.module

    def validation_step(self, batch: Batch) -> Step:
        tokens, labels = batch
        logits = self.evaluated()(tokens)
        return Step(self.loss_fn(logits, labels), logits, labels)

    def metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(self.num_classes)

    def overfitted(
        self, batch: Batch, start: dict[str, float], end: dict[str, float]
    ) -> tuple[bool, str]:
        return end["acc"] == 1.0, "every sample of the batch classified correctly"


def build_task(
    cfg: Config, vocabulary_size: int, num_classes: int, padding: int
) -> SequenceClassification:
    """The task of `cfg` for sequences of `vocabulary_size` token ids (`padding` among them)
    and `num_classes` classes."""
    return SequenceClassification(
        build_model(cfg, vocabulary_size, num_classes, padding), num_classes, cfg
    )


class ClassificationMetrics:
    """Accuracy and macro F1 from a confusion matrix summed on the device over many batches."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)  # true, predicted

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one batch of predictions. `labels`: class indices (B,), or class probabilities
        (B, classes) for mixed samples, counted as their largest class."""
        if labels.shape == logits.shape:
            labels = labels.argmax(dim=1)
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
