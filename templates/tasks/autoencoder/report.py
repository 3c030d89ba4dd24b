"""What the autoencoder and its classifier show of themselves: reconstructions and predictions
in TensorBoard, what they learned, and the accuracy with test-time training on --test; and how
the classifier takes the encoder of a pretrain run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from config import Config, ConfigError
from dataset import class_names
from model import Autoencoder, Classifier, reconstruction_loss
from utils import CheckpointError, load_checkpoint, titled_grid, to_unit_range

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def test_report(
    model: nn.Module, loader: DataLoader, cfg: Config, results: dict[str, Any]
) -> dict[str, Any]:
    """What --test adds to the test split's `results`: with `ttt_steps`, the accuracy with
    test-time training."""
    return {"acc_ttt": accuracy_with_ttt(model, loader, cfg)} if cfg.ttt_steps else {}


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


def accuracy_with_ttt(model: nn.Module, loader: DataLoader, cfg: Config) -> float:
    """Accuracy with test-time training: before classifying each batch, the encoder takes
    `cfg.ttt_steps` SGD steps that make the frozen decoder reconstruct that batch, adapting to
    test images unlike the training ones. The trained weights come back after every batch, so no
    batch influences another."""
    if not isinstance(model, Classifier) or model.decoder is None:
        raise ConfigError(
            "ttt_steps needs a finetuned model: test-time training reconstructs the test images "
            "with the pretrained decoder, which only a stage=finetune checkpoint has."
        )
    device = next(model.parameters()).device
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


@torch.inference_mode()
def prediction_pictures(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: Config
) -> dict[str, torch.Tensor | Figure]:
    """For TensorBoard, every `log_images_every` epochs: the autoencoder's reconstructions
    beside their validation images; the classifier's predicted classes as the images' titles."""
    outputs, images = model(images).float().cpu(), images.cpu()
    if isinstance(model, Autoencoder):
        return {"reconstructions/val": to_unit_range(torch.cat([images[:8], outputs[:8]], dim=3))}
    return {"predictions/val": labelled_grid(images, outputs, labels, class_names(cfg))}


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
