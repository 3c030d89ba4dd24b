{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task with context %}
"""The training loop: a `Trainer` that fits a task (model.py) epoch by epoch.

Read it top to bottom. `fit` runs epochs until they are done or early stopping ends them;
`train_epoch` runs the task's `training_step` on every batch (`train_batch`) and
`optimizer_step` after every `accumulate_steps` batches; `evaluate` runs its `validation_step`;
`end_epoch` keeps the best score and saves. `state_dict` and `load_state_dict` make a resumed run
continue exactly where it stopped. What is not training has one call site each: the run's log
and checkpoint files (tracking.py), the self-checks (checks.py) and training on several
processes (distributed.py).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.utils.data import DataLoader
from tqdm import tqdm

import distributed
from checks import FirstStepChecks, LossCheck, NonFiniteError, NonFiniteGuard
from config import Config, ConfigError, monitored, to_dict
from model import Batch, Metrics, Step, Task
from tracking import Checkpoints, RunLog
from utils import (
    CHECKPOINT_VERSION,
    PROJECT,
    CheckpointError,
    GracefulStop,
    RunPaths,
    checkpoint_problem,
    load_weights,
    own_random_stream,
    rng_state,
    saved_data_index,
    set_rng_state,
)

Scheduler = LRScheduler | ReduceLROnPlateau


# Asked after every epoch whether a run is worth going on with (see `Trainer.fit`)
Judge = Callable[["Trainer"], bool]


class TrainingStopped(Exception):
    """Training stopped on a signal after saving `checkpoint`; exit with 128 + `signum`."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
        self.checkpoint = checkpoint


def build_optimizer(cfg: Config, task: Task) -> torch.optim.Optimizer:
    """The optimizer named by `cfg.optimizer` over the task's `parameter_groups`, trainable
    parameters only. Biases and normalisation weights (the 1-d parameters) get no weight decay:
    shrinking them towards zero only hurts; a group that sets its own `weight_decay` keeps it
    for all its parameters (0.0 for learnable class centres or a [CLS] vector). torch's fused
    implementation runs each step in one kernel and skips a step with non-finite gradients on
    the device (see `NonFiniteGuard`)."""
    groups = []
    for group in task.parameter_groups(cfg):
        trainable = [p for p in group["params"] if p.requires_grad]
        if "weight_decay" in group and trainable:  # the group's own, as its other options
            groups.append({**group, "params": trainable})
            continue
        for decay, params in (
            (cfg.weight_decay, [p for p in trainable if p.ndim > 1]),
            (0.0, [p for p in trainable if p.ndim <= 1]),
        ):
            if params:  # with the group's other options, such as Adam's betas
                groups.append({**group, "params": params, "weight_decay": decay})
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    sgd = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, fused=True)
    # Fused SGD leaves its momentum uninitialised when its first step is skipped; starting from
    # zeros makes the first step the same and a skipped one harmless.
    for group in sgd.param_groups:
        for p in group["params"]:
            sgd.state[p]["momentum_buffer"] = torch.zeros_like(p)
    return sgd


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
    if cfg.warmup_steps > total_steps // 2:
        warnings.warn(
            f"warmup_steps={cfg.warmup_steps} is more than half of the run's {total_steps} "
            f"optimizer steps: the learning rate reaches lr={cfg.lr:g} late or never, and the "
            f"model may barely train. Use warmup_steps={total_steps // 10} or fewer, or more "
            "epochs.",
            stacklevel=2,
        )
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


