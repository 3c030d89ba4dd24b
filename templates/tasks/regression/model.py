"""The model, its loss and the metrics of a regression: MAE and R²."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from config import Config
{% if cookiecutter.dataset == "csv" %}
from dataset import feature_names, target_name, training_statistics
{% else %}
from dataset import INTERCEPT, true_weights
{% endif %}

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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


def build_model(cfg: Config) -> nn.Module:
    """The model described by `cfg`, with freshly initialised weights, between the
    standardisation of the inputs and the return to the target's units (with the training
    split's statistics): columns of any scale train alike at one learning rate, while the loss
    and the metrics stay in the target's own units."""
    num_features = len(feature_names(cfg))
    if cfg.model == "mlp":
        model = MLPRegressor(num_features, cfg.hidden_dim)
    else:
        model = LinearRegression(num_features)
    stats = training_statistics(cfg)
    return nn.Sequential(
        Affine(1 / stats["x_std"], -stats["x_mean"] / stats["x_std"]),
        model,
        Affine(stats["y_std"], stats["y_mean"]),
    )
{% else %}
def build_model(cfg: Config) -> nn.Module:
    """The model described by `cfg`, with freshly initialised weights."""
    if cfg.model == "mlp":
        return MLPRegressor(cfg.num_features, cfg.hidden_dim)
    return LinearRegression(cfg.num_features)
{% endif %}


def parameter_groups(model: nn.Module, cfg: Config) -> list[dict]:
    """All parameters learn at `lr`."""
    return [{"params": list(model.parameters()), "lr": cfg.lr}]


def build_loss(cfg: Config) -> nn.Module:
    """MSE, L1 (robust to outliers) or Huber; none of them wants an activation on the output."""
    return {"mse": nn.MSELoss(), "l1": nn.L1Loss(), "huber": nn.HuberLoss()}[cfg.loss]


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


def build_metrics(cfg: Config) -> type[RegressionMetrics]:
    """The metrics of this task: MAE and R²."""
    return RegressionMetrics


def overfitted(
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    start: dict[str, float],
    end: dict[str, float],
) -> tuple[bool, str]:
    """Whether --overfit-batch has fitted this batch as well as it can be, and that goal in words.

    A linear model cannot memorise noise, so the bar is the loss of this batch's exact
    least-squares fit (or 99% below the start, whichever is higher).
    """
    design = torch.cat([inputs, torch.ones(len(inputs), 1, device=inputs.device)], dim=1)
    solution = torch.linalg.lstsq(design.double().cpu(), targets.double().cpu()).solution
    best_linear = loss_fn(design.double().cpu() @ solution, targets.double().cpu()).item()
    goal = max(0.01 * start["loss"], 1.02 * best_linear + 1e-6)
    return end["loss"] <= goal, f"the loss down to {goal:.4g} (what least squares reaches)"


def prediction_picture(
    inputs: torch.Tensor, predictions: torch.Tensor, targets: torch.Tensor, cfg: Config
) -> tuple[str, Figure]:
    """For TensorBoard: predicted against true values of validation samples; perfect
    predictions lie on the dashed diagonal."""
    from matplotlib.figure import Figure  # imported here: slow to load, and only pictures need it

    true, predicted = targets.flatten(), predictions.flatten()
    low, high = min(true.min(), predicted.min()).item(), max(true.max(), predicted.max()).item()
    fig = Figure(figsize=(4, 4))
    fig.subplots_adjust(0.17, 0.13, 0.97, 0.97)  # fixed margins: cheaper than tight_layout
    ax = fig.subplots()
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.scatter(true.numpy(), predicted.numpy(), s=12)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    return "predictions/val", fig


{% if cookiecutter.dataset == "csv" %}
def describe(model: nn.Module, cfg: Config) -> str:
    """The fitted equation in the columns' own units, for the linear model."""
    standardize, regressor, restore = (module.cpu() for module in model)
    if not isinstance(regressor, LinearRegression):
        return "the mlp has no weights to read as an equation; its val_r2 says how it fits"
    # y = restore(w . standardize(x) + b), rewritten as y = w' . x + b'.
    weight, bias = regressor.linear.weight.detach().flatten(), regressor.linear.bias.detach()
    weights = restore.scale * weight * standardize.scale
    intercept = restore.scale * (bias + (weight * standardize.shift).sum()) + restore.shift
    names = feature_names(cfg)
    return f"learned  {target_name(cfg)} = {equation(weights.tolist(), intercept.item(), names)}"


def prediction_columns(outputs: torch.Tensor, cfg: Config) -> tuple[list[str], list[list[str]]]:
    """The column --predict prints and saves for each row: the predicted target, in its units."""
    return [f"predicted_{target_name(cfg)}"], [[f"{value:.6g}"] for value in outputs[:, 0].tolist()]
{% else %}
def describe(model: nn.Module, cfg: Config) -> str:
    """The fitted line next to the truth, for the linear model."""
    if not isinstance(model, LinearRegression):
        return "the mlp has no weights to compare with the truth; its val_r2 says how it fits"
    weights = model.linear.weight.detach().cpu().flatten()
    truth = true_weights(cfg.num_features)
    names = ["x"] if cfg.num_features == 1 else [f"x{i + 1}" for i in range(cfg.num_features)]
    return (
        f"learned  y = {equation(weights.tolist(), model.linear.bias.item(), names)}\n"
        f"truth    y = {equation(truth.tolist(), INTERCEPT, names)}"
    )
{% endif %}


def equation(weights: list[float], intercept: float, names: list[str]) -> str:
    """`3.000 x + 2.000`: each weight with its input's name, then the intercept."""
    terms = [f"{w:.3f} {name}" for w, name in zip(weights, names, strict=True)]
    return " + ".join([*terms, f"{intercept:.3f}"]).replace("+ -", "- ")
