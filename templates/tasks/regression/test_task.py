"""What is special to regression: the linear data, its metrics and the least-squares goal."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from config import Config
from dataset import INTERCEPT, generate_linear, true_weights
from main import main
from model import LinearRegression, RegressionMetrics, describe, overfitted


def test_the_data_follows_y_equals_3x_plus_2_plus_noise() -> None:
    data = generate_linear(20000, 1, noise=2.0, seed=0)
    x, y = data["inputs"], data["targets"]
    assert x.shape == (20000, 1) and y.shape == (20000, 1)
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    slope, intercept = torch.linalg.lstsq(design, y).solution.flatten().tolist()
    assert slope == pytest.approx(3, abs=0.05) and intercept == pytest.approx(2, abs=0.05)
    residual = y - (3 * x + 2)
    assert residual.std().item() == pytest.approx(2, abs=0.05)
    assert torch.equal(x, generate_linear(20000, 1, noise=2.0, seed=0)["inputs"])


def test_the_multi_feature_variant_has_known_weights() -> None:
    assert true_weights(1).tolist() == [3.0]
    assert true_weights(3).tolist() == pytest.approx([3.0, -2.0, 4 / 3])
    data = generate_linear(50, 3, noise=0.0, seed=1)
    assert torch.allclose(data["targets"].flatten(), data["inputs"] @ true_weights(3) + INTERCEPT)


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
    data = generate_linear(64, 1, noise=2.0, seed=0)
    x, y = data["inputs"], data["targets"]
    design = torch.cat([x, torch.ones(64, 1)], dim=1)
    best = nn.MSELoss()(design @ torch.linalg.lstsq(design, y).solution, y).item()
    start = {"loss": 17.0}
    assert overfitted(nn.MSELoss(), x, y, start, {"loss": best * 1.01})[0]
    assert not overfitted(nn.MSELoss(), x, y, start, {"loss": best * 1.5})[0]


def test_describe_prints_the_learned_line_beside_the_truth() -> None:
    model = LinearRegression(1)
    with torch.no_grad():
        model.linear.weight.fill_(2.5)
        model.linear.bias.fill_(-1.0)
    text = describe(model, Config())
    assert "learned  y = 2.500 x - 1.000" in text and "truth    y = 3.000 x + 2.000" in text


def test_a_short_run_approaches_the_true_line(workdir, capsys) -> None:
    assert main(["num_samples=2000", "epochs=6", "lr=0.1", "run_name=r"]) == 0
    learned = capsys.readouterr().out.split("learned  y = ")[1].split()
    assert float(learned[0]) == pytest.approx(3, abs=0.3)
