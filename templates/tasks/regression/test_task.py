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
from torch import nn

{% if cookiecutter.dataset == "csv" %}
from config import Config
from dataset import make_dataloaders
from main import main
from model import Regression, RegressionMetrics
from utils import load_checkpoint
{% else %}
from config import Config
from dataset import INTERCEPT, generate_linear, true_weights
from main import main
from model import LinearRegression, Regression, RegressionMetrics
from report import describe
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


{% include "tasks/regression/test_data_" ~ cookiecutter.dataset ~ ".py" %}
