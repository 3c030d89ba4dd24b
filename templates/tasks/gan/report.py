"""What the GAN shows of itself: its samples and the discriminator's verdicts in TensorBoard,
and what it learned."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from config import Config
from dataset import IMAGE_SIZE
from utils import titled_grid

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@torch.inference_mode()
def prediction_pictures(
    model: nn.Module, real: torch.Tensor, labels: torch.Tensor, cfg: Config
) -> dict[str, torch.Tensor | Figure]:
    """For TensorBoard, every `log_images_every` epochs: a grid of 64 samples from the same
    fixed noise, so the same latent points can be watched turning into images; and real
    validation images, each titled with the probability the discriminator gives it of being
    real (near 0.5 for all: the game is balanced)."""
    samples = model.sample(64, torch.Generator().manual_seed(cfg.seed)).float().cpu()
    scores = model.discriminator(real[:16]).float().sigmoid().tolist()
    titles = [f"real? {p:.2f}" for p in scores]
    return {
        "samples/fixed_noise": (samples + 1) / 2,
        "discriminator_on_real/val": titled_grid(real[:16].cpu(), titles),
    }


def describe(model: nn.Module, cfg: Config) -> str:
    """What the trained model does."""
    return (
        f"the generator turns {cfg.latent_dim} numbers of noise into a {IMAGE_SIZE}x{IMAGE_SIZE} "
        "image like the training images; fd (lower is better) measures how close its samples "
        "are to real ones"
    )


def test_report(
    model: nn.Module, loader: DataLoader, cfg: Config, results: dict[str, Any]
) -> dict[str, Any]:
    """What --test adds to the test split's `results`: nothing; fd says it."""
    return {}
