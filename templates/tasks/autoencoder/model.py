"""The tasks: the autoencoder that learns without labels (`Reconstruction`) and the classifier
built on its encoder (`Classification`), their networks, losses, metrics and training steps.
Change the networks in `build_model`, a loss or what a step does in the task classes; the
Trainer runs any `Task` (the contract below)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from config import Config, ConfigError


class Encoder(nn.Sequential):
    """Three stride-2 conv blocks and a linear map to the code: (B, C, S, S) -> (B, bottleneck)."""

    def __init__(
        self, in_channels: int, image_size: int, width: int, bottleneck: int, norm: str = "batch"
    ) -> None:
        side = image_size // 8
        super().__init__(
            *down(in_channels, width, norm),
            *down(width, 2 * width, norm),
            *down(2 * width, 4 * width, norm),
            nn.Flatten(),
            nn.Linear(4 * width * side * side, bottleneck),
        )


class Decoder(nn.Sequential):
    """The encoder mirrored: (B, bottleneck) -> (B, C, S, S) in [-1, 1], the inputs' range."""

    def __init__(
        self, out_channels: int, image_size: int, width: int, bottleneck: int, norm: str = "batch"
    ) -> None:
        side = image_size // 8
        super().__init__(
            nn.Linear(bottleneck, 4 * width * side * side),
            nn.Unflatten(1, (4 * width, side, side)),
            nn.ReLU(inplace=True),
            *up(4 * width, 2 * width, norm),
            *up(2 * width, width, norm),
            nn.ConvTranspose2d(width, out_channels, kernel_size=4, stride=2, padding=1),
            nn.Tanh(),
        )


def down(in_channels: int, out_channels: int, norm: str) -> list[nn.Module]:
    """A 3x3 convolution of stride 2, normalisation and ReLU: halves the resolution."""
    return [
        # A norm after the conv would cancel its bias: it has one only without.
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=norm == "none"),
        normalisation(norm, out_channels),
        nn.ReLU(inplace=True),
    ]


def up(in_channels: int, out_channels: int, norm: str) -> list[nn.Module]:
    """A 4x4 transposed convolution of stride 2, normalisation and ReLU: doubles the resolution."""
    return [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=norm == "none"),
        normalisation(norm, out_channels),
        nn.ReLU(inplace=True),
    ]


{% include "shared/normalisation.py" %}


class Autoencoder(nn.Module):
    """Compresses an image into `bottleneck` numbers and reconstructs it from them: to do that
    well, the code must capture what the image shows, which is what the classifier reuses."""

    def __init__(
        self, in_channels: int, image_size: int, width: int, bottleneck: int, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, image_size, width, bottleneck, norm)
        self.decoder = Decoder(in_channels, image_size, width, bottleneck, norm)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))  # (B, C, S, S) reconstructions


