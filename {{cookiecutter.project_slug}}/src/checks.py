"""Self-checks for the bugs that let a network "train" while it is broken.

Seed of this file: a production network whose forward pass silently skipped most of its layers
for months. Every run checks its first step (`FirstStepChecks`) and warns when the loss does not
fall (`LossCheck`); a non-finite loss or gradient stops it with a replayable dump
(`NonFiniteGuard`, with no host-device sync on the steps between); `overfit_batch` (the
--overfit-batch ladder) and `find_lr` train through the Trainer's own steps; a model summary,
data checks, hints for the errors beginners meet most (`add_hint`) and `doctor` complete them.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from config import Config, UserError, to_dict
from model import Batch, Step
from utils import CHECKPOINT_VERSION, atomic_save

if TYPE_CHECKING:
    from train import Trainer

# torch's loss functions, which nn.CrossEntropyLoss, nn.MSELoss and most losses of your own call
LOSS_FUNCTIONS = frozenset(
    (
        F.cross_entropy,
        F.nll_loss,
        F.binary_cross_entropy,
        F.binary_cross_entropy_with_logits,
        F.mse_loss,
        F.l1_loss,
        F.smooth_l1_loss,
        F.huber_loss,
        F.kl_div,
    )
)
ON_LOGITS = frozenset((F.cross_entropy, F.binary_cross_entropy_with_logits))


class SanityError(UserError):
    """The first training step shows a bug in the model, the loss or the training step."""

    exit_code = 1


class NonFiniteError(UserError):
    """The loss or the weights became NaN or infinite; nothing non-finite was saved."""

    exit_code = 1


class FirstStepChecks:
    """Checks of a run's first optimizer step; `sanity_checks=false` turns them off.

    Made just before the step: it notes the trainable weights, `run` runs the training step
    while watching torch's loss functions (`LossWatch`) and checks the loss it returns, and
    `before_optimizer_step`/`after_optimizer_step` check that every trainable parameter got a
    gradient during the step and that those with one moved (unless not `moving`: a step at a
    rate too small to move every weight). They cost about one extra step.
    """

    def __init__(self, task: nn.Module, moving: bool = True) -> None:
        self.moving = moving
        self.parameters = {
            name.removeprefix("model."): p for name, p in task.named_parameters() if p.requires_grad
        }
        self.before = {name: p.detach().clone() for name, p in self.parameters.items()}
        self.with_gradient: set[str] = set()
        self.nonzero: set[str] = set()  # parameters whose gradient was not all zeros
        self.hooks = [
            p.register_post_accumulate_grad_hook(partial(self.saw_gradient, name))
            for name, p in self.parameters.items()
        ]

    def saw_gradient(self, name: str, parameter: torch.Tensor) -> None:
        self.with_gradient.add(name)
        if parameter.grad.any():
            self.nonzero.add(name)

    def run(self, steps: nn.Module, batch: Batch) -> Step:
        """`steps(batch)`, the training step, under watch; the step must return a Step whose
        loss is a scalar tensor that autograd can differentiate."""
        with LossWatch():
            step = steps(batch)
        if not isinstance(step, Step):
            raise SanityError(
                f"the training step returned a {type(step).__name__}, not a Step: return "
                "Step(loss, outputs, targets) (see the Task contract in model.py)."
            )
        loss = step.loss
        if not isinstance(loss, torch.Tensor):
            raise SanityError(
                f"the loss is a {type(loss).__name__}, not a tensor, so backward() cannot run "
                "(\"'float' object has no attribute 'backward'\"). Return the loss tensor itself; "
                "call .item() only to log it."
            )
        if loss.ndim != 0:
            raise SanityError(
                f"the loss has shape {tuple(loss.shape)}, not a single number. Reduce it with "
                ".mean(), or build the loss with reduction='mean'."
            )
        if loss.grad_fn is None:
            raise SanityError(
                "the loss has no grad_fn: it was computed without autograd (a .detach(), .item(), "
                "torch.no_grad() or inference_mode around it, or inputs that do not require grad),"
                " so backward() would fail with 'element 0 of tensors does not require grad'. "
                "Compute the loss from the model's outputs as they are."
            )
        return step

    def before_optimizer_step(self) -> None:
        """Every trainable parameter must have received a gradient during the step."""
        missing = [name for name in self.parameters if name not in self.with_gradient]
        if len(missing) == len(self.parameters):
            raise SanityError(
                "no parameter received a gradient in the first step: loss.backward() was not "
                "called, or the loss does not depend on the model's parameters."
            )
        if missing:
            raise SanityError(
                f"{len(missing)} of {len(self.parameters)} trainable parameters received no "
                f"gradient: {group_by_module(missing)}. The forward pass does not use them: a "
                "layer built but never called, a branch that is .detach()ed, or an output "
                "computed from the wrong variable (e.g. `y = self.conv(x1)` where `x1_up` was "
                "meant). Freeze parameters you do not train with requires_grad_(False)."
            )

    def after_optimizer_step(self, step_skipped: bool) -> None:
        """Parameters that had a non-zero gradient must have moved."""
        for hook in self.hooks:
            hook.remove()
        if step_skipped or not self.moving:  # an fp16 overflow skipped it, or a tiny lr
            return
        stuck = [
            name
            for name in self.nonzero
            if torch.equal(self.parameters[name].detach(), self.before[name])
        ]
        if stuck:
            raise SanityError(
                f"{len(stuck)} parameters had gradients but did not change in the first "
                f"optimizer step: {group_by_module(sorted(stuck))}. optimizer.step() is not "
                "called, the learning rate is 0, or these parameters are missing from the "
                "optimizer (see parameter_groups in model.py)."
            )


class LossWatch(TorchFunctionMode):
    """While active, every call of torch's loss functions is checked, whichever loss module or
    function of yours makes it: shapes the loss cannot compare, or that it would broadcast into
    a wrong loss that still trains, and probabilities where it expects logits (a softmax
    before a cross-entropy), stop the run."""

    def __torch_function__(
        self, func: Any, types: tuple, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func not in LOSS_FUNCTIONS:
            return func(*args, **kwargs)
        outputs = args[0] if args else kwargs["input"]
        targets = args[1] if len(args) > 1 else kwargs["target"]
        name = func.__name__
        shapes = f"outputs of shape {shape_of(outputs)} with targets of shape {shape_of(targets)}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                loss = func(*args, **kwargs)
            except (RuntimeError, ValueError, IndexError) as error:
                if "device" in str(error):
                    raise
                raise SanityError(
                    f"{name} cannot compare the model's {shapes}: {error}. Make the model's "
                    "last layer produce what the loss expects (for cross_entropy: (batch, "
                    "classes) logits and (batch,) class indices)."
                ) from None
        for warning in caught:
            if "target size" in str(warning.message):  # broadcasting would silently mix samples
                raise SanityError(
                    f"{name} got {shapes}; they broadcast into a wrong loss that still "
                    "trains. Make both the same shape (e.g. outputs.squeeze(1) or "
                    "targets.unsqueeze(1))."
                )
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        if func in ON_LOGITS and looks_like_probabilities(outputs, func):
            raise SanityError(
                f"the model's outputs look like probabilities (all in [0, 1]"
                f"{', summing to 1' if func is F.cross_entropy else ''}), but {name} expects raw "
                "logits and applies the softmax/sigmoid itself: applied twice, it trains much "
                "worse or not at all. Remove the softmax/sigmoid at the end of forward() (apply it "
                "where you need probabilities, after the loss). If the loss is meant to get "
                "probabilities, run with sanity_checks=false."
            )
        return loss


class LossCheck:
    """Warns when the training loss of the last quarter of the batches up to optimizer step
    `at` is not below that of the first quarter (0: no check). The losses stay on the device
    until `verdict`, at the end of an epoch."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.losses: list[torch.Tensor] = []

    @classmethod
    def for_run(cls, cfg: Config, batches_per_epoch: int) -> LossCheck:
        """The check of a new run: by the end of the first epoch and of the lr warmup (whose
        first steps barely move), or at `loss_check_steps`; fewer than 20 steps would compare
        the noise of single batches."""
        steps_per_epoch = math.ceil(batches_per_epoch / cfg.accumulate_steps)
        return cls(cfg.loss_check_steps or max(steps_per_epoch, 20, cfg.warmup_steps))

    def add(self, loss: torch.Tensor, global_step: int) -> None:
        """Count one batch's loss, taken when `global_step` optimizer steps are done."""
        if global_step < self.at:
            self.losses.append(loss.detach())

    def verdict(self, global_step: int, lr: float) -> None:
        """Once `at` optimizer steps are done: warn if the loss has not fallen."""
        if not self.at or global_step < self.at:
            return
        losses, steps, self.at, self.losses = torch.stack(self.losses).float(), self.at, 0, []
        quarter = max(1, len(losses) // 4)
        first, last = losses[:quarter].mean().item(), losses[-quarter:].mean().item()
        if last >= first:
            warnings.warn(
                f"the training loss has not decreased in the first {steps} steps "
                f"(mean of the first {quarter} batches {first:.4g}, of the last {quarter} "
                f"{last:.4g}). The model is not learning: check that optimizer.step() runs, that "
                f"the loss gets the right targets, and the learning rate (lr={lr:.3g}; "
                "python src/main.py --find-lr suggests one).",
                stacklevel=2,
            )


class NonFiniteGuard:
    """Keeps NaN and inf out of the weights without a host-device sync on every step.

    `step` checks the gradients on the device, and the optimizer skips its update when one is
    not finite (`found_inf`, the way GradScaler and torch's fused optimizers skip an fp16
    overflow). The flag stays set, so from then on the weights stay those that produced the
    first non-finite value. `check`, on logging steps and before every save, reads the losses
    since the last check in one sync and stops the run with the diagnosis and a --replay dump.
    """

    def __init__(self, device: torch.device) -> None:
        self.found_inf = torch.zeros((), device=device)  # 1.0 once a gradient was not finite
        self.unscale = torch.ones((), device=device)
        self.loader: Iterable[Batch] | None = None  # the epoch's batches, which `add` numbers
        self.losses: list[tuple[int, int, float, torch.Tensor]] = []  # (batch, step, lr, loss)

    def add(self, batch: int, step: int, lr: float, loss: torch.Tensor) -> None:
        """Keep the loss of batch number `batch`, trained on for optimizer step `step`."""
        self.losses.append((batch, step, lr, loss.detach()))

    def step(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
        """`optimizer.step()` through `scaler`, skipped on the device if a gradient is not
        finite. Under fp16 the scaler finds non-finite gradients itself (an overflow of the loss
        scale is routine there: it skips that step and lowers the scale)."""
        if scaler.is_enabled():
            scaler.step(optimizer)
            scaler.update()
            return
        grads = defaultdict(list)  # the check takes one dtype at a time
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grads[p.grad.dtype].append(p.grad)
        for same_dtype in grads.values():
            torch._amp_foreach_non_finite_check_and_unscale_(
                same_dtype, self.found_inf, self.unscale
            )
        if getattr(optimizer, "_step_supports_amp_scaling", False):  # torch's fused optimizers
            optimizer.found_inf = self.found_inf
            optimizer.step()
            del optimizer.found_inf
        elif not self.found_inf.item():  # any other optimizer: one sync per step
            optimizer.step()

    def check(self, trainer: Trainer) -> None:
        """Raise `NonFiniteError` if a loss or a gradient since the last check was not finite."""
        pending, self.losses = self.losses, []
        losses = [loss.float() for *_, loss in pending]
        *values, found_inf = torch.stack([*losses, self.found_inf.float()]).tolist()  # one sync
        for (batch, step, lr, _), value in zip(pending, values, strict=True):
            if not math.isfinite(value):
                raise non_finite_loss(trainer, batch_at(self.loader, batch), step, lr, value)
        if found_inf:
            raise NonFiniteError(
                f"the gradients became non-finite by step {trainer.global_step} (lr "
                f"{trainer.lr:.3g}) with a finite loss, and that step was skipped. Usual causes: "
                "a learning rate too high, gradient clipping turned off (grad_clip=0), or an "
                "operation whose gradient is infinite at some inputs (sqrt or log of 0, a "
                "division by a value near 0). Nothing non-finite was saved: --resume from the "
                "last checkpoint with grad_clip=1, or start a new run with a lower lr."
            )


def batch_at(loader: Iterable[Batch] | None, index: int) -> Batch | None:
    """Batch `index` of the loader's current epoch, read again: its samples and their
    augmentation depend only on the seed, the epoch and the index (see `EpochSampler`). None
    for a loader whose sampler cannot start mid-epoch."""
    sampler = getattr(loader, "sampler", None)
    if not hasattr(sampler, "set_epoch"):
        return None
    sampler.set_epoch(sampler.epoch, start=index * loader.batch_size)
    keys = list(itertools.islice(sampler, loader.batch_size))
    dataset = loader.dataset
    if hasattr(dataset, "__getitems__"):  # a whole batch at once (see utils.TensorBatches)
        return loader.collate_fn(dataset.__getitems__(keys))
    return loader.collate_fn([dataset[key] for key in keys])


def non_finite_loss(
    trainer: Trainer, batch: Batch | None, step: int, lr: float, loss: float
) -> NonFiniteError:
    """The error for a non-finite training loss. In a run, the failing batch is saved with the
    weights that produced it, for --replay."""
    message = (
        f"the loss became {loss} at epoch {trainer.epoch + 1}, step {step} (lr {lr:.3g}). "
        f"Usual causes: a learning rate too high (try lr={lr / 10:.3g}), gradient clipping "
        "turned off (grad_clip=0), a log or division of zero in the loss, or NaN/inf values in "
        "the data. Nothing non-finite was saved"
    )
    if trainer.checkpoints is None or batch is None:
        return NonFiniteError(message + ".")
    dump = trainer.checkpoints.folder / f"nonfinite-step{step:08d}.pt"
    state = trainer.task.state_dict()
    atomic_save(
        {
            "version": CHECKPOINT_VERSION,
            "config": to_dict(trainer.cfg),
            # Still those that produced it: every update since that step was skipped.
            "model": trainer.model.state_dict(),
            "task": {k: v for k, v in state.items() if not k.startswith("model.")},
            "batch": [tensor.cpu() for tensor in batch],
        },
        dump,
    )
    return NonFiniteError(
        f"{message}; the batch and the weights that produced it are in {dump}. Reproduce the "
        f"failing step with:\n    python src/main.py --replay {dump}"
    )


@dataclass
class OverfitResult:
    """The outcome of `overfit_batch`."""

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


def train_on(trainer: Trainer, batch: Batch) -> Step:
    """One optimizer step of `trainer` on one batch, with the task's own training step."""
    trainer.task.train()
    step = trainer.train_batch(batch, window=1)
    trainer.guard.add(0, trainer.global_step + 1, trainer.lr, step.loss)
    trainer.optimizer_step()
    trainer.guard.check(trainer)
    return step


def overfit_batch(trainer: Trainer, batch: Batch, max_steps: int) -> OverfitResult:
    """Train on one fixed batch, with the task's own step, until the task says it is memorised
    (`Task.overfitted`) or `max_steps` run out. Progress is measured in eval mode, so dropout
    does not blur the verdict and batch norm uses the statistics a trained model would use, and
    on the weights the steps train: an average of them (`Task.evaluated`) lags behind by design.
    """
    task = trainer.task
    task.evaluated = lambda: task.model  # for this check only: it ends with `trainer`
    trainer.check_first_step()
    start = end = trainer.evaluate([batch], desc="measure")
    fitted, goal = task.overfitted(batch, start, end)
    step = 0
    for step in range(1, max_steps + 1):
        train_on(trainer, batch)
        if step % 10 == 0 or step == max_steps:
            end = trainer.evaluate([batch], desc="measure")
            fitted, goal = task.overfitted(batch, start, end)
            if fitted or not math.isfinite(end["loss"]):
                break
    return OverfitResult(step, len(batch[-1]), start, end, fitted, goal)


def find_lr(
    trainer: Trainer, loader: Iterable[Batch], steps: int, low: float = 1e-7, high: float = 10.0
) -> tuple[list[float], list[float]]:
    """The learning-rate range test: raise the lr exponentially from `low` to `high` over
    `steps` optimizer steps of the task's own step, recording the smoothed training loss,
    until the loss diverges."""
    lrs: list[float] = []
    losses: list[float] = []
    average, best = 0.0, math.inf
    batches = endless(loader)
    trainer.check_first_step(moving=False)  # a broken model is named, not swept
    for step in range(steps):
        lr = low * (high / low) ** (step / (steps - 1))
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        try:
            loss = train_on(trainer, next(batches)).loss.item()
        except NonFiniteError:
            break
        average = 0.95 * average + 0.05 * loss
        smoothed = average / (1 - 0.95 ** (step + 1))  # bias-corrected moving average
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if smoothed > 4 * best:
            break
    return lrs, losses


def endless(loader: Iterable[Batch]) -> Iterator[Batch]:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


# Adam and AdamW move every weight by about lr a step, whatever its gradient: from scratch, faster
# rates rarely train well, however low the range test's loss still is at them.
ADAM_LR_CEILING = 1e-2


def suggest_lr(lrs: list[float], losses: list[float], ceiling: float = math.inf) -> float:
    """A tenth of the lr at which the smoothed loss was lowest, at most `ceiling`: past that point
    the rate is too high to learn, and a tenth of it is safely below while still fast. (Where the
    loss falls fastest is no safer guide: it often marks an early, easy drop, such as learning
    the class frequencies, at a rate far too low for the rest.)"""
    return min(max(lrs[losses.index(min(losses))] / 10, lrs[0]), ceiling)


def shape_of(value: object) -> str:
    shape = getattr(value, "shape", None)
    return str(tuple(shape)) if shape is not None else f"<{type(value).__name__}>"


def looks_like_probabilities(outputs: torch.Tensor, loss: object) -> bool:
    """Whether `outputs` look softmax- or sigmoid-ed, given to a `loss` that expects logits."""
    values = outputs.detach().float()
    if values.numel() == 0 or values.min() < 0 or values.max() > 1:
        return False
    if loss is F.cross_entropy and values.ndim >= 2:
        return bool(torch.allclose(values.sum(dim=1), torch.ones(()), atol=1e-3))
    return True


def group_by_module(names: list[str]) -> str:
    """`features.1.0 (weight), classifier.2 (weight, bias)` from parameter names."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        module, _, leaf = name.rpartition(".")
        groups[module or "(model)"].append(leaf)
    return ", ".join(f"{module} ({', '.join(leaves)})" for module, leaves in groups.items())


def model_summary(model: nn.Module) -> str:
    """Parameters per top-level module, trainable and frozen, the total and the size in MB."""
    rows = [("module", "type", "trainable", "frozen")]
    children = model.named_children()
    parts = [(name, type(part).__name__, [*part.parameters()]) for name, part in children]
    own = list(model.parameters(recurse=False))  # held by the model itself: a [CLS] vector
    for name, kind, parameters in parts + ([("(its own)", "Parameter", own)] if own else []):
        trainable = sum(p.numel() for p in parameters if p.requires_grad)
        frozen = sum(p.numel() for p in parameters if not p.requires_grad)
        rows.append((name, kind, f"{trainable:,}", f"{frozen:,}"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    rows.append(("total", type(model).__name__, f"{trainable:,}", f"{frozen:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    tensors = [*model.parameters(), *model.buffers()]
    megabytes = sum(t.numel() * t.element_size() for t in tensors) / 2**20
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    lines.append(f"size: {megabytes:.2f} MB of parameters and buffers")
    return "\n".join(lines)


# Errors of seed 000's list, each with the likely cause and fix.
HINTS = [
    (
        "backward through the graph a second time",
        "a tensor from an earlier step is reused in this step's loss (e.g. a running total or "
        "a hidden state kept across batches). .detach() it where it is carried over; only use "
        "retain_graph=True if you really need two backward passes through one graph.",
    ),
    (
        "modified by an inplace operation",
        "an in-place operation (x += ..., x[...] = ..., relu_(), ReLU(inplace=True)) overwrote a "
        "tensor that backward still needs. Use the out-of-place form, or .clone() the tensor "
        "before changing it. debug=true points at the operation.",
    ),
    (
        "Dimension out of range",
        "a dim= argument does not exist for this tensor, usually because a batch dimension is "
        "missing or extra. Print the shapes going into the failing line (x.shape).",
    ),
    (
        "'tuple' object has no attribute",
        "a model or dataset returned a tuple where a tensor was expected; unpack it "
        "(outputs, extra = model(x)) or return only the tensor.",
    ),
    (
        "got (tuple",
        "a tuple was passed where a tensor was expected (e.g. torch.squeeze(model(x)) on a model "
        "that returns several outputs); unpack it first.",
    ),
    (
        "does not require grad and does not have a grad_fn",
        "the loss was computed without autograd: a .detach(), .item(), torch.no_grad() or a "
        "frozen model around it. Compute it from the model's outputs directly.",
    ),
    (
        "'float' object has no attribute 'backward'",
        "the loss is a Python number (e.g. from .item() or a hand-written sum), not a tensor; "
        "keep it a tensor until after backward().",
    ),
    (
        "Expected all tensors to be on the same device",
        "the inputs, the targets and the model are on different devices; move each with "
        ".to(device) (the Trainer does this for the batches it gets from the DataLoader).",
    ),
    (
        "mat1 and mat2 shapes cannot be multiplied",
        "a Linear layer's in_features does not match what reaches it; print the shape before "
        "the layer, or compute in_features from the input size.",
    ),
]


def add_hint(error: BaseException) -> None:
    """Append the likely cause and fix to a known error's traceback (shown after its message)."""
    message = str(error)
    for pattern, hint in HINTS:
        if re.search(re.escape(pattern), message):
            error.add_note(f"hint: {hint}")
            return


def doctor() -> list[tuple[bool, str]]:
    """What this environment can do, each line with the fix where something is missing."""
    import importlib.util
    import os
    import platform
    import shutil

    threads = f"torch uses {torch.get_num_threads()} threads"
    report = [(True, f"python {platform.python_version()}, {os.cpu_count()} CPU cores, {threads}")]
    safe = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 6)
    cve = " is older than 2.6, whose torch.load can run code hidden in checkpoints (CVE-2025-32434)"
    fix = "" if safe else f"{cve}: pip install -r requirements.txt"
    report.append((safe, f"torch {torch.__version__}{fix}"))
    report += devices()
    for module, purpose in (("tensorboard", "TensorBoard logs"), ("matplotlib", "curve plots")):
        ok = importlib.util.find_spec(module) is not None
        state = "installed" if ok else f"missing; pip install {module}"
        report.append((ok, f"{module}: {state} ({purpose})"))
    if os.path.isdir("/dev/shm"):
        shm = shutil.disk_usage("/dev/shm").free / 2**30
        hint = "" if shm >= 1 else "; in Docker add --shm-size=8g, or use num_workers=0"
        report.append((shm >= 1, f"shared memory for DataLoader workers: {shm:.1f} GB free{hint}"))
    disk = shutil.disk_usage(".").free / 2**30
    hint = "" if disk >= 2 else "; checkpoints need room, free some space"
    report.append((disk >= 2, f"free disk here: {disk:.1f} GB{hint}"))
    return report


def devices() -> list[tuple[bool, str]]:
    """For `doctor`: the GPUs (or why there are none), bf16, and torch.compile."""
    import importlib.util
    import shutil

    cuda = torch.cuda.is_available()
    if cuda:
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        bf16 = torch.cuda.is_bf16_supported()
        fallback = "" if bf16 else ": not on this GPU; amp uses fp16 with loss scaling"
        report = [
            (True, f"CUDA {torch.version.cuda}: {names}"),
            (True, f"bf16 mixed precision{fallback}"),
        ]
    else:
        build = f"is built for CUDA {torch.version.cuda}" if torch.version.cuda else "is CPU-only"
        if not torch.version.cuda:
            build += "; for a GPU, install a CUDA build from pytorch.org"
        report = [(True, f"no CUDA GPU visible: training runs on the CPU (this torch {build})")]
    if torch.backends.mps.is_available():
        report.append((True, "Apple MPS available: device=mps"))
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    can = importlib.util.find_spec("triton") is not None if cuda else compiler is not None
    fix = "" if can else ": " + ("pip install triton" if cuda else "install a C++ compiler (gcc)")
    report.append((can, f"torch.compile {'can' if can else 'cannot'} build kernels{fix}"))
    return report


def check_splits(splits: dict[str, Any], imbalance_ratio: float) -> str:
    """The data checks at the start of a run: the splits must share no sample, and the class
    counts per split are reported, with a warning when one class dwarfs another. Returns the
    report to print."""
    keys = {name: set(dataset.sample_keys()) for name, dataset in splits.items()}
    for (first, a), (second, b) in itertools.combinations(keys.items(), 2):
        shared = len(a & b)
        if shared:
            raise UserError(  # bad input: exit code 2
                f"the {first} and {second} splits share {shared} samples, so the {second} "
                "metrics would reward memorising instead of generalising. Remove the duplicates "
                "from the data, or split so that copies of a sample stay together."
            )
    sizes = ", ".join(f"{name} {len(dataset)}" for name, dataset in splits.items())
    lines = [f"data: {sizes} samples; no sample is in two splits"]
    if not all(hasattr(dataset, "class_counts") for dataset in splits.values()):
        return lines[0]
    counts = {name: dataset.class_counts() for name, dataset in splits.items()}
    classes = list(next(iter(counts.values())))
    width = max(len(c) for c in [*classes, "class"])
    lines.append("class".ljust(width) + "".join(f"{name:>8}" for name in counts))
    for label in classes:
        lines.append(label.ljust(width) + "".join(f"{c[label]:>8}" for c in counts.values()))
    for name, split_counts in counts.items():
        most, least = max(split_counts.values()), min(split_counts.values())
        if least == 0 or most / least > imbalance_ratio:
            rare = min(split_counts, key=split_counts.get)
            warnings.warn(
                f"class imbalance in the {name} split: {most} samples of the largest class, "
                f"{least} of '{rare}'. Accuracy can look good while '{rare}' is never predicted; "
                "collect more of it, or weight the loss by class.",
                stacklevel=2,
            )
    return "\n".join(lines)
