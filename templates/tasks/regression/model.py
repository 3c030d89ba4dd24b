"""The task: the model of a regression, its loss, its metrics (MAE and R²) and its training
step. Change the network in `build_model`, the loss or what a step does in `Regression`; the
Trainer runs any `Task` (the contract below)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from config import Config


class LinearRegression(nn.Module):
    """y = x . w + b: the right model when the truth is linear, and its weights are readable."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(inputs)  # (B, features) -> (B, 1)


class MLPRegressor(nn.Module):
    """Two hidden ReLU layers, for targets that are not linear in the inputs."""

    def __init__(self, num_features: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Linear(num_features, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden_dim, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(inputs))  # (B, features) -> (B, 1)


{% if cookiecutter.dataset == "csv" %}
class Affine(nn.Module):
    """x * scale + shift, with fixed scale and shift: standardises the inputs, or brings the
    output back to the target's units. They are buffers, so every checkpoint carries them."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.scale + self.shift


def build_model(cfg: Config, num_features: int, statistics: dict[str, torch.Tensor]) -> nn.Module:
    """The model described by `cfg`, with freshly initialised weights, between the
    standardisation of the inputs and the return to the target's units (with the training
    split's `statistics`): columns of any scale train alike at one learning rate, while the loss
    and the metrics stay in the target's own units."""
    if cfg.model == "mlp":
        model = MLPRegressor(num_features, cfg.hidden_dim)
    else:
        model = LinearRegression(num_features)
    stats = statistics
    return nn.Sequential(
        Affine(1 / stats["x_std"], -stats["x_mean"] / stats["x_std"]),
        model,
        Affine(stats["y_std"], stats["y_mean"]),
    )
{% else %}
def build_model(cfg: Config, num_features: int) -> nn.Module:
    """The model described by `cfg`, with freshly initialised weights."""
    if cfg.model == "mlp":
        return MLPRegressor(num_features, cfg.hidden_dim)
    return LinearRegression(num_features)
{% endif %}


{% include "shared/task_contract.py" %}


class Regression(Task):
    """A regression: `loss` (MSE, L1, which minds outliers less, or Huber) between the
    predictions and the targets, with MAE and R² as its metrics. None of the losses wants an
    activation on the output."""

    def __init__(self, model: nn.Module, loss: str) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = {"mse": nn.MSELoss(), "l1": nn.L1Loss(), "huber": nn.HuberLoss()}[loss]

    def training_step(self, batch: Batch) -> Step:
        inputs, targets = batch
        predictions = self.model(inputs)  # (B, 1)
        return Step(self.loss_fn(predictions, targets), predictions, targets)

    def validation_step(self, batch: Batch) -> Step:
        inputs, targets = batch
        predictions = self.evaluated()(inputs)
        return Step(self.loss_fn(predictions, targets), predictions, targets)

    def metrics(self) -> RegressionMetrics:
        return RegressionMetrics()

    def overfitted(
        self, batch: Batch, start: dict[str, float], end: dict[str, float]
    ) -> tuple[bool, str]:
        """A linear model cannot memorise noise, so the goal is the loss of this batch's exact
        least-squares fit (or 99% below the start, whichever is higher)."""
        inputs, targets = (t.double().cpu() for t in batch)
        design = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=torch.double)], dim=1)
        solution = torch.linalg.lstsq(design, targets).solution
        best_linear = self.loss_fn(design @ solution, targets).item()
        goal = max(0.01 * start["loss"], 1.02 * best_linear + 1e-6)
        return end["loss"] <= goal, f"the loss down to {goal:.4g} (what least squares reaches)"


{% if cookiecutter.dataset == "csv" %}
def build_task(cfg: Config, num_features: int, statistics: dict[str, torch.Tensor]) -> Regression:
    """The task of `cfg`, for `num_features` inputs with the training split's `statistics`."""
    return Regression(build_model(cfg, num_features, statistics), cfg.loss)
{% else %}
def build_task(cfg: Config, num_features: int) -> Regression:
    """The task of `cfg`, for `num_features` inputs."""
    return Regression(build_model(cfg, num_features), cfg.loss)
{% endif %}


class RegressionMetrics:
    """MAE and R² over many batches, from sums kept on the device."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor | float] = dict.fromkeys(
            ("abs_error", "squared_error", "target", "squared_target"), 0.0
        )
        self.count = 0

    def update(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch of predictions."""
        error = predictions.float() - targets
        self.sums["abs_error"] += error.abs().sum()
        self.sums["squared_error"] += error.square().sum()
        self.sums["target"] += targets.sum()
        self.sums["squared_target"] += targets.square().sum()
        self.count += targets.numel()

    def state_dict(self) -> dict[str, float]:
        """The sums so far, as plain data for mid-epoch checkpoints."""
        return {**{k: float(v) for k, v in self.sums.items()}, "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.count = int(state["count"])
        self.sums = {k: state[k] for k in self.sums}

    def compute(self) -> dict[str, float]:
        """MAE, and R² = 1 - squared error / variance of the targets (1 is perfect)."""
        n = max(self.count, 1)
        sums = {k: float(v) for k, v in self.sums.items()}
        variance = sums["squared_target"] - sums["target"] ** 2 / n
        # R² is undefined for fewer than two distinct targets (one sample in --overfit-batch).
        defined = self.count > 1 and variance > 1e-9 * sums["squared_target"]
        return {
            "mae": sums["abs_error"] / n,
            "r2": 1 - sums["squared_error"] / variance if defined else math.nan,
        }
