"""Helpers shared by the rest of the project: seeding, devices, run folders and checkpoint files."""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from config import Config, ConfigError, UserError

CHECKPOINT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or does not fit the model."""


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """The device to train on; asking for one that is not there is an error, never a fallback."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(
            f"device={name} was asked for, but this machine's PyTorch ({torch.__version__}) "
            f"cannot use it. Use device=auto or device=cpu, or run `python src/main.py --help` "
            "for the other choices."
        )
    return torch.device(name)


@dataclass(frozen=True)
class RunPaths:
    """Where one run writes: checkpoints, TensorBoard logs and plots, each in <experiment>/<run>."""

    checkpoints: Path
    logs: Path
    plots: Path

    @classmethod
    def for_run(cls, cfg: Config) -> RunPaths:
        """The folders of the run named by `cfg.experiment` and `cfg.run_name` (not created)."""
        parts = (cfg.experiment, cfg.run_name)
        return cls(
            checkpoints=Path(cfg.checkpoint_dir, *parts),
            logs=Path(cfg.log_dir, *parts),
            plots=Path(cfg.plot_dir, *parts),
        )


def new_run_name(cfg: Config) -> str:
    """A timestamp no earlier run of the experiment uses (with a suffix within the same second)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name, suffix = stamp, 1
    while (
        Path(cfg.checkpoint_dir, cfg.experiment, name).exists()
        or Path(cfg.log_dir, cfg.experiment, name).exists()
    ):
        suffix += 1
        name = f"{stamp}-{suffix}"
    return name


def atomic_save(obj: Any, path: Path) -> None:
    """Write `obj` with torch.save so that `path` always holds either the old or the new file.

    A crash in the middle of `torch.save(obj, path)` would leave a truncated file in place of the
    previous checkpoint; writing a temporary file in the same folder, syncing it to disk and
    renaming it over `path` is atomic on POSIX file systems.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            torch.save(obj, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes files private; use the usual mode
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # makes the rename itself survive a power cut
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read the umask is to set it
    os.umask(mask)
    return mask


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """Load a checkpoint as plain data; `weights_only=True` means it can never run code."""
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}. Pass the path of a last.pt or best.pt under "
            "models/checkpoints/<experiment>/<run>/, or use --resume auto."
        )
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, disallowed globals, ...
        raise CheckpointError(
            f"cannot read the checkpoint {path}: {error}. The file is damaged or was not written "
            "by this project; use another checkpoint of the run."
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} is not a checkpoint of this project (format version {CHECKPOINT_VERSION})."
        )
    return checkpoint


def find_latest_checkpoint(cfg: Config) -> Path:
    """The most recently written last.pt of the experiment, for --resume auto."""
    candidates = list(Path(cfg.checkpoint_dir, cfg.experiment).glob("*/last.pt"))
    if not candidates:
        raise CheckpointError(
            f"--resume auto found nothing to resume: no last.pt under "
            f"{Path(cfg.checkpoint_dir, cfg.experiment)}. Start a new run without --resume, or "
            "name the experiment with experiment=<name>."
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)


def rng_state() -> dict[str, Any]:
    """The state of every random generator, as data that `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_curves(history: list[dict[str, float]], path: Path) -> None:
    """Plot the loss and every other metric per epoch, train beside val, into one PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed: the figure only goes to a file
    import matplotlib.pyplot as plt

    names = [key.removeprefix("val_") for key in history[0] if key.startswith("val_")]
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for split in ("train", "val"):
            if f"{split}_{name}" in history[0]:
                ax.plot(
                    epochs, [row[f"{split}_{name}"] for row in history], marker=".", label=split
                )
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