class EpochTotals:
    """Running sums of one epoch, kept on the device: the loss and the step's other named values,
    weighted by batch size, and the task's metrics. Mid-epoch checkpoints hold them."""

    def __init__(self, metrics: Metrics) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.samples = 0
        self.metrics = metrics
        self.recent: deque[torch.Tensor] = deque(maxlen=50)  # losses, for the last-50 mean

    def add(self, step: Step) -> None:
        """Count one batch's step."""
        count = len(step.targets)
        for name, value in {"loss": step.loss, **step.logs}.items():
            if name not in self.sums:
                self.sums[name] = torch.zeros((), device=value.device)  # float32
            self.sums[name].add_(value.detach(), alpha=count)  # one kernel
        self.samples += count
        self.recent.append(step.loss.detach())
        self.metrics.update(step.outputs.detach(), step.targets)

    def summary(self) -> dict[str, float]:
        """The epoch's means and metrics (over every process's batches under torchrun: the
        metrics keep sums, which add up across processes)."""
        totals = distributed.sum_over_ranks(
            {"sums": self.sums, "samples": self.samples, "metrics": self.metrics.state_dict()}
        )
        self.metrics.load_state_dict(totals["metrics"])
        means = {name: (value / totals["samples"]).item() for name, value in totals["sums"].items()}
        return {**means, **self.metrics.compute()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "sums": {name: value.cpu() for name, value in self.sums.items()},
            "samples": self.samples,
            "metrics": self.metrics.state_dict(),
            "recent": [loss.cpu() for loss in self.recent],
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.sums = {name: value.to(device) for name, value in state["sums"].items()}
        self.samples = state["samples"]
        self.metrics.load_state_dict(state["metrics"])
        self.recent.extend(loss.to(device) for loss in state["recent"])


class Trainer:
    """Fits a task: training epochs, validation, early stopping, a resumable checkpoint after
    every epoch.

    Everything the next step depends on lives on the instance (`epoch`, `global_step`, the
    position `batches_done` inside the epoch, its running `totals`, `best_score`, ...) and goes
    into every checkpoint through `state_dict`, so a resumed run continues exactly.
    """

    def __init__(
        self,
        task: Task,
        cfg: Config,
        device: torch.device,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Scheduler | None = None,
        stop: GracefulStop | None = None,
    ) -> None:
        """`optimizer` may be left out by callers that only evaluate; `stop` is polled after
        every optimizer step."""
        self.task = task.to(device)
        self.model = task.model
        self.cfg, self.device = cfg, device
        self.optimizer, self.scheduler, self.stop = optimizer, scheduler, stop
        self.precision = mixed_precision(cfg, device)  # the autocast dtype, None: full precision
        # Loss scaling is needed for fp16 only; disabled, the scaler passes everything through.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == torch.float16)
        # What runs the training steps (see `prepare`): the task, or under torchrun its
        # DistributedDataParallel wrapper (`parallel`), compiled with cfg.compile (`steps`).
        self.parallel = self.steps = task
        self.validation_step = task.validation_step
        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimizer steps taken
        self.batches_done = 0  # batches of the current epoch already trained on
        self.totals: EpochTotals | None = None  # running sums of the current epoch
        self.monitor, self.higher = monitored(cfg)  # the val_ score that picks best.pt
        self.best_score = -math.inf if self.higher else math.inf  # the best of it so far
        self.epochs_without_improvement = 0
        self.history: list[dict[str, float]] = []
        self.resumed_from: Path | None = None  # the checkpoint this run continues
        self.log = RunLog(cfg)  # fit gives it the run's folders
        self.checkpoints: Checkpoints | None = None
        self.first_step: FirstStepChecks | None = None  # armed by `check_first_step`
        self.loss_check = LossCheck(0)  # armed by `fit` for a new run
        self.guard = NonFiniteGuard(device)  # no update on a non-finite gradient
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

    def fit(
        self,
        train_loader: DataLoader,
        val_loader: DataLoader,
        run: RunPaths,
        log: RunLog,
        judge: Judge | None = None,
    ) -> bool:
        """Train until `cfg.epochs` are done or early stopping; continues from a loaded state.
        Writes checkpoints into `run`'s folder. Raises `TrainingStopped` after saving a
        checkpoint when a stop is requested.

        `judge`, if given, is asked after every epoch (once saved) whether the run is worth
        going on with: --tune prunes the trials that fall behind. Returns whether the run has
        finished (False: pruned)."""
        fresh = self.global_step == 0 and self.batches_done == 0
        self.log = log
        self.checkpoints = Checkpoints(
            run.checkpoints, self.cfg.keep_last_checkpoints, self.resumed_from
        )
        if fresh:
            own_random_stream(self.cfg.seed, 0)
            self.check_first_step()
            if self.task.loss_falls:
                self.loss_check = LossCheck.for_run(self.cfg, len(train_loader))
        self.prepare()
        anomaly = contextlib.nullcontext()
        if self.cfg.debug:
            print("debug=true: autograd anomaly detection is on; it runs several times slower")
            anomaly = torch.autograd.detect_anomaly()
        log.open(self.model, val_loader, self.global_step, fresh)
        try:
            with anomaly:
                while not self.finished:
                    started = time.perf_counter()
                    train = self.train_epoch(train_loader)
                    distributed.sync_buffers(self.task)  # every rank evaluates rank 0's model
                    val = self.evaluate(val_loader, desc="validate")
                    self.epoch += 1
                    self.end_epoch(train, val, time.perf_counter() - started)
                    self.stop_if_requested()
                    if judge is not None and not judge(self) and not self.finished:
                        print(f"pruned after epoch {self.epoch}: the other trials did better")
                        break
            log.finish(self.best_epoch(), self.global_step)
        finally:
            log.close()
        return self.finished

    def check_first_step(self, moving: bool = True) -> None:
        """Run the first-step checks (checks.py) on the next step, if `sanity_checks` is on;
        not `moving`: without the check that the weights moved (a step at a tiny lr)."""
        if self.cfg.sanity_checks:
            self.first_step = FirstStepChecks(self.task, moving)

    def prepare(self) -> None:
        """How the steps run: under DistributedDataParallel with several processes, compiled
        with `cfg.compile`{{ ", with channels-last weights with `cfg.channels_last`" if task.convolutional }}."""
{% if task.convolutional %}
        if self.cfg.channels_last:  # convolutions on tensor cores read this layout faster
            self.task.to(memory_format=torch.channels_last)
{% endif %}
        self.parallel = self.steps = distributed.wrap(self.task, self.device)
        if self.cfg.compile:
            self.steps = torch.compile(self.parallel)
            self.validation_step = torch.compile(self.task.validation_step)

    def train_epoch(self, loader: DataLoader) -> dict[str, float]:
        """One pass over `loader` (the rest of it, after a mid-epoch resume); returns the epoch's
        mean loss, named values and metrics."""
        self.task.train()
        first = self.batches_done
        if hasattr(loader.sampler, "set_epoch"):
            # The order depends on (seed, epoch) only; after a mid-epoch resume the samples
            # already trained on are skipped without being loaded.
            loader.sampler.set_epoch(self.epoch, start=first * self.cfg.batch_size)
        total = first + len(loader)
        if self.totals is None:
            self.totals = EpochTotals(self.task.metrics())
        self.guard.loader = loader
        batches = self.log.progress(loader, self.epoch, first, total)
        for index, batch in enumerate(batches, start=first):
            # The batches of an accumulation window add up their gradients for one step.
            window_start = index - index % self.cfg.accumulate_steps
            window = min(self.cfg.accumulate_steps, total - window_start)
            last_of_window = index + 1 == window_start + window
            step = self.train_batch(batch, window, sync=last_of_window)
            self.totals.add(step)
            self.guard.add(index, self.global_step + 1, self.lr, step.loss)
            self.loss_check.add(step.loss, self.global_step)
            if last_of_window:
                self.optimizer_step()
                self.batches_done = index + 1
                if self.global_step % self.cfg.log_every == 0:  # the only steps that sync
                    self.guard.check(self)
                    self.log.step(self.global_step, self.lr, self.totals)
                self.stop_if_requested()
                every = self.cfg.checkpoint_every_steps
                if every and self.global_step % every == 0 and index + 1 < total:
                    self.save()
        self.guard.check(self)
        summary = self.totals.summary()
        self.totals, self.batches_done = None, 0
        return summary

    def train_batch(self, batch: Batch, window: int, sync: bool = True) -> Step:
        """The task's training step on `batch` and its backward pass. The loss is divided by the
        `window` of batches whose gradients add up to one step (so their sum is the mean), and
        scaled for fp16; under torchrun, gradients are averaged across processes (`sync`) only
        on a window's last batch."""
        batch = self.to_device(batch)
        with contextlib.nullcontext() if sync else distributed.no_sync(self.parallel):
            with self.autocast():
                if self.first_step is not None:  # uncompiled: the checks watch the step
                    step = self.first_step.run(self.parallel, batch)
                else:
                    step = self.steps(batch)
            self.scaler.scale(step.loss / window if window > 1 else step.loss).backward()
        return step

    def optimizer_step(self) -> None:
        """Unscale, clip, step, clear the gradients and advance a per-step schedule."""
        step = self.global_step + 1
        inspect = self.log.inspects(step)  # a step whose gradients go into the logs
        if self.cfg.grad_clip > 0 or inspect:
            self.scaler.unscale_(self.optimizer)  # clip and inspect true gradients, not scaled
        # The gradients this step applies: those of the optimizer's parameters.
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.cfg.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        elif inspect:
            norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        if inspect:
            self.log.gradients(self.model, step, norm)
        checks, self.first_step = self.first_step, None
        if checks is None:
            self.guard.step(self.optimizer, self.scaler)
        else:  # the first step, which the checks examine (and may wait for the device)
            scale = self.scaler.get_scale()
            checks.before_optimizer_step()
            self.guard.step(self.optimizer, self.scaler)
            self.guard.check(self)  # a non-finite step was skipped: say so, not "no change"
            # An fp16 step skipped on overflow lowers the scale: no change expected either.
            checks.after_optimizer_step(step_skipped=self.scaler.get_scale() < scale)
        self.task.after_optimizer_step()  # e.g. an average of the weights (see the Task)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None and not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()
        self.global_step += 1

    @torch.inference_mode()
    def evaluate(self, loader: Any, desc: str = "evaluate") -> dict[str, float]:
        """Mean loss, named values and metrics of the task's validation step over `loader`, in
        eval mode and without autograd."""
        self.task.eval()
        totals = EpochTotals(self.task.metrics())
        show = None if distributed.is_main() else True
        for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=show):
            with self.autocast():
                totals.add(self.validation_step(self.to_device(batch)))
        return totals.summary()

    def end_epoch(self, train: dict[str, float], val: dict[str, float], seconds: float) -> None:
        """After an epoch: best tracking, the plateau schedule, the log, the checkpoints."""
        if self.monitor not in val:
            raise ConfigError(
                f"monitor={self.cfg.monitor}: the validation step reports no {self.monitor}; it "
                f"reports {', '.join(val)}. Name one of those (monitor= in config.py)."
            )
        score = val[self.monitor]
        improved = score > self.best_score if self.higher else score < self.best_score
        if improved:
            self.best_score, self.epochs_without_improvement = score, 0
        else:
            self.epochs_without_improvement += 1
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(-score if self.higher else score)  # it waits for a lower one
        self.loss_check.verdict(self.global_step, self.lr)
        self.history.append(
            {
                "epoch": self.epoch,
                **{f"train_{k}": v for k, v in train.items()},
                **{f"val_{k}": v for k, v in val.items()},
                "lr": self.lr,
                "seconds": seconds,
            }
        )
        distributed.check_same_weights(self.model)
        # Two decisions: the state is always saved (to resume); best.pt only on improvement.
        # Saved before the log is written, so that nothing the log does can cost the epoch.
        saved = self.save()
        if improved:
            self.checkpoints.mark_best(saved)
        self.log.epoch(self.task.evaluated(), self.history, self.global_step, improved)
        if self.patience_exhausted():
            print(
                f"early stopping: no better val_{self.monitor} for "
                f"{self.epochs_without_improvement} epochs (best {self.best_score:.4f})"
            )

    def best_epoch(self) -> dict[str, float]:
        """The history row of the epoch with the best validation `monitor`: the one in best.pt."""
        best = max if self.higher else min
        return best(self.history, key=lambda row: row[f"val_{self.monitor}"])

    def patience_exhausted(self) -> bool:
        """Whether early stopping should end training now."""
        patience = self.cfg.early_stopping_patience
        return patience > 0 and self.epochs_without_improvement >= patience

    def stop_if_requested(self) -> None:
        """After a SIGINT or SIGTERM: save a resumable checkpoint and raise `TrainingStopped`."""
        signum = (self.stop.signum or 0) if self.stop is not None else 0
        # Under torchrun, every process stops at the same step, whichever got the signal.
        signum = distributed.largest(signum)
        if signum:
            raise TrainingStopped(signum, self.save())

    def save(self) -> Path:
        """Save a checkpoint of the state as it is now (see `Checkpoints`); never one whose
        weights are not finite."""
        self.guard.check(self)
        state = self.state_dict()
        problem = checkpoint_problem(state)
        if problem:
            raise NonFiniteError(
                f"not saving a checkpoint at epoch {self.epoch + 1}, step {self.global_step}: "
                f"{problem}. It came past the non-finite check of the loss and the gradients "
                "(from a second optimizer of the task, or batch-norm statistics of non-finite "
                "inputs): --resume from the last checkpoint with grad_clip=1, or start a new "
                f"run with a lower lr (now {self.lr:.3g})."
            )
        self.log.flush()  # a run resumed from this checkpoint must find every point logged so far
        return self.checkpoints.save(state, (self.epoch, self.global_step, self.batches_done))

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as plain data (loads with `weights_only=True`)."""
        own = {"totals": self.totals and self.totals.state_dict(), "rng": rng_state()}
        return {
            "version": CHECKPOINT_VERSION,
            "project": PROJECT,
            "config": to_dict(self.cfg),
            "model": self.model.state_dict(),
            # What the task holds besides its model: other networks, buffers, a second optimizer
            "task": {k: v for k, v in self.task.state_dict().items() if not k.startswith("model.")},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler and self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "batches_done": self.batches_done,
            "monitor": self.monitor,
            "best_score": self.best_score,
            "epochs_without_improvement": self.epochs_without_improvement,
            "history": self.history,
            **own,
            # Under torchrun each process sums its own share of the epoch and draws its own
            # random numbers: "ranks" holds every process's, in rank order (rank 0's above).
            "ranks": distributed.gather(own) if distributed.is_active() else None,
            "processes": distributed.world_size(),
            "data": self.data_index,
        }

    def load_state_dict(self, checkpoint: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint written by `save`; `path` names it in errors."""
        processes = checkpoint["processes"]
        if checkpoint["batches_done"] and processes != distributed.world_size():
            raise CheckpointError(
                f"{path} was saved in the middle of an epoch by {processes} training "
                f"process(es), and this run has {distributed.world_size()}: each process's share "
                f"of the epoch's batches depends on their number. Resume it with {processes} "
                f"(torchrun --nproc_per_node={processes}, or without torchrun for 1); at the end "
                "of an epoch any number can take over."
            )
        load_weights(self.task, checkpoint, path)
        try:
            self.restore(checkpoint, path)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
            raise CheckpointError(  # it loaded safely, but does not hold what `state_dict` saves
                f"{path} is not a usable checkpoint of this project: its training state cannot "
                f"be restored ({type(error).__name__}: {str(error)[:200]}). Use another "
                "checkpoint of the run, e.g. a step-*.pt beside it."
            ) from None

    def restore(self, checkpoint: dict[str, Any], path: Path) -> None:
        """The training state of `checkpoint` besides the weights (see `load_state_dict`)."""
        processes = checkpoint["processes"]
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        for key in ("epoch", "global_step", "batches_done", "best_score", "history"):
            setattr(self, key, checkpoint[key])
        for row in self.history:  # what `best_epoch` reads: a bad row fails here, naming the file
            float(row[f"val_{self.monitor}"])
        self.epochs_without_improvement = checkpoint["epochs_without_improvement"]
        same = processes == distributed.world_size()
        ranks = checkpoint["ranks"]
        own = ranks[distributed.rank()] if same and ranks else checkpoint
        if own["totals"] is not None:
            self.totals = EpochTotals(self.task.metrics())
            self.totals.load_state_dict(own["totals"], self.device)
        # The step file that last.pt (or best.pt) is a copy of is the one being resumed from.
        step_file = path.with_name(f"step-{self.global_step:08d}.pt")
        self.resumed_from = step_file if step_file.exists() else path
        set_rng_state(own["rng"])
        if not same:  # at an epoch's end, on another number of processes: new streams from here
            own_random_stream(self.cfg.seed, self.global_step)

    def to_device(self, batch: Batch) -> Batch:
        """A batch on the training device; from pinned memory, the copy overlaps computation."""
{% if task.convolutional %}
        images, *rest = batch
        layout = torch.channels_last if self.cfg.channels_last else torch.preserve_format
        images = images.to(self.device, non_blocking=True, memory_format=layout)
        return images, *(t.to(self.device, non_blocking=True) for t in rest)
{% else %}
        return tuple(t.to(self.device, non_blocking=True) for t in batch)
{% endif %}

    def autocast(self) -> contextlib.AbstractContextManager:
        """Inside: mixed precision as cfg.amp asks (entering a disabled autocast costs as much
        as a small layer, so full precision enters nothing)."""
        if self.precision is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision)
