"""The autoencoder, the classifier built on its encoder, their losses and metrics, and
test-time training."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from config import Config, ConfigError
from dataset import class_names, image_channels
from utils import CheckpointError, load_checkpoint, titled_grid, to_unit_range

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Encoder(nn.Sequential):
    """Three stride-2 conv blocks and a linear map to the code: (B, C, S, S) -> (B, bottleneck)."""

    def __init__(self, in_channels: int, image_size: int, width: int, bottleneck: int) -> None:
        side = image_size // 8
        super().__init__(
            *down(in_channels, width),
            *down(width, 2 * width),
            *down(2 * width, 4 * width),
            nn.Flatten(),
            nn.Linear(4 * width * side * side, bottleneck),
        )


class Decoder(nn.Sequential):
    """The encoder mirrored: (B, bottleneck) -> (B, C, S, S) in [-1, 1], the inputs' range."""

    def __init__(self, out_channels: int, image_size: int, width: int, bottleneck: int) -> None:
        side = image_size // 8
        super().__init__(
            nn.Linear(bottleneck, 4 * width * side * side),
            nn.Unflatten(1, (4 * width, side, side)),
            nn.ReLU(inplace=True),
            *up(4 * width, 2 * width),
            *up(2 * width, width),
            nn.ConvTranspose2d(width, out_channels, kernel_size=4, stride=2, padding=1),
            nn.Tanh(),
        )


def down(in_channels: int, out_channels: int) -> list[nn.Module]:
    """A 3x3 convolution of stride 2, batch norm and ReLU: halves the resolution."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),  # the bias of the conv would be cancelled by the norm
        nn.ReLU(inplace=True),
    ]


def up(in_channels: int, out_channels: int) -> list[nn.Module]:
    """A 4x4 transposed convolution of stride 2, batch norm and ReLU: doubles the resolution."""
    return [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class Autoencoder(nn.Module):
    """Compresses an image into `bottleneck` numbers and reconstructs it from them: to do that
    well, the code must capture what the image shows, which is what the classifier reuses."""

    def __init__(self, in_channels: int, image_size: int, width: int, bottleneck: int) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, image_size, width, bottleneck)
        self.decoder = Decoder(in_channels, image_size, width, bottleneck)

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


def build_model(cfg: Config) -> nn.Module:
    """The model of `cfg.stage`, freshly initialised: the autoencoder for pretrain (and all,
    which starts with it), a classifier otherwise. A finetune model gets its pretrained encoder
    and decoder from `load_encoder`."""
    if cfg.image_size % 8:
        raise ConfigError(
            f"image_size must be a multiple of 8 (the encoder halves it three times), got "
            f"{cfg.image_size}; try image_size={cfg.image_size // 8 * 8 or 8}."
        )
    autoencoder = Autoencoder(image_channels(cfg), cfg.image_size, cfg.width, cfg.bottleneck)
    if cfg.stage in ("all", "pretrain"):
        return autoencoder
    decoder = autoencoder.decoder if cfg.stage == "finetune" else None
    classes = len(class_names(cfg))
    return Classifier(autoencoder.encoder, cfg.bottleneck, cfg.hidden_dim, classes, decoder)


def find_pretrain_checkpoint(cfg: Config) -> Path:
    """`cfg.encoder_from`, or else the best.pt of the experiment's newest pretrain run."""
    if cfg.encoder_from:
        return Path(cfg.encoder_from)
    runs = Path(cfg.checkpoint_dir, cfg.experiment).glob("*/best.pt")
    for path in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True):
        if load_checkpoint(path, torch.device("cpu"))["config"]["stage"] == "pretrain":
            return path
    raise ConfigError(
        f"stage={cfg.stage} needs a pretrained encoder, and experiment {cfg.experiment!r} has no "
        f"finished pretrain run in {cfg.checkpoint_dir}. Pretrain first (python src/main.py "
        "stage=pretrain), run both stages at once (stage=all), or name a pretrain checkpoint "
        "with encoder_from=PATH."
    )


def load_encoder(model: Classifier, path: Path) -> None:
    """Put the encoder and decoder of the pretrain checkpoint at `path` into `model`."""
    checkpoint = load_checkpoint(path, torch.device("cpu"))
    if checkpoint["config"]["stage"] != "pretrain":
        raise CheckpointError(
            f"{path} is a checkpoint of stage={checkpoint['config']['stage']}, not of a pretrain "
            "run; name the best.pt of a pretrain run with encoder_from=PATH."
        )
    try:
        model.encoder.load_state_dict(part(checkpoint["model"], "encoder."))
        model.decoder.load_state_dict(part(checkpoint["model"], "decoder."))
    except RuntimeError as error:
        details = str(error).replace("\n\t", " ").replace("\n", " ")
        raise CheckpointError(
            f"the autoencoder in {path} does not fit this model: {details} Finetune with the "
            "width, bottleneck and image_size it was pretrained with."
        ) from None


