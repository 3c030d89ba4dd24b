"""The training loop: a `Trainer` that fits the model, validates it, logs and checkpoints it."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from config import Config, to_dict
from model import Metrics
from utils import (
    CHECKPOINT_VERSION,
    CheckpointError,
    RunPaths,
    atomic_save,
    rng_state,
    save_curves,
    set_rng_state,
)

Scheduler = LRScheduler | ReduceLROnPlateau


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer named by `cfg.optimizer` over the trainable parameters.

    Biases and normalisation weights (the 1-d parameters) get no weight decay: shrinking them
    towards zero only hurts.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if p.ndim > 1], "weight_decay": cfg.weight_decay},
        {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def build_scheduler(
    cfg: Config, optimizer: torch.optim.Optimizer, batches_per_epoch: int
) -> Scheduler | None:
    """The schedule named by `cfg.scheduler`; all but plateau advance once per optimizer step."""
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.accumulate_steps)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.scheduler == "step":
        step_size = cfg.lr_step_epochs * steps_per_epoch
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma=cfg.lr_decay)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=total_steps)
    if cfg.scheduler == "plateau":
        return ReduceLROnPlateau(optimizer, factor=cfg.lr_decay, patience=cfg.lr_step_epochs)
    return None


@dataclass
class OverfitResult:
    """The outcome of `Trainer.overfit_batch`."""

    steps: int
    batch_size: int
    start: dict[str, float]
    end: dict[str, float]
    fitted: bool

    def report(self, cfg: Config) -> str:
        """A readable verdict; on failure, the likely causes and what to try."""
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in self.end.items())
        summary = (
            f"one batch of {self.batch_size} samples, {self.steps} steps: "
            f"loss {self.start['loss']:.4g} -> {self.end['loss']:.4g} ({numbers})"
        )
        if self.fitted:
            return f"overfit check passed: {summary}."
        return (
            f"overfit check FAILED: {summary}; it needs the loss down by 99% (to "
            f"<= {0.01 * self.start['loss']:.4g}) and every sample predicted correctly.\n"
            "A model that cannot memorise one batch has a bug, not a tuning problem. Likely "
            "causes: a forward pass that ignores its input or skips layers, outputs that do not "
            "match what the loss expects (e.g. a softmax before CrossEntropyLoss), targets that "
            f"do not belong to their inputs, or a learning rate far off (lr={cfg.lr:g}). If the "
            "loss is still falling steadily, give it more steps: "
            f"overfit_steps={2 * cfg.overfit_steps}."
        )


class Trainer:
    """Fits a model: training epochs, validation, TensorBoard logs, checkpoints, early stopping.

    State that a resumed run needs lives on the instance (`epoch`, `global_step`, `best_val_loss`,
    ...) and goes into every checkpoint through `state_dict`.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        cfg: Config,
        device: torch.device,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        """`optimizer` may be left out by callers that only evaluate."""
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.cfg = cfg
        self.device = device
        self.use_amp = cfg.amp and device.type == "cuda"
        self.amp_dtype = (
            torch.float16 if self.use_amp and not torch.cuda.is_bf16_supported() else torch.bfloat16
        )
        # Loss scaling is needed for fp16 only; disabled, the scaler passes everything through.
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.use_amp and self.amp_dtype == torch.float16
        )
        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimizer steps taken
        self.best_val_loss = math.inf
        self.epochs_without_improvement = 0
        self.history: list[dict[str, float]] = []
        self.writer: SummaryWriter | None = None
        self.grad_norm = torch.zeros(())

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def fit(self, train_loader: DataLoader, val_loader: DataLoader, run: RunPaths) -> None:
        """Train until `cfg.epochs` are done or early stopping; continues from a loaded state."""
        # Events a crashed run logged after its last checkpoint (at global_step) are purged, so a
        # resumed run's TensorBoard curves have no duplicated or out-of-order steps.
        purge_step = self.global_step + 1 if self.global_step else None
        self.writer = SummaryWriter(run.logs, purge_step=purge_step)
        try:
            while not self.finished:
                started = time.perf_counter()
                train = self.train_epoch(train_loader)
                val = self.evaluate(val_loader, desc="validate")
                self.epoch += 1
                self.end_epoch(train, val, time.perf_counter() - started, run)
        finally:
            self.writer.close()
        if self.patience_exhausted():
            print(
                f"early stopping: no better val_loss for {self.epochs_without_improvement} epochs "
                f"(best {self.best_val_loss:.4f})"
            )
        save_curves(self.history, run.plots / "curves.png")

    def train_epoch(self, loader: DataLoader) -> dict[str, float]:
        """One pass over `loader`; returns the epoch's mean loss and metrics."""
        self.model.train()
        if loader.generator is not None:
            # The shuffling order of an epoch depends on (seed, epoch) only, also after a resume.
            loader.generator.manual_seed(self.cfg.seed + self.epoch)
        metrics = Metrics()
        loss_sum, samples = torch.zeros((), device=self.device), 0
        recent: deque[torch.Tensor] = deque(maxlen=50)
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
            leave=False,
            dynamic_ncols=True,
            disable=None,
        )
        for index, (inputs, targets) in enumerate(bar):
            inputs = inputs.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            outputs, loss = self.forward(inputs, targets)
            # Dividing by the accumulation window makes the summed gradient its mean.
            window = self.accumulation_window(index, len(loader))
            self.scaler.scale(loss / window).backward()

            loss = loss.detach()  # tensors stay on the device: no sync until logging
            loss_sum += loss * len(targets)
            samples += len(targets)
            recent.append(loss)
            metrics.update(outputs.detach(), targets)
            if (index + 1) % self.cfg.accumulate_steps == 0 or index + 1 == len(loader):
                self.optimizer_step()
                if self.global_step % self.cfg.log_every == 0:
                    self.log_step(bar, loss, loss_sum / samples, recent)
        return {"loss": (loss_sum / samples).item(), **metrics.compute()}

    def accumulation_window(self, index: int, num_batches: int) -> int:
        """How many batches share the optimizer step that batch `index` contributes to."""
        start = index - index % self.cfg.accumulate_steps
        return min(self.cfg.accumulate_steps, num_batches - start)

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model outputs and loss, under autocast when mixed precision is on."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            outputs = self.model(inputs)
            loss = self.loss_fn(outputs, targets)
        return outputs, loss

    def optimizer_step(self) -> None:
        """Clip, step, clear the gradients and advance a per-step schedule."""
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not scaled ones
            self.grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None and not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()
        self.global_step += 1

    def log_step(
        self, bar: tqdm, loss: torch.Tensor, mean: torch.Tensor, recent: deque[torch.Tensor]
    ) -> None:
        """Progress-bar postfix and step-level scalars; the only host-device syncs of a step."""
        current, running, last_50 = (
            loss.item(),
            mean.item(),
            torch.stack(tuple(recent)).mean().item(),
        )
        bar.set_postfix(
            loss=f"{current:.4f}",
            lr=f"{self.lr:.2e}",
            mean=f"{running:.4f}",
            last_50=f"{last_50:.4f}",
        )
        self.writer.add_scalar("train/loss_step", current, self.global_step)
        self.writer.add_scalar("train/lr", self.lr, self.global_step)
        if self.cfg.grad_clip > 0:
            self.writer.add_scalar("train/grad_norm", self.grad_norm.item(), self.global_step)

    @torch.inference_mode()
    def evaluate(self, loader: DataLoader, desc: str = "evaluate") -> dict[str, float]:
        """Mean loss and metrics over `loader`, in eval mode and without autograd."""
        self.model.eval()
        metrics = Metrics()
        loss_sum, samples = torch.zeros((), device=self.device), 0
        for inputs, targets in tqdm(
            loader, desc=desc, leave=False, dynamic_ncols=True, disable=None
        ):
            inputs = inputs.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            outputs, loss = self.forward(inputs, targets)
            loss_sum += loss * len(targets)
            samples += len(targets)
            metrics.update(outputs, targets)
        return {"loss": (loss_sum / samples).item(), **metrics.compute()}

    def end_epoch(
        self, train: dict[str, float], val: dict[str, float], seconds: float, run: RunPaths
    ) -> None:
        """Book-keeping after an epoch: best tracking, schedule, logs, checkpoints, summary line."""
        improved = val["loss"] < self.best_val_loss
        if improved:
            self.best_val_loss = val["loss"]
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(val["loss"])

        row = {
            "epoch": self.epoch,
            **{f"train_{k}": v for k, v in train.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "lr": self.lr,
            "seconds": seconds,
        }
        self.history.append(row)
        for name, value in train.items():
            self.writer.add_scalar(f"{name}/train", value, self.global_step)
        for name, value in val.items():
            self.writer.add_scalar(f"{name}/val", value, self.global_step)
        self.writer.add_scalar("epoch", self.epoch, self.global_step)
        self.writer.flush()

        # Two decisions: the last state is always saved (to resume); best.pt only on improvement.
        self.save(run.checkpoints / "last.pt")
        if improved:
            self.save(run.checkpoints / "best.pt")
        tqdm.write(self.summary_line(row, improved))

    def summary_line(self, row: dict[str, float], improved: bool) -> str:
        """`epoch 3/20 | train_loss 0.412 | val_loss 0.398 | val_acc 0.913 | lr 3.0e-04 | 2.1s`."""
        parts = [f"epoch {self.epoch}/{self.cfg.epochs}", f"train_loss {row['train_loss']:.4f}"]
        parts += [f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_")]
        parts += [f"lr {row['lr']:.1e}", f"{row['seconds']:.1f}s"]
        return " | ".join(parts) + (" *" if improved else "")

    @property
    def finished(self) -> bool:
        """Whether all epochs are done or early stopping has ended the run."""
        return self.epoch >= self.cfg.epochs or self.patience_exhausted()

    def patience_exhausted(self) -> bool:
        """Whether early stopping should end training now."""
        patience = self.cfg.early_stopping_patience
        return patience > 0 and self.epochs_without_improvement >= patience

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as plain data (loads with `weights_only=True`)."""
        return {
            "version": CHECKPOINT_VERSION,
            "config": to_dict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_val_loss": self.best_val_loss,
            "epochs_without_improvement": self.epochs_without_improvement,
            "history": self.history,
            "rng": rng_state(),
        }

    def save(self, path: Path) -> None:
        """Write a checkpoint atomically: `path` holds the old or the new state, never half."""
        atomic_save(self.state_dict(), path)

    def load_state_dict(self, checkpoint: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint written by `save`; `path` only names it in errors."""
        load_model_weights(self.model, checkpoint, path)
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.scaler.load_state_dict(checkpoint["scaler"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"the optimizer or scheduler state in {path} does not fit this run ({error}). "
                "Resume with the optimizer and scheduler the run started with."
            ) from None
        self.epoch = checkpoint["epoch"]
        self.global_step = checkpoint["global_step"]
        self.best_val_loss = checkpoint["best_val_loss"]
        self.epochs_without_improvement = checkpoint["epochs_without_improvement"]
        self.history = checkpoint["history"]
        set_rng_state(checkpoint["rng"])

    def overfit_batch(
        self, inputs: torch.Tensor, targets: torch.Tensor, max_steps: int
    ) -> OverfitResult:
        """Train on one fixed batch until it is memorised or `max_steps` run out.

        Progress is measured in eval mode, so dropout does not blur the verdict and batch norm uses
        the running statistics a trained model would use.
        """
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        start = end = self.measure(inputs, targets)
        fitted, step = False, 0
        for step in range(1, max_steps + 1):
            self.model.train()
            _, loss = self.forward(inputs, targets)
            self.scaler.scale(loss).backward()
            self.optimizer_step()
            if step % 10 == 0 or step == max_steps:
                end = self.measure(inputs, targets)
                fitted = end["loss"] <= 0.01 * start["loss"] and Metrics.fitted(end)
                if fitted or not math.isfinite(end["loss"]):
                    break
        return OverfitResult(step, len(targets), start, end, fitted)

    @torch.inference_mode()
    def measure(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Loss and metrics of one batch in eval mode."""
        self.model.eval()
        metrics = Metrics()
        outputs, loss = self.forward(inputs, targets)
        metrics.update(outputs, targets)
        return {"loss": loss.item(), **metrics.compute()}


def load_model_weights(model: nn.Module, checkpoint: dict[str, Any], path: Path) -> None:
    """Load the model weights of a checkpoint strictly, naming what does not match."""
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        details = str(error).replace("\n\t", " ").replace("\n", " ")
        raise CheckpointError(
            f"the weights in {path} do not fit the model built from this config: {details} "
            "Use the config the checkpoint was trained with (--resume and --test read it from the "
            "checkpoint; do not override model settings such as width)."
        ) from None
