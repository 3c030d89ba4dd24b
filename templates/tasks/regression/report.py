"""What the regression shows of itself: its predictions against the truth in TensorBoard and
the equation it learned."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from config import Config
{% if cookiecutter.dataset == "csv" %}
from dataset import feature_names, target_name
{% else %}
from dataset import INTERCEPT, true_weights
{% endif %}
from model import LinearRegression

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@torch.inference_mode()
def prediction_pictures(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, cfg: Config
) -> dict[str, Figure]:
    """For TensorBoard, every `log_images_every` epochs: predicted against true values of
    validation samples; perfect predictions lie on the dashed diagonal."""
    from matplotlib.figure import Figure  # imported here: slow to load, and only pictures need it

    true, predicted = targets.flatten(), model(inputs).float().cpu().flatten()
    low, high = min(true.min(), predicted.min()).item(), max(true.max(), predicted.max()).item()
    fig = Figure(figsize=(4, 4))
    fig.subplots_adjust(0.17, 0.13, 0.97, 0.97)  # fixed margins: cheaper than tight_layout
    ax = fig.subplots()
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.scatter(true.numpy(), predicted.numpy(), s=12)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    return {"predictions/val": fig}


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


def test_report(
    model: nn.Module, loader: DataLoader, cfg: Config, results: dict[str, Any]
) -> dict[str, Any]:
    """What --test adds to the test split's `results`: nothing; the loss, MAE and R² say it."""
    return {}
