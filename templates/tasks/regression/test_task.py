{% if cookiecutter.dataset == "csv" %}
"""What is special to regression: your CSV file (its checks, split and scales), --predict, the
metrics and the least-squares goal."""
{% else %}
"""What is special to regression: the linear data, its metrics and the least-squares goal."""
{% endif %}

from __future__ import annotations

{% if cookiecutter.dataset == "csv" %}
import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

{% endif %}
import pytest
import torch
{% if cookiecutter.dataset == "csv" %}
from hypothesis import example, given, settings
from hypothesis import strategies as st
{% endif %}
from torch import nn

{% if cookiecutter.dataset == "csv" %}
from config import Config, ConfigError
from dataset import DataError, make_dataloaders, read_csv, training_statistics
from main import main
from model import Regression, RegressionMetrics
from tune import search_space
from utils import load_checkpoint
{% else %}
from config import Config, ConfigError
from dataset import INTERCEPT, generate_linear, true_weights
from main import main
from model import LinearRegression, Regression, RegressionMetrics
from report import describe
from tune import search_space
{% endif %}


def test_mae_and_r2_match_their_definitions() -> None:
    predictions, targets = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([[1.5], [2.0], [3.0]])
    metrics = RegressionMetrics()
    metrics.update(predictions[:2], targets[:2])
    metrics.update(predictions[2:], targets[2:])
    values = metrics.compute()
    assert values["mae"] == pytest.approx(0.5)
    variance = ((targets - targets.mean()) ** 2).sum().item()
    assert values["r2"] == pytest.approx(1 - 1.25 / variance)
    restored = RegressionMetrics()
    restored.load_state_dict(metrics.state_dict())
    assert restored.compute() == values


def test_the_overfit_goal_is_the_least_squares_fit() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=generator)
    y = x @ torch.tensor([[3.0], [-1.0]]) + 2 + 2 * torch.randn(64, 1, generator=generator)
    design = torch.cat([x, torch.ones(64, 1)], dim=1)
    best = nn.MSELoss()(design @ torch.linalg.lstsq(design, y).solution, y).item()
    start = {"loss": 17.0}
    task = Regression(nn.Linear(2, 1), loss="mse")
    assert task.overfitted((x, y), start, {"loss": best * 1.01})[0]
    assert not task.overfitted((x, y), start, {"loss": best * 1.5})[0]


def test_tune_refuses_to_search_a_key_the_model_ignores() -> None:
    """hidden_dim sizes the mlp only: with model=linear its trials would differ in nothing."""
    with pytest.raises(ConfigError, match=r"hidden_dim matters only with model=mlp \(here model"):
        search_space(Config(), [("hidden_dim", "16:64:16")], [])
    assert list(search_space(Config(model="mlp"), [("hidden_dim", "16:64:16")], [])) == [
        "hidden_dim"
    ]
    assert len(search_space(Config(), [("hidden_dim", "16:64:16"), ("model", "linear,mlp")], []))


{% include "tasks/regression/test_data_" ~ cookiecutter.dataset ~ ".py" %}
