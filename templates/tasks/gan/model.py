"""The task: the networks of a DCGAN (a generator and a discriminator), their losses, the
sample-quality measure `fd`, and the training step that plays one round of their game. Change
the networks in `build_model`, a loss or what a round does in `ImageGeneration`; the Trainer
runs any `Task` (the contract below)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from config import Config


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


def build_model(cfg: Config, channels: int) -> GAN:
    """The networks described by `cfg`, with freshly initialised weights, for images of
    `channels` channels."""
    return GAN(cfg.latent_dim, cfg.width, channels)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss, -log D(G(z)): it pushes fakes towards "real", and its
    gradient stays strong while the discriminator still rejects them."""
    return F.softplus(-fake_logits.float()).mean()


def discriminator_loss(logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))) from the (B, 2) logits on real and fake images."""
    logits = logits.float()
    return (F.softplus(-logits[:, 0]) + F.softplus(logits[:, 1])).mean()


{% include "shared/task_contract.py" %}


class ImageGeneration(Task):
    """The game of a GAN: each training step updates the discriminator with its own optimizer,
    then returns the generator's loss, which the Trainer steps with its optimizer (over the
    generator's parameters: see `parameter_groups`) and schedule.

    The discriminator's update takes the real batch against fresh fakes, detached so that its
    loss does not reach the generator; `accumulate_steps` applies to the generator only, and
    the discriminator steps on every batch at a constant rate. Both optimizers are in every
    checkpoint (the discriminator's through `get_extra_state`), so a resumed game continues
    exactly. Validation adds `fd` (see `GANMetrics`), which picks best.pt (monitor=fd in
    config.py): the generator's loss says nothing of the samples' quality, and rises as the
    discriminator learns.
    """

    loss_falls = False

    def __init__(self, model: GAN, cfg: Config, loss_scaling: bool) -> None:
        super().__init__()
        self.model = model
        self.seed, self.batch_size, self.fd_samples = cfg.seed, cfg.batch_size, cfg.fd_samples
        self.grad_clip = cfg.grad_clip
        # Adam's first beta of 0.5 instead of 0.9 keeps the two networks from chasing each
        # other's stale gradients (DCGAN).
        self.d_optimizer = torch.optim.Adam(
            model.discriminator.parameters(), lr=cfg.lr * cfg.d_lr_factor, betas=(0.5, 0.999)
        )
        # fp16 needs its gradients scaled, as the Trainer scales the generator's.
        self.d_scaler = torch.amp.GradScaler("cuda", enabled=loss_scaling)

    def parameter_groups(self, cfg: Config) -> list[dict[str, Any]]:
        """The Trainer's optimizer trains the generator; the discriminator has its own."""
        generator = list(self.model.generator.parameters())
        return [{"params": generator, "lr": cfg.lr, "betas": (0.5, 0.999)}]

    def training_step(self, batch: Batch) -> Step:
        real, _ = batch  # the labels go unused
        gan = self.model
        # 1. The discriminator learns to tell real images from fresh fakes.
        with torch.no_grad():  # its loss must not train the generator
            fake = gan.sample(len(real))
        logits = torch.stack([gan.discriminator(real), gan.discriminator(fake)], dim=1)
        d_loss = discriminator_loss(logits)
        self.update_discriminator(d_loss)
        # 2. The generator learns to make fakes that the updated discriminator calls real.
        fake = gan.sample(len(real))
        return Step(generator_loss(gan.discriminator(fake)), fake, real, game(d_loss, logits))

    def validation_step(self, batch: Batch) -> Step:
        real, _ = batch
        gan = self.evaluated()
        fake = gan.sample(len(real))
        logits = torch.stack([gan.discriminator(real), gan.discriminator(fake)], 1)
        loss = generator_loss(logits[:, 1])
        return Step(loss, fake, real, game(discriminator_loss(logits), logits))

    def exported(self, batch: Batch) -> tuple[nn.Module, torch.Tensor]:
        """For --export, the generator: noise (B, latent_dim) in, images out."""
        gan = self.evaluated()
        return gan.generator, torch.randn(len(batch[0]), gan.latent_dim)

    def update_discriminator(self, loss: torch.Tensor) -> None:
        """One step of the discriminator's own optimizer on `loss`, its gradients clipped like
        the generator's. Under torchrun they are averaged across processes here: the Trainer's
        DistributedDataParallel averages the generator's during the backward pass that follows
        this step."""
        self.d_optimizer.zero_grad(set_to_none=True)
        self.d_scaler.scale(loss).backward()
        parameters = list(self.model.discriminator.parameters())
        average_across_processes(parameters)
        if self.grad_clip > 0:
            self.d_scaler.unscale_(self.d_optimizer)  # clip the true gradients, not scaled ones
            nn.utils.clip_grad_norm_(parameters, self.grad_clip)
        self.d_scaler.step(self.d_optimizer)
        self.d_scaler.update()

    def metrics(self) -> GANMetrics:
        return GANMetrics(self.fixed_samples, self.fd_samples)

    def overfitted(
        self, batch: Batch, start: dict[str, float], end: dict[str, float]
    ) -> tuple[bool, str]:
        goal = 0.4 * start["fd"]
        return (
            end["fd"] <= goal,
            f"the Frechet distance of its samples to the batch down by 60% (to <= {goal:.4g})",
        )

    @torch.inference_mode()
    def fixed_samples(self, count: int) -> torch.Tensor:
        """`count` images generated in eval mode from noise fixed by `seed`, on the CPU."""
        training = self.model.training
        self.model.eval()
        noise = torch.Generator().manual_seed(self.seed)
        samples = [
            self.model.sample(min(self.batch_size, count - start), noise).float().cpu()
            for start in range(0, count, self.batch_size)
        ]
        self.model.train(training)
        return torch.cat(samples)

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "d_optimizer": self.d_optimizer.state_dict(),
            "d_scaler": self.d_scaler.state_dict(),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.d_scaler.load_state_dict(state["d_scaler"])


def build_task(cfg: Config, channels: int) -> ImageGeneration:
    """The task of `cfg` for images of `channels` channels."""
    # The Trainer's rule for fp16 (mixed_precision in train.py): asked for, or amp=auto on a GPU
    # without bfloat16.
    gpu = torch.cuda.is_available() and cfg.device in ("auto", "cuda")
    fp16 = gpu and (cfg.amp == "fp16" or (cfg.amp == "auto" and not torch.cuda.is_bf16_supported()))
    return ImageGeneration(build_model(cfg, channels), cfg, loss_scaling=fp16)


def game(d_loss: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """How the game stands, for the logs: the discriminator's loss and its mean belief that real
    images (`d_real`) and fakes (`d_fake`) are real. At balance both head towards 0.5."""
    beliefs = logits.detach().float().sigmoid().mean(dim=0)
    return {"d_loss": d_loss.detach(), "d_real": beliefs[0], "d_fake": beliefs[1]}


def average_across_processes(parameters: list[nn.Parameter]) -> None:
    """Under torchrun, each gradient becomes the mean of every process's."""
    if torch.distributed.is_initialized():
        processes = torch.distributed.get_world_size()
        for p in parameters:
            torch.distributed.all_reduce(p.grad)
            p.grad /= processes


class GANMetrics:
    """`fd`: the Frechet distance between the images seen and as many images generated from
    fixed noise (`fd_samples` at most), summed on the device as the real images' features'
    sums and outer products, which add up across processes."""

    def __init__(self, fixed_samples: Callable[[int], torch.Tensor], most: int) -> None:
        self.fixed_samples = fixed_samples
        self.most = most
        self.sums: dict[str, torch.Tensor | float] = {"features": 0.0, "outer": 0.0}
        self.count = 0

    def update(self, fakes: torch.Tensor, real: torch.Tensor) -> None:
        """Add one batch of real images (the fakes of a step draw fresh noise: not comparable)."""
        features = image_features(real)
        self.sums["features"] = self.sums["features"] + features.sum(dim=0)
        self.sums["outer"] = self.sums["outer"] + features.T @ features
        self.count += len(real)

    def state_dict(self) -> dict[str, Any]:
        return {**{k: torch.as_tensor(v).cpu() for k, v in self.sums.items()}, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = {key: state[key] for key in self.sums}
        self.count = state["count"]

    def compute(self) -> dict[str, float]:
        """The Frechet distance of the fixed-noise samples to the images seen; lower is better."""
        if not self.count:
            return {"fd": math.nan}
        mean = self.sums["features"].cpu() / self.count
        cov = self.sums["outer"].cpu() / self.count - torch.outer(mean, mean)
        fakes = image_features(self.fixed_samples(min(self.count, self.most)))
        fake_cov = torch.cov(fakes.T, correction=0)
        return {"fd": frechet_distance(mean, cov, fakes.mean(dim=0), fake_cov)}


def image_features(images: torch.Tensor) -> torch.Tensor:
    """What the Frechet distance compares: each image averaged down to 16x16, as a vector."""
    return F.avg_pool2d(images.float(), 2).flatten(1).double()


def frechet_distance(
    mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor
) -> float:
    """The Frechet distance between two Gaussians, |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2
    S_b S_a^1/2)^1/2), as in FID, but of pixels averaged down to 16x16 instead of Inception
    features, so it needs no download. 0 means the same mean and covariance."""
    values, vectors = torch.linalg.eigh(cov_a)
    root = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root @ cov_b @ root).clamp_min(0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace()
    return (distance - 2 * cross).item()
