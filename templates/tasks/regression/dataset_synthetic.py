"""The data: y = x . weights + 2 + noise, generated from the seed, split into train/val/test.

With one feature this is seed 004's example, y = 3x + 2 + noise with noise ~ N(0, 2): a problem
whose answer is known, so the model's weights can be checked against the truth. The samples are
generated once per setting and cached in `data_dir`. To use your own data, load your inputs as a
float tensor `(N, features)` and targets as `(N, 1)` in `make_dataloaders` instead.
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import DataLoader, Dataset

from config import Config
from utils import TensorBatches, cached, data_folder, make_loaders, split_indices

INTERCEPT = 2.0


def true_weights(num_features: int) -> torch.Tensor:
    """The weights the data is generated with: 3, -2, 1.33, ... (3 for a single feature)."""
    return 3.0 * (-2 / 3) ** torch.arange(num_features, dtype=torch.float32)


def model_inputs(cfg: Config) -> dict[str, int]:
    """What the task (`build_task` in model.py) needs to know about the data."""
    return {"num_features": cfg.num_features}


{% include "tasks/regression/regression_dataset.py" %}


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles."""
    name = f"linear_n{cfg.num_samples}_x{cfg.num_features}_noise{cfg.noise:g}_seed{cfg.seed}.pt"
    data = cached(
        data_folder(cfg) / name,
        lambda: generate_linear(cfg.num_samples, cfg.num_features, cfg.noise, cfg.seed),
    )
    # The samples are independent draws, so contiguous ranges are random splits.
    train, val, test = (
        RegressionDataset(data["inputs"][part], data["targets"][part])
        for part in split_indices(len(data["targets"]), cfg)
    )
    return make_loaders(train, val, test, cfg)


def generate_linear(
    num_samples: int, num_features: int, noise: float, seed: int
) -> dict[str, torch.Tensor]:
    """Draw x ~ N(0, 1) and y = x . true_weights + INTERCEPT + noise * N(0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_samples, num_features, generator=generator)
    clean = inputs @ true_weights(num_features) + INTERCEPT
    targets = clean + noise * torch.randn(num_samples, generator=generator)
    return {"inputs": inputs, "targets": targets.unsqueeze(1)}
