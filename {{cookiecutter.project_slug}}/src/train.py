{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task with context %}
"""The training loop: a `Trainer` that fits the model, validates it, logs and checkpoints it."""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Number
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams
from tqdm import tqdm

import distributed
from checks import FirstStepChecks
from config import Config, ConfigError, UserError, to_dict
{% set model_imports = (task.train_model_imports.split() + ["overfitted", "parameter_groups", "prediction_picture"]) | sort %}
{% if ("from model import " ~ model_imports | join(", ")) | length <= 100 %}
from model import {{ model_imports | join(", ") }}
{% else %}
from model import (
{% for name in model_imports %}
    {{ name }},
{% endfor %}
)
{% endif %}
from runs import NOT_HYPERPARAMETERS, save_metrics_csv
from utils import (
    CHECKPOINT_VERSION,
    CheckpointError,
    GracefulStop,
    RunPaths,
    atomic_save,
    checkpoint_problem,
    link_or_copy,
    own_random_stream,
    remove_stale_temporaries,
    rng_state,
    save_curves,
    saved_data_index,
    set_rng_state,
    to_unit_range,
)

Scheduler = LRScheduler | ReduceLROnPlateau
# A fresh, empty accumulator of the task's metrics (see build_metrics in model.py).
MetricsFactory = Callable[[], Any]


class TrainingStopped(Exception):
    """Training stopped on a signal after saving `checkpoint`; exit with 128 + `signum`."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
        self.checkpoint = checkpoint


class NonFiniteError(UserError):
    """The loss or the weights became NaN or infinite; nothing non-finite was saved."""

    exit_code = 1


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer named by `cfg.optimizer` over the trainable parameters, with the learning
    rates of the model's `parameter_groups`.

    Biases and normalisation weights (the 1-d parameters) get no weight decay: shrinking them
    towards zero only hurts.
    """
    groups = []
    for group in parameter_groups(model, cfg):
        trainable = [p for p in group["params"] if p.requires_grad]
        for decay, params in (
            (cfg.weight_decay, [p for p in trainable if p.ndim > 1]),
            (0.0, [p for p in trainable if p.ndim <= 1]),
        ):
            if params:  # with the group's other options, such as Adam's betas
                groups.append({**group, "params": params, "weight_decay": decay})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def build_scheduler(
    cfg: Config, optimizer: torch.optim.Optimizer, batches_per_epoch: int
) -> Scheduler | None:
    """The schedule named by `cfg.scheduler`, after `cfg.warmup_steps` of linear warmup; all but
    plateau advance once per optimizer step."""
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.accumulate_steps)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.scheduler == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]  # one per parameter group
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, peaks, total_steps=total_steps)
    if cfg.scheduler == "plateau":
        return ReduceLROnPlateau(optimizer, factor=cfg.lr_decay, patience=cfg.lr_step_epochs)
    warmup = min(cfg.warmup_steps, total_steps - 1)
    schedule = None
    if cfg.scheduler == "step":
        step_size = cfg.lr_step_epochs * steps_per_epoch
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma=cfg.lr_decay)
    elif cfg.scheduler == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warmup)
    if warmup <= 0:
        return schedule
    # From lr / warmup_steps up to lr, then the schedule as if it started at step 0.
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, 1 / warmup, total_iters=warmup)
    if schedule is None:
        return ramp
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, schedule], milestones=[warmup])


class EpochTotals:
    """Running sums of one training epoch, kept on the device; mid-epoch checkpoints hold them."""

    def __init__(self, device: torch.device, metrics: MetricsFactory) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.samples = 0
        self.metrics = metrics()
        self.recent: deque[torch.Tensor] = deque(maxlen=50)  # for the last-50 mean

    def add(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Count one batch (`loss` detached, a mean over the batch)."""
        self.loss_sum += loss * len(targets)
        self.samples += len(targets)
        self.recent.append(loss)
        self.metrics.update(outputs, targets)

    def summary(self) -> dict[str, float]:
        """The epoch's mean loss and metrics (over every process's batches under torchrun)."""
        return summarise(self.loss_sum, self.samples, self.metrics)

    def state_dict(self) -> dict[str, Any]:
        return {
            "loss_sum": self.loss_sum.cpu(),
            "samples": self.samples,
            "metrics": self.metrics.state_dict(),
            "recent": [loss.cpu() for loss in self.recent],
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], device: torch.device, metrics: MetricsFactory
    ) -> EpochTotals:
        totals = cls(device, metrics)
        totals.loss_sum = state["loss_sum"].to(device)
        totals.samples = state["samples"]
        totals.metrics.load_state_dict(state["metrics"])
        totals.recent.extend(loss.to(device) for loss in state["recent"])
        return totals


def summarise(loss_sum: torch.Tensor, samples: int, metrics: Any) -> dict[str, float]:
    """The mean loss and the metrics of everything counted, by all processes under torchrun:
    the task's metrics keep sums (see `build_metrics`), which add up across processes."""
    totals = distributed.sum_over_ranks(
        {"loss_sum": loss_sum, "samples": samples, "metrics": metrics.state_dict()}
    )
    metrics.load_state_dict(totals["metrics"])
    return {"loss": (totals["loss_sum"] / totals["samples"]).item(), **metrics.compute()}