def part(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a state dict under `prefix`, with the prefix removed."""
    return {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}


def parameter_groups(model: nn.Module, cfg: Config) -> list[dict]:
    """All parameters learn at `lr`; frozen ones are left out of the optimizer."""
    return [{"params": list(model.parameters()), "lr": cfg.lr}]


def build_loss(cfg: Config) -> nn.Module:
    """Reconstruction loss for the autoencoder, cross-entropy on logits for the classifiers."""
    if cfg.stage in ("all", "pretrain"):
        return reconstruction_loss(cfg)
    return nn.CrossEntropyLoss()


def reconstruction_loss(cfg: Config) -> nn.Module:
    """MSE, or L1, which blurs less and minds outliers less."""
    return nn.L1Loss() if cfg.loss == "l1" else nn.MSELoss()


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


def build_metrics(cfg: Config) -> type[ReconstructionMetrics | Accuracy]:
    """The metrics of `cfg.stage`: PSNR for the autoencoder, accuracy for the classifiers."""
    return ReconstructionMetrics if cfg.stage in ("all", "pretrain") else Accuracy


def overfitted(
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    start: dict[str, float],
    end: dict[str, float],
) -> tuple[bool, str]:
    """Whether --overfit-batch has memorised this batch, and that goal in words."""
    if "acc" in end:
        goal = 0.01 * start["loss"]
        return (
            end["loss"] <= goal and end["acc"] == 1.0,
            f"the loss down by 99% (to <= {goal:.4g}) and every sample classified correctly",
        )
    goal = 0.1 * start["loss"]
    return end["loss"] <= goal, f"the reconstruction loss down by 90% (to <= {goal:.4g})"


def accuracy_with_ttt(
    model: nn.Module, loader: DataLoader, cfg: Config, device: torch.device
) -> float:
    """Accuracy with test-time training: before classifying each batch, the encoder takes
    `cfg.ttt_steps` SGD steps that make the frozen decoder reconstruct that batch, adapting to
    test images unlike the training ones. The trained weights come back after every batch, so no
    batch influences another."""
    if not isinstance(model, Classifier) or model.decoder is None:
        raise ConfigError(
            "ttt_steps needs a finetuned model: test-time training reconstructs the test images "
            "with the pretrained decoder, which only a stage=finetune checkpoint has."
        )
    trained = copy.deepcopy(model.encoder.state_dict())
    loss_fn = reconstruction_loss(cfg)
    correct = count = 0
    for images, labels in tqdm(loader, desc="test-time training", leave=False, disable=None):
        images, labels = images.to(device), labels.to(device)
        model.eval()  # the decoder's batch-norm statistics stay as trained
        model.encoder.requires_grad_(True).train()  # the encoder's adapt to the batch, too
        optimizer = torch.optim.SGD(model.encoder.parameters(), lr=cfg.ttt_lr, momentum=0.9)
        for _ in range(cfg.ttt_steps):
            loss = loss_fn(model.decoder(model.encoder(images)), images)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.encoder.requires_grad_(False).eval()
        with torch.no_grad():
            correct += (model(images).argmax(dim=1) == labels).sum().item()
        count += len(labels)
        model.encoder.load_state_dict(trained)
    return correct / max(count, 1)


def prediction_picture(
    images: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, cfg: Config
) -> tuple[str, torch.Tensor | Figure]:
    """For TensorBoard: the autoencoder's reconstructions beside their validation images; the
    classifier's predicted classes as the images' titles."""
    if outputs.shape == images.shape:
        return "reconstructions/val", to_unit_range(torch.cat([images[:8], outputs[:8]], dim=3))
    return "predictions/val", labelled_grid(images, outputs, targets, class_names(cfg))


{% include "shared/labelled_grid.py" %}


def describe(model: nn.Module, cfg: Config) -> str:
    """What the trained model does."""
    if isinstance(model, Autoencoder):
        return (
            f"Autoencoder compresses {cfg.image_size}x{cfg.image_size} images into "
            f"{cfg.bottleneck} numbers and back"
        )
    encoder = "a frozen pretrained encoder" if model.frozen else "an encoder trained from scratch"
    return f"Classifier tells apart {', '.join(class_names(cfg))} with {encoder}"