class Classifier(nn.Module):
    """An encoder and a small head that classifies its code.

    Finetuned, the encoder is the pretrained one and frozen (seed 000: parts that need no gradient
    get none): it runs without autograd, keeps its batch-norm statistics, and only the head
    learns. The pretrained decoder is kept, frozen and unused in `forward`, for test-time
    training. From scratch, the encoder is fresh and trains with the head, and there is no
    decoder.
    """

    def __init__(
        self,
        encoder: Encoder,
        bottleneck: int,
        hidden_dim: int,
        num_classes: int,
        decoder: Decoder | None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = nn.Sequential(
            nn.Linear(bottleneck, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, num_classes),
        )
        self.frozen = decoder is not None
        if decoder is not None:
            self.encoder.requires_grad_(False)
            decoder.requires_grad_(False)

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # frozen means its batch-norm statistics too
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            code = self.encoder(images)  # (B, C, S, S) -> (B, bottleneck)
        return self.head(code)  # (B, classes) logits


def build_model(cfg: Config, num_classes: int, channels: int) -> Autoencoder | Classifier:
    """The model of `cfg.stage`, freshly initialised: the autoencoder for pretrain (and all,
    which starts with it), a classifier of `num_classes` otherwise. A finetune model gets its
    pretrained encoder and decoder from `load_encoder` (report.py)."""
    if cfg.image_size % 8:
        raise ConfigError(
            f"image_size must be a multiple of 8 (the encoder halves it three times), got "
            f"{cfg.image_size}; try image_size={cfg.image_size // 8 * 8 or 8}."
        )
    autoencoder = Autoencoder(channels, cfg.image_size, cfg.width, cfg.bottleneck, cfg.norm)
    if cfg.stage in ("all", "pretrain"):
        return autoencoder
    decoder = autoencoder.decoder if cfg.stage == "finetune" else None
    return Classifier(autoencoder.encoder, cfg.bottleneck, cfg.hidden_dim, num_classes, decoder)


def reconstruction_loss(cfg: Config) -> nn.Module:
    """MSE, or L1, which blurs less and minds outliers less."""
    return nn.L1Loss() if cfg.loss == "l1" else nn.MSELoss()


{% include "shared/task_contract.py" %}


class Reconstruction(Task):
    """The autoencoder learns to reconstruct its input: no label needed (unlabelled images
    too); PSNR as its metric."""

    def __init__(self, model: Autoencoder, loss: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss

    def training_step(self, batch: Batch) -> Step:
        images, _ = batch  # the labels go unused (-1 for unlabelled images)
        reconstructions = self.model(images)
        return Step(self.loss_fn(reconstructions, images), reconstructions, images)

    def validation_step(self, batch: Batch) -> Step:
        images, _ = batch
        reconstructions = self.evaluated()(images)
        return Step(self.loss_fn(reconstructions, images), reconstructions, images)

    def metrics(self) -> ReconstructionMetrics:
        return ReconstructionMetrics()

    def overfitted(
        self, batch: Batch, start: dict[str, float], end: dict[str, float]
    ) -> tuple[bool, str]:
        return end["psnr"] >= 18, "a PSNR of 18 dB or more (pixel errors about 1/8 of the range)"


class Classification(Task):
    """The classifier on the encoder: cross-entropy on its logits; accuracy as its metric."""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = nn.CrossEntropyLoss()  # on logits: the model must not apply a softmax

    def training_step(self, batch: Batch) -> Step:
        images, labels = batch
        logits = self.model(images)  # (B, classes)
        return Step(self.loss_fn(logits, labels), logits, labels)

    def validation_step(self, batch: Batch) -> Step:
        images, labels = batch
        logits = self.evaluated()(images)
        return Step(self.loss_fn(logits, labels), logits, labels)

    def metrics(self) -> Accuracy:
        return Accuracy()

    def overfitted(
        self, batch: Batch, start: dict[str, float], end: dict[str, float]
    ) -> tuple[bool, str]:
        return end["acc"] == 1.0, "every sample of the batch classified correctly"


def build_task(cfg: Config, num_classes: int, channels: int) -> Reconstruction | Classification:
    """The task of `cfg.stage`, for `channels`-channel images of `num_classes` classes."""
    model = build_model(cfg, num_classes, channels)
    if isinstance(model, Autoencoder):
        return Reconstruction(model, reconstruction_loss(cfg))
    return Classification(model)


class ReconstructionMetrics:
    """PSNR of the reconstructions, from squared errors summed on the device."""

    def __init__(self) -> None:
        self.squared_error: torch.Tensor | float = 0.0
        self.count = 0

    def update(self, reconstructions: torch.Tensor, images: torch.Tensor) -> None:
        """Add one batch."""
        self.squared_error += (reconstructions.float() - images).square().sum()
        self.count += images.numel()

    def state_dict(self) -> dict[str, float]:
        return {"squared_error": float(self.squared_error), "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.squared_error, self.count = state["squared_error"], int(state["count"])

    def compute(self) -> dict[str, float]:
        """PSNR in dB for pixels in [-1, 1] (a range of 2); higher is better."""
        mse = float(self.squared_error) / max(self.count, 1)
        return {"psnr": 10 * math.log10(4 / mse) if mse > 0 else math.inf}


{% include "shared/accuracy.py" %}