def mixed_precision(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype that `cfg.amp` asks for on `device`, or None for full precision."""
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if cfg.amp == "fp16" and device.type == "cpu":
        raise ConfigError(
            "amp=fp16 needs a GPU: float16 autocast on the CPU is slow and unsupported by many "
            "operations. Use amp=bf16 on the CPU, or amp=off."
        )
    if cfg.amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"amp=bf16 needs a GPU with bfloat16 support, and {torch.cuda.get_device_name()} has "
            "none. Use amp=fp16 (with loss scaling) or amp=auto."
        )
    return torch.bfloat16 if cfg.amp == "bf16" else torch.float16


@dataclass
class OverfitResult:
    """The outcome of `Trainer.overfit_batch`."""

    steps: int
    batch_size: int
    start: dict[str, float]
    end: dict[str, float]
    fitted: bool
    goal: str

    def report(self, cfg: Config) -> str:
        """A readable verdict; on failure, the likely causes and what to try."""
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in self.end.items())
        stage = "one sample" if self.batch_size == 1 else f"one batch of {self.batch_size} samples"
        summary = (
            f"{stage}, {self.steps} steps: "
            f"loss {self.start['loss']:.4g} -> {self.end['loss']:.4g} ({numbers})"
        )
        if self.fitted:
            return f"overfit check passed: {summary}."
        return (
            f"overfit check FAILED at {stage}: {summary}; it needs {self.goal}.\n"
            "A model that cannot memorise one batch has a bug, not a tuning problem. Likely "
            "causes: a forward pass that ignores its input or skips layers, outputs that do not "
            "match what the loss expects (e.g. a softmax before CrossEntropyLoss), targets that "
            f"do not belong to their inputs, or a learning rate far off (lr={cfg.lr:g}). If the "
            "loss is still falling steadily, give it more steps: "
            f"overfit_steps={2 * cfg.overfit_steps}."
        )


class Trainer:
    """Fits a model: training epochs, validation, TensorBoard logs, checkpoints, early stopping.

    Everything the next step depends on lives on the instance (`epoch`, `global_step`, the position
    `batches_done` inside the epoch, its running `totals`, `best_score`, ...) and goes into
    every checkpoint through `state_dict`, so a resumed run continues exactly where it stopped.
    """

    monitor = "loss"  # the validation value that picks best.pt and drives early stopping

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        metrics: MetricsFactory,
        cfg: Config,
        device: torch.device,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Scheduler | None = None,
        stop: GracefulStop | None = None,
    ) -> None:
        """`metrics` makes the accumulator of the task's metrics over batches; `optimizer` may be
        left out by callers that only evaluate; `stop` is polled after every optimizer step."""
        self.model = model
        self.loss_fn = loss_fn.to(device)  # class weights and other buffers of the loss
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.cfg = cfg
        self.device = device
        self.stop = stop
        self.metrics = metrics
        precision = mixed_precision(cfg, device)
        self.use_amp = precision is not None
        self.amp_dtype = precision or torch.bfloat16
        # Loss scaling is needed for fp16 only; disabled, the scaler passes everything through.
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == torch.float16)
        # What runs the model: in training steps, under DistributedDataParallel with several
        # processes (`parallel_model`) and compiled with cfg.compile (`step_model`); in
        # evaluation, compiled or not (`eval_model`). All share the weights of `model`, which is
        # what checkpoints hold. Set by `prepare_steps` in `fit`.
        self.parallel_model = self.step_model = self.eval_model = model
        self.data_wait = (0.0, 0.0)  # of the last training epoch: seconds waiting, computing
        self.data_warned = False
        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimizer steps taken
        self.batches_done = 0  # batches of the current epoch already trained on
        self.totals: EpochTotals | None = None  # running sums of the current epoch
        self.best_score = math.inf  # the lowest validation `monitor` so far
        self.epochs_without_improvement = 0
        self.history: list[dict[str, float]] = []
        self.resumed_from: Path | None = None  # never pruned
        self.saved: tuple[tuple[int, int, int], Path] | None = None  # last save: where, which file
        self.first_step: FirstStepChecks | None = None  # armed for a run's very first step
        self.early_losses: list[torch.Tensor] | None = None  # to tell whether the loss moves
        self.loss_check_step = 0
        self.run: RunPaths | None = None
        self.writer: SummaryWriter | None = None
        self.grad_norm: torch.Tensor | None = None  # of the last step, when it is logged
        self.preview: tuple[torch.Tensor, torch.Tensor] | None = None  # validation samples
        self.since_log = (time.perf_counter(), 0)  # for the throughput: when, samples seen
        # The run's data.json (split, statistics, classes, ...), carried in every checkpoint so
        # that a checkpoint copied without its run folder still reads the data as the run did.
        self.data_index = saved_data_index(cfg)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @property
    def finished(self) -> bool:
        """Whether all epochs are done or early stopping has ended the run."""
        return self.epoch >= self.cfg.epochs or self.patience_exhausted()

    def fit(self, train_loader: DataLoader, val_loader: DataLoader, run: RunPaths) -> None:
        """Train until `cfg.epochs` are done or early stopping; continues from a loaded state.

        Raises `TrainingStopped` after saving a checkpoint when a stop is requested.
        """
        self.run = run
        if run.checkpoints.is_dir():
            remove_stale_temporaries(run.checkpoints)
        if self.global_step == 0 and self.batches_done == 0:
            own_random_stream(self.cfg.seed, 0)
            self.early_losses = []
            if self.cfg.sanity_checks:
                self.first_step = FirstStepChecks(self.model, self.loss_fn)
        steps_per_epoch = math.ceil(len(train_loader) / self.cfg.accumulate_steps)
        # The loss must have fallen by the end of the first epoch, and of the lr warmup (whose
        # first steps barely move); fewer than 20 steps would compare the noise of single batches.
        self.loss_check_step = self.cfg.loss_check_steps or max(
            steps_per_epoch, 20, self.cfg.warmup_steps
        )
        if self.cfg.debug:
            print(
                "debug=true: autograd anomaly detection is on; training runs several times slower"
            )
        # Events a crashed run logged after its last checkpoint (at global_step) are purged, so a
        # resumed run's TensorBoard curves have no duplicated or out-of-order steps.
        purge_step = self.global_step + 1 if self.global_step else None
        if distributed.is_main():  # under torchrun, the other processes neither log nor save
            self.writer = SummaryWriter(run.logs, purge_step=purge_step)
            self.preview = self.preview_batch(val_loader)
            if self.global_step == 0 and self.batches_done == 0:
                self.log_graph(self.preview[0])
        self.prepare_steps()
        anomaly = torch.autograd.detect_anomaly() if self.cfg.debug else contextlib.nullcontext()
        try:
            with anomaly:
                while not self.finished:
                    started = time.perf_counter()
                    train = self.train_epoch(train_loader)
                    distributed.sync_buffers(self.model)
                    val = self.evaluate(val_loader, desc="validate")
                    self.epoch += 1
                    self.end_epoch(train, val, time.perf_counter() - started)
                    self.stop_if_requested()
            if self.finished and self.writer is not None:
                self.log_hparams()
        finally:
            if self.writer is not None:
                self.writer.close()
        if self.patience_exhausted():
            print(
                f"early stopping: no better val_{self.monitor} for "
                f"{self.epochs_without_improvement} epochs (best {self.best_score:.4f})"
            )

    def prepare_steps(self) -> None:
        """Wrap the model for training steps: DistributedDataParallel under torchrun, then
        torch.compile with cfg.compile (the evaluation model too)."""
{% if task.convolutional %}
        if self.cfg.channels_last:  # convolutions on tensor cores read this layout faster
            self.model.to(memory_format=torch.channels_last)
{% endif %}
        self.parallel_model = self.step_model = distributed.wrap(self.model, self.device)
        if self.cfg.compile:
            self.step_model = torch.compile(self.parallel_model)
            self.eval_model = torch.compile(self.model)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Inside: mixed precision as cfg.amp asks (entering a disabled autocast costs as much
        as a small layer, so full precision enters nothing)."""
        if self.use_amp:
            return torch.autocast(self.device.type, dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def no_sync(self) -> contextlib.AbstractContextManager:
        """Inside: backward passes add to the local gradients without averaging them across
        processes, for the batches of an accumulation window before its last one."""
        if isinstance(self.parallel_model, nn.parallel.DistributedDataParallel):
            return self.parallel_model.no_sync()
        return contextlib.nullcontext()

    def preview_batch(self, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to 64 validation samples, whose predictions are shown in TensorBoard every epoch.

        Image inputs are also logged once per run, as the model sees them (rescaled to 0-1). A
        validation batch: iterating the training loader here could draw random augmentations and
        make this run differ from a resumed one.
        """
        inputs, targets = next(iter(loader))
        is_image = inputs.ndim == 4 and inputs.shape[1] in (1, 3)  # (batch, channels, h, w)
        if is_image and self.global_step == 0:
            self.writer.add_images("inputs/val", to_unit_range(inputs[:64].float()), 0)
        return inputs[:64], targets[:64]

    def own_randomness(self) -> contextlib.AbstractContextManager:
        """Inside: random draws from a copy of the generators' states, so that drawing pictures
        or tracing a model that draws noise (a GAN's fakes) never changes the run."""
        devices = [] if self.device.type == "cpu" else [self.device]
        return torch.random.fork_rng(devices, device_type=self.device.type)

    def log_graph(self, inputs: torch.Tensor) -> None:
        """The model's graph, for TensorBoard's Graphs tab (traced once, on a fresh run)."""
        try:
            with warnings.catch_warnings(), self.own_randomness():
                warnings.simplefilter("ignore")  # tracing's deprecation and tracer warnings
                self.writer.add_graph(self.model, inputs[:2].to(self.device))
        except Exception as error:  # tracing cannot follow some models; the graph is optional
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            tqdm.write(f"note: no model graph in TensorBoard (tracing failed: {first_line})")

    @torch.inference_mode()
    def log_epoch_images(self) -> None:
        """Once per epoch: the model's predictions on the preview samples beside their targets, as
        the task draws them (`prediction_picture` in model.py)."""
        if self.preview is None:  # outside `fit`
            return
        inputs, targets = self.preview
        self.model.eval()
        with self.own_randomness(), self.autocast():
            outputs = self.model(inputs.to(self.device)).float().cpu()
        tag, picture = prediction_picture(inputs, outputs, targets, self.cfg)
        if isinstance(picture, torch.Tensor):
            self.writer.add_images(tag, picture, self.global_step)
        else:
            self.writer.add_figure(tag, picture, self.global_step)  # closes the figure

    def log_hparams(self) -> None:
        """The run's hyperparameters with its best epoch's validation scores, for the HParams tab
        where runs are compared side by side."""
        best = self.best_epoch()
        values = {
            key: value
            for key, value in to_dict(self.cfg).items()
            if key not in NOT_HYPERPARAMETERS and isinstance(value, Number | str)
        }
        scores = {f"hparams/{k}": v for k, v in best.items() if k.startswith("val_")}
        for summary in hparams(values, scores):
            self.writer.file_writer.add_summary(summary)
        for tag, value in scores.items():
            self.writer.add_scalar(tag, value, self.global_step)

    def train_epoch(self, loader: DataLoader) -> dict[str, float]:
        """One pass over `loader` (the rest of it, after a mid-epoch resume); returns the epoch's
        mean loss and metrics."""
        self.model.train()
        first = self.batches_done
        if hasattr(loader.sampler, "set_epoch"):
            # The order depends on (seed, epoch) only; after a mid-epoch resume the samples
            # already trained on are skipped without being loaded.
            loader.sampler.set_epoch(self.epoch, start=first * self.cfg.batch_size)
        num_batches = first + len(loader)
        if self.totals is None:
            self.totals = EpochTotals(self.device, self.metrics)
        self.since_log = (time.perf_counter(), self.totals.samples)
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
            total=num_batches,
            initial=first,
            leave=False,
            dynamic_ncols=True,
            disable=None if distributed.is_main() else True,
        )
        waiting = computing = 0.0  # seconds spent waiting for batches, and on the steps
        fetch_started = time.perf_counter()
        for index, (inputs, targets) in enumerate(bar, start=first):
            step_started = time.perf_counter()
            waiting += step_started - fetch_started
            inputs, targets = self.to_device(inputs, targets)
            # Gradients are averaged across processes only on a window's last batch.
            window_full = (index + 1) % self.cfg.accumulate_steps == 0
            last_of_window = window_full or index + 1 == num_batches
            with contextlib.nullcontext() if last_of_window else self.no_sync():
                outputs, loss = self.forward(inputs, targets)
                if self.first_step is not None:
                    self.first_step.after_forward(outputs, loss)
                if self.early_losses is not None:
                    self.early_losses.append(loss.detach())
                # One host-device sync per step: stepping on a NaN would ruin the weights for good.
                if not math.isfinite(loss.item()):
                    raise self.non_finite_loss(inputs, targets, loss)
                # Dividing by the accumulation window makes the summed gradient its mean.
                window = self.accumulation_window(index, num_batches)
                self.scaler.scale(loss / window if window > 1 else loss).backward()
            self.totals.add(loss.detach(), outputs.detach(), targets)

            if last_of_window:
                self.optimizer_step()
                self.batches_done = index + 1
                if self.writer is not None and self.global_step % self.cfg.log_every == 0:
                    self.log_step(bar)
                if self.global_step == self.loss_check_step and self.early_losses is not None:
                    self.warn_if_loss_did_not_move()
                self.stop_if_requested()
                every = self.cfg.checkpoint_every_steps
                if every and self.global_step % every == 0 and index + 1 < num_batches:
                    self.save_checkpoint()
            fetch_started = time.perf_counter()
            computing += fetch_started - step_started
        self.data_wait = (waiting, computing)
        summary = self.totals.summary()
        self.totals, self.batches_done = None, 0
        return summary

    def to_device(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch on the training device; from pinned memory, the copy overlaps computation."""
{% if task.convolutional %}
        layout = torch.channels_last if self.cfg.channels_last else torch.preserve_format
        return (
            inputs.to(self.device, non_blocking=True, memory_format=layout),
            targets.to(self.device, non_blocking=True),
        )
{% else %}
        return (
            inputs.to(self.device, non_blocking=True),
            targets.to(self.device, non_blocking=True),
        )
{% endif %}

    def accumulation_window(self, index: int, num_batches: int) -> int:
        """How many batches share the optimizer step that batch `index` contributes to."""
        start = index - index % self.cfg.accumulate_steps
        return min(self.cfg.accumulate_steps, num_batches - start)

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model outputs and loss, under autocast when mixed precision is on."""
        if not (self.model.training and torch.is_grad_enabled()):
            model = self.eval_model
        elif self.first_step is not None:
            model = self.parallel_model  # not compiled: the checks hook into its layers
        else:
            model = self.step_model
        with self.autocast():
            outputs = model(inputs)
            if self.first_step is not None:
                loss = self.first_step.loss(outputs, targets)
            else:
                loss = self.loss_fn(outputs, targets)
        return outputs, loss

    def optimizer_step(self) -> None:
        """Clip, check, step, clear the gradients and advance a per-step schedule."""
        step = self.global_step + 1
        logged = self.writer is not None and step % self.cfg.log_every == 0
        inspect = (
            self.writer is not None
            and self.cfg.log_hist_every > 0
            and step % self.cfg.log_hist_every == 0
        )
        if self.cfg.grad_clip > 0 or logged or inspect:
            self.scaler.unscale_(self.optimizer)  # clip and inspect true gradients, not scaled
        if self.cfg.grad_clip > 0:
            self.grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        elif logged:
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            self.grad_norm = nn.utils.get_total_norm(grads)
        if inspect:
            self.log_weights_and_gradients(step)
        checks, self.first_step = self.first_step, None
        if checks is not None:
            checks.before_optimizer_step()
            scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if checks is not None:
            checks.after_optimizer_step(step_skipped=self.scaler.get_scale() < scale)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None and not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()
        self.global_step += 1

    def log_weights_and_gradients(self, step: int) -> None:
        """Per parameter: histograms of its weights and gradients, and the ratio of mean
        |gradient| to mean |weight|, whose size says whether the learning rate suits that layer
        (around 1e-3 per step is healthy)."""
        for name, p in self.model.named_parameters():
            if p.grad is None:
                continue
            self.writer.add_histogram(f"weights/{name}", p.detach().float(), step)
            self.writer.add_histogram(f"gradients/{name}", p.grad.float(), step)
            weight, grad = p.detach().abs().mean().item(), p.grad.abs().mean().item()
            self.writer.add_scalar(f"grad_to_weight/{name}", grad / max(weight, 1e-12), step)

    def warn_if_loss_did_not_move(self) -> None:
        """Warn when the training loss of the last quarter of the batches so far is not below
        that of the first quarter."""
        losses, self.early_losses = torch.stack(self.early_losses), None
        quarter = max(1, len(losses) // 4)
        first, last = losses[:quarter].mean().item(), losses[-quarter:].mean().item()
        if last >= first:
            warnings.warn(
                f"the training loss has not decreased in the first {self.global_step} steps "
                f"(mean of the first {quarter} batches {first:.4g}, of the last {quarter} "
                f"{last:.4g}). The model is not learning: check that optimizer.step() runs, that "
                f"the loss gets the right targets, and the learning rate (lr={self.lr:.3g}; "
                "python src/main.py --find-lr suggests one).",
                stacklevel=2,
            )

    def log_step(self, bar: tqdm) -> None:
        """Progress-bar postfix and step-level scalars; the only other host-device syncs."""
        totals = self.totals
        last_50 = torch.stack(tuple(totals.recent)).mean()
        values = [totals.recent[-1], totals.loss_sum / totals.samples, last_50]
        if self.grad_norm is not None:
            values.append(self.grad_norm)
        current, running, last_50, *grad_norm = torch.stack(values).tolist()  # one sync
        bar.set_postfix(
            loss=f"{current:.4f}",
            lr=f"{self.lr:.2e}",
            mean=f"{running:.4f}",
            last_50=f"{last_50:.4f}",
            refresh=False,  # the bar redraws at its own pace
        )
        now, samples = time.perf_counter(), totals.samples
        since, seen = self.since_log
        self.since_log = (now, samples)
        self.writer.add_scalar("train/loss_step", current, self.global_step)
        self.writer.add_scalar("train/lr", self.lr, self.global_step)
        throughput = (samples - seen) / (now - since)
        self.writer.add_scalar("train/samples_per_s", throughput, self.global_step)
        if grad_norm:
            self.writer.add_scalar("train/grad_norm", grad_norm[0], self.global_step)

    def stop_if_requested(self) -> None:
        """After a SIGINT or SIGTERM: save a resumable checkpoint and raise `TrainingStopped`."""
        signum = (self.stop.signum or 0) if self.stop is not None else 0
        # Under torchrun, every process stops at the same step, whichever got the signal.
        signum = distributed.largest(signum)
        if signum:
            position = (self.epoch, self.global_step, self.batches_done)
            # A stop during validation comes after the epoch's checkpoint: do not write it twice.
            if self.saved is not None and self.saved[0] == position:
                raise TrainingStopped(signum, self.saved[1])
            raise TrainingStopped(signum, self.save_checkpoint())

    @torch.inference_mode()
    def evaluate(self, loader: DataLoader, desc: str = "evaluate") -> dict[str, float]:
        """Mean loss and metrics over `loader`, in eval mode and without autograd."""
        self.model.eval()
        metrics = self.metrics()
        loss_sum, samples = torch.zeros((), device=self.device), 0
        show = None if distributed.is_main() else True
        for inputs, targets in tqdm(
            loader, desc=desc, leave=False, dynamic_ncols=True, disable=show
        ):
            inputs, targets = self.to_device(inputs, targets)
            outputs, loss = self.forward(inputs, targets)
            loss_sum += loss * len(targets)
            samples += len(targets)
            metrics.update(outputs, targets)
        return summarise(loss_sum, samples, metrics)

    def end_epoch(self, train: dict[str, float], val: dict[str, float], seconds: float) -> None:
        """Book-keeping after an epoch: best tracking, schedule, logs, checkpoints, summary line."""
        improved = val[self.monitor] < self.best_score
        if improved:
            self.best_score = val[self.monitor]
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(val[self.monitor])

        row = {
            "epoch": self.epoch,
            **{f"train_{k}": v for k, v in train.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "lr": self.lr,
            "seconds": seconds,
        }
        self.history.append(row)
        distributed.check_same_weights(self.model)
        waiting, computing = self.data_wait
        data_share = waiting / max(waiting + computing, 1e-9)
        if self.writer is not None:
            self.log_epoch(train, val, data_share)
            save_metrics_csv(self.history, self.run.logs / "metrics.csv")
            save_curves(self.history, self.run.plots / "curves.png")

        # Two decisions: the state is always saved (to resume); best.pt only on improvement.
        saved = self.save_checkpoint()
        if improved and distributed.is_main():
            link_or_copy(saved, self.run.checkpoints / "best.pt")
        tqdm.write(self.summary_line(row, improved, data_share))
        if data_share > 0.3 and waiting > 1 and not self.data_warned:
            self.data_warned = True
            hint = data_wait_hint(self.cfg, self.device, waiting, waiting + computing)
            warnings.warn(hint, stacklevel=2)

    def log_epoch(self, train: dict[str, float], val: dict[str, float], data_share: float) -> None:
        """The epoch's scalars, pictures and time split in TensorBoard."""
        for name, value in train.items():
            self.writer.add_scalar(f"{name}/train", value, self.global_step)
        for name, value in val.items():
            self.writer.add_scalar(f"{name}/val", value, self.global_step)
        self.writer.add_scalar("epoch", self.epoch, self.global_step)
        waiting, computing = self.data_wait
        self.writer.add_scalar("time/data_wait_s", waiting, self.global_step)
        self.writer.add_scalar("time/compute_s", computing, self.global_step)
        self.writer.add_scalar("time/data_share", data_share, self.global_step)
        every = self.cfg.log_images_every
        if every and self.epoch % every == 0:
            self.log_epoch_images()
        self.writer.flush()

    def summary_line(self, row: dict[str, float], improved: bool, data_share: float) -> str:
        """`epoch 3/20 | train_loss 0.412 | val_loss 0.398 | val_acc 0.913 | lr 3.0e-04 | 2.1s
        (data 4%)`: the last is the share of the training time spent waiting for batches."""
        parts = [f"epoch {self.epoch}/{self.cfg.epochs}", f"train_loss {row['train_loss']:.4f}"]
        parts += [f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_")]
        parts += [f"lr {row['lr']:.1e}", f"{row['seconds']:.1f}s (data {data_share:.0%})"]
        return " | ".join(parts) + (" *" if improved else "")

    def best_epoch(self) -> dict[str, float]:
        """The history row of the epoch with the lowest validation `monitor`: the one in best.pt."""
        return min(self.history, key=lambda row: row[f"val_{self.monitor}"])

    def patience_exhausted(self) -> bool:
        """Whether early stopping should end training now."""
        patience = self.cfg.early_stopping_patience
        return patience > 0 and self.epochs_without_improvement >= patience

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as plain data (loads with `weights_only=True`)."""
        totals = None if self.totals is None else self.totals.state_dict()
        own = {"totals": totals, "rng": rng_state()}
        return {
            "version": CHECKPOINT_VERSION,
            "config": to_dict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "batches_done": self.batches_done,
            "monitor": self.monitor,
            "best_score": self.best_score,
            "epochs_without_improvement": self.epochs_without_improvement,
            "history": self.history,
            **own,
            # Under torchrun each process sums its own share of the epoch and draws its own random
            # numbers: "ranks" holds every process's, in rank order (the above are rank 0's).
            "ranks": distributed.gather(own) if distributed.is_active() else None,
            "processes": distributed.world_size(),
            "data": self.data_index,
        }

    def save_checkpoint(self) -> Path:
        """Save the state as step-<global_step>.pt, point last.pt at it, prune old step files.

        Each file is written atomically, so a crash at any moment leaves the previous checkpoint
        loadable, and older step files are deleted only once the new one is in place.
        """
        state = self.state_dict()
        problem = checkpoint_problem(state)
        if problem:  # never write weights that cannot be resumed from
            raise NonFiniteError(
                f"not saving a checkpoint at epoch {self.epoch + 1}, step {self.global_step}: "
                f"{problem}. The gradients became non-finite without a non-finite loss; lower "
                f"lr (now {self.lr:.3g}) or turn gradient clipping on (grad_clip=1), then "
                "--resume from the last checkpoint."
            )
        folder = self.run.checkpoints
        path = folder / f"step-{self.global_step:08d}.pt"
        if distributed.is_main():  # the processes' states are identical: rank 0 writes it
            if self.writer is not None:
                self.writer.flush()  # a resumed run must find every point logged before it
            atomic_save(state, path)
            link_or_copy(path, folder / "last.pt")
            steps = sorted(folder.glob("step-*.pt"))
            for old in steps[: -self.cfg.keep_last_checkpoints]:
                if self.resumed_from is None or not old.samefile(self.resumed_from):
                    old.unlink()
        distributed.barrier()  # no process goes on (or exits on a stop) before it is written
        self.saved = ((self.epoch, self.global_step, self.batches_done), path)
        return path

    def load_state_dict(self, checkpoint: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint written by `save_checkpoint`; `path` names it in errors."""
        processes = checkpoint.get("processes", 1)
        if checkpoint["batches_done"] and processes != distributed.world_size():
            raise CheckpointError(
                f"{path} was saved in the middle of an epoch by {processes} training "
                f"process(es), and this run has {distributed.world_size()}: each process's share "
                f"of the epoch's batches depends on their number. Resume it with {processes} "
                f"(torchrun --nproc_per_node={processes}, or without torchrun for 1); at the end "
                "of an epoch any number can take over."
            )
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
        self.batches_done = checkpoint["batches_done"]
        same = processes == distributed.world_size()
        ranks = checkpoint.get("ranks")
        own = ranks[distributed.rank()] if ranks is not None and same else checkpoint
        if own["totals"] is not None:
            self.totals = EpochTotals.from_state(own["totals"], self.device, self.metrics)
        self.best_score = checkpoint["best_score"]
        self.epochs_without_improvement = checkpoint["epochs_without_improvement"]
        self.history = checkpoint["history"]
        # The step file that last.pt shares its contents with is the one being resumed from.
        self.resumed_from = next(
            (p for p in path.parent.glob("step-*.pt") if p.samefile(path)), path
        )
        set_rng_state(own["rng"])
        if not same:  # at an epoch's end, on another number of processes: new streams from here
            own_random_stream(self.cfg.seed, self.global_step)

    def non_finite_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor
    ) -> NonFiniteError:
        """Save the failing batch with the weights that produced it; the error to raise."""
        step = self.global_step + 1
        dump = self.run.checkpoints / f"nonfinite-step{step:08d}.pt"
        atomic_save(
            {
                "version": CHECKPOINT_VERSION,
                "config": to_dict(self.cfg),
                "model": self.model.state_dict(),  # still finite: no step was taken on this loss
                "inputs": inputs.cpu(),
                "targets": targets.cpu(),
            },
            dump,
        )
        return NonFiniteError(
            f"the loss became {loss.item()} at epoch {self.epoch + 1}, step {step} "
            f"(lr {self.lr:.3g}). Usual causes: a learning rate too high (try "
            f"lr={self.lr / 10:.3g}), gradient clipping turned off (grad_clip=0), a log or "
            "division of zero in the loss, or NaN/inf values in the data. Nothing non-finite was "
            f"saved; the batch and the weights that produced it are in {dump}. Reproduce the "
            "failing step with:\n"
            f"    python src/main.py --replay {dump}"
        )

    def overfit_batch(
        self, inputs: torch.Tensor, targets: torch.Tensor, max_steps: int
    ) -> OverfitResult:
        """Train on one fixed batch until it is memorised or `max_steps` run out.

        Progress is measured in eval mode, so dropout does not blur the verdict and batch norm uses
        the running statistics a trained model would use.
        """
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        if self.cfg.sanity_checks:
            self.first_step = FirstStepChecks(self.model, self.loss_fn)
        start = end = self.measure(inputs, targets)
        fitted, goal = overfitted(self.loss_fn, inputs, targets, start, end)
        step = 0
        for step in range(1, max_steps + 1):
            self.model.train()
            outputs, loss = self.forward(inputs, targets)
            if self.first_step is not None:
                self.first_step.after_forward(outputs, loss)
            self.scaler.scale(loss).backward()
            self.optimizer_step()
            if step % 10 == 0 or step == max_steps:
                end = self.measure(inputs, targets)
                fitted, goal = overfitted(self.loss_fn, inputs, targets, start, end)
                if fitted or not math.isfinite(end["loss"]):
                    break
        return OverfitResult(step, len(targets), start, end, fitted, goal)

    def find_lr(
        self, loader: DataLoader, steps: int, low: float = 1e-7, high: float = 10.0
    ) -> tuple[list[float], list[float]]:
        """The learning-rate range test: raise the lr exponentially from `low` to `high` over
        `steps` optimizer steps, recording the smoothed training loss, until the loss diverges."""
        self.model.train()
        lrs: list[float] = []
        losses: list[float] = []
        average, best = 0.0, math.inf
        batches = endless(loader)
        for step in range(steps):
            lr = low * (high / low) ** (step / (steps - 1))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            inputs, targets = (t.to(self.device, non_blocking=True) for t in next(batches))
            _, loss = self.forward(inputs, targets)
            if not torch.isfinite(loss):
                break
            self.scaler.scale(loss).backward()
            self.optimizer_step()
            average = 0.95 * average + 0.05 * loss.item()
            smoothed = average / (1 - 0.95 ** (step + 1))  # bias-corrected moving average
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            if smoothed > 4 * best:
                break
        return lrs, losses

    @torch.inference_mode()
    def measure(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Loss and metrics of one batch in eval mode."""
        self.model.eval()
        metrics = self.metrics()
        outputs, loss = self.forward(inputs, targets)
        metrics.update(outputs, targets)
        return {"loss": loss.item(), **metrics.compute()}


def data_wait_hint(cfg: Config, device: torch.device, waiting: float, total: float) -> str:
    """Why a training epoch spent `waiting` of its `total` seconds waiting for batches, and what
    to change."""
    cores = os.cpu_count() or 1
    if cfg.num_workers == 0:
        fix = (
            f"load batches in parallel worker processes: num_workers={min(8, cores)} (this "
            f"machine has {cores} cores)"
        )
    elif cfg.num_workers < cores:
        fix = f"more worker processes (num_workers={min(2 * cfg.num_workers, cores)})"
    else:
        fix = "cheaper per-sample work: every worker is busy"
    return (
        f"the last training epoch waited for data {waiting:.1f} s of {total:.1f} s "
        f"({waiting / total:.0%}): the {device.type} sat idle meanwhile. Try {fix}; work that "
        "repeats every epoch (decoding, resizing, tokenising the same samples) can also be "
        "cached: store the samples once as the model sees them, e.g. as a tensor file."
    )


def endless(loader: DataLoader) -> Iterator[Any]:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def suggest_lr(lrs: list[float], losses: list[float]) -> float:
    """Where the loss falls fastest against log(lr), before its minimum: a safe, fast lr."""
    lowest = losses.index(min(losses))
    if lowest < 2:  # no descent to measure: stay within the swept range
        return max(lrs[lowest] / 10, lrs[0])
    log_lrs = torch.tensor(lrs[: lowest + 1]).log()
    slopes = torch.tensor(losses[: lowest + 1]).diff() / log_lrs.diff()
    return lrs[int(slopes.argmin()) + 1]


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
{% include "tasks/" ~ cookiecutter.task ~ "/train_extra.py" ignore missing %}
