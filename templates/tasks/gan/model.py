"""The networks (a DCGAN generator and discriminator), their losses, and a sample-quality measure.

The alternating updates live in `GANTrainer` (train.py): per batch, one discriminator step
on real images and detached fakes, then one generator step through the frozen discriminator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from config import Config
from dataset import IMAGE_SIZE, image_channels
from utils import titled_grid

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Generator(nn.Sequential):
    """Noise (B, latent_dim) -> images (B, C, 32, 32) in [-1, 1]: transposed convolutions double
    the resolution from 4x4 while halving the channels (Radford et al., 2016)."""

    def __init__(self, latent_dim: int, width: int, channels: int) -> None:
        super().__init__(
            nn.Unflatten(1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, 4 * width, 4, stride=1, padding=0, bias=False),  # 4x4
            nn.BatchNorm2d(4 * width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1, bias=False),  # 8x8
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),  # 16x16
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),  # 32x32
            nn.Tanh(),
        )


class Discriminator(nn.Sequential):
    """Images (B, C, 32, 32) -> one logit each, "real" when positive: strided convolutions with
    leaky ReLU, the mirror image of the generator."""

    def __init__(self, width: int, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),  # 16x16
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),  # 8x8
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1, bias=False),  # 4x4
            nn.BatchNorm2d(4 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * width, 1, 4, stride=1, padding=0),  # 1x1
            nn.Flatten(0),
        )


class GAN(nn.Module):
    """Both networks in one module, so one state dict (and one checkpoint) holds them.

    `forward(real)` returns the discriminator's logits on the real images and on as many fresh
    fakes, side by side as (B, 2): what the generator's loss and the metrics read.
    """

    def __init__(self, latent_dim: int, width: int, channels: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim, width, channels)
        self.discriminator = Discriminator(width, channels)
        self.apply(dcgan_init)

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` generated images; `generator` fixes the noise (e.g. for the sample grid)."""
        device = next(self.parameters()).device
        noise = torch.randn(count, self.latent_dim, generator=generator).to(device)
        return self.generator(noise)

    def forward(self, real: torch.Tensor) -> torch.Tensor:
        fake = self.sample(len(real))
        return torch.stack([self.discriminator(real), self.discriminator(fake)], dim=1)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights from N(0, 0.02), norm weights from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_model(cfg: Config) -> nn.Module:
    """The model described by `cfg`, with freshly initialised weights."""
    return GAN(cfg.latent_dim, cfg.width, image_channels(cfg))


def parameter_groups(model: GAN, cfg: Config) -> list[dict]:
    """The Trainer's optimizer trains the generator; the discriminator has its own. Adam's first
    beta of 0.5 instead of 0.9 keeps the two from chasing each other's stale gradients."""
    return [{"params": list(model.generator.parameters()), "lr": cfg.lr, "betas": (0.5, 0.999)}]


class GeneratorLoss(nn.Module):
    """The non-saturating generator loss, -log D(G(z)): it pushes fakes towards "real", and its
    gradient stays strong while the discriminator still rejects them. Ignores the labels."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.softplus(-logits[:, 1].float()).mean()


class DiscriminatorLoss(nn.Module):
    """-log D(x) - log(1 - D(G(z))) from the (B, 2) logits on real and fake images."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return (F.softplus(-logits[:, 0]) + F.softplus(logits[:, 1])).mean()


def build_loss(cfg: Config) -> nn.Module:
    """The generator's loss; the discriminator's is `DiscriminatorLoss`."""
    return GeneratorLoss()


class AdversarialMetrics:
    """How the game stands: the discriminator's loss and its mean belief that real images
    (`d_real`) and fakes (`d_fake`) are real. At balance both head towards 0.5."""

    def __init__(self) -> None:
        self.sums = torch.zeros(3)  # d_loss * count, D(real), D(fake)
        self.count = 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one batch of (B, 2) logits."""
        logits = logits.detach().float()
        d_loss = DiscriminatorLoss()(logits) * len(logits)
        probs = logits.sigmoid()
        batch = torch.stack([d_loss, probs[:, 0].sum(), probs[:, 1].sum()])
        self.sums = self.sums.to(batch.device) + batch
        self.count += len(logits)

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """The sums so far, as plain data for mid-epoch checkpoints."""
        return {"sums": self.sums.cpu(), "count": self.count}

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        self.sums, self.count = state["sums"], state["count"]

    def compute(self) -> dict[str, float]:
        """The means over everything added so far."""
        d_loss, d_real, d_fake = (self.sums / max(self.count, 1)).tolist()
        return {"d_loss": d_loss, "d_real": d_real, "d_fake": d_fake}


def build_metrics(cfg: Config) -> type[AdversarialMetrics]:
    """The per-batch metrics of this task; the sample quality (`fd`) comes per epoch."""
    return AdversarialMetrics


def image_features(images: torch.Tensor) -> torch.Tensor:
    """What the Frechet distance compares: each image averaged down to 16x16, as a vector."""
    return F.avg_pool2d(images.float(), 2).flatten(1).double()


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Frechet distance between Gaussians fitted to two sets of feature vectors (N, D):
    |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r^1/2 S_f S_r^1/2)^1/2), as in FID, but on pixels
    averaged down to 16x16 instead of Inception features, so it needs no download. 0 means the
    same mean and covariance; lower is better."""
    mean_real, mean_fake = real.mean(dim=0), fake.mean(dim=0)
    cov_real = torch.cov(real.T, correction=0)
    cov_fake = torch.cov(fake.T, correction=0)
    values, vectors = torch.linalg.eigh(cov_real)
    root = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root @ cov_fake @ root).clamp_min(0).sqrt().sum()
    distance = (mean_real - mean_fake).square().sum() + cov_real.trace() + cov_fake.trace()
    return (distance - 2 * cross).item()


def overfitted(
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    start: dict[str, float],
    end: dict[str, float],
) -> tuple[bool, str]:
    """Whether --overfit-batch has learned to imitate this batch, and that goal in words."""
    goal = 0.4 * start["fd"]
    return (
        end["fd"] <= goal,
        f"the Frechet distance of its samples to the batch down by 60% (to <= {goal:.4g})",
    )


def prediction_picture(
    real: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, cfg: Config
) -> tuple[str, Figure]:
    """For TensorBoard: real validation images, each titled with the probability the
    discriminator gives it of being real (near 0.5 for all: the game is balanced)."""
    scores = logits[:16, 0].sigmoid().tolist()  # column 0: the real images
    return "discriminator_on_real/val", titled_grid(real, [f"real? {p:.2f}" for p in scores])


def describe(model: nn.Module, cfg: Config) -> str:
    """What the trained model does."""
    return (
        f"the generator turns {cfg.latent_dim} numbers of noise into a {IMAGE_SIZE}x{IMAGE_SIZE} "
        "image like the training images; fd (lower is better) measures how close its samples "
        "are to real ones"
    )
