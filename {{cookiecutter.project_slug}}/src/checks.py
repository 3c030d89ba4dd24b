"""Self-checks for the bugs that let a network "train" while it is broken.

Seed of this file: a production network whose forward pass silently skipped most of its layers
for months. Every run checks its first step (`FirstStepChecks`), warns when the loss does not move,
prints a model summary, and adds a hint to the errors beginners meet most (`add_hint`).
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections import defaultdict
from typing import Any

import torch
from torch import nn

from config import UserError


class SanityError(UserError):
    """The first training step shows a bug in the model, the loss or the training step."""

    exit_code = 1


class FirstStepChecks:
    """Checks around the first optimizer step of a run; `sanity_checks=false` turns them off.

    They cost about one extra step: a copy of the trainable weights and a few reductions.
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.before_step: dict[str, torch.Tensor] = {}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """`loss_fn(outputs, targets)`, failing clearly when their shapes cannot match."""
        loss_name = type(self.loss_fn).__name__
        shapes = f"outputs of shape {shape_of(outputs)} with targets of shape {shape_of(targets)}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                loss = self.loss_fn(outputs, targets)
            except (RuntimeError, ValueError, IndexError, TypeError) as error:
                raise SanityError(
                    f"{loss_name} cannot compare the model's {shapes}: {error}. Make the model's "
                    "last layer produce what the loss expects (for CrossEntropyLoss: (batch, "
                    "classes) logits and (batch,) class indices)."
                ) from None
        for warning in caught:
            if "target size" in str(warning.message):  # broadcasting would silently mix samples
                raise SanityError(
                    f"{loss_name} got {shapes}; they broadcast into a wrong loss that still "
                    "trains. Make both the same shape (e.g. outputs.squeeze(1) or "
                    "targets.unsqueeze(1))."
                )
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        return loss

    def after_forward(self, outputs: torch.Tensor, loss: object) -> None:
        """The loss must be a scalar tensor that autograd can differentiate."""
        loss_name = type(self.loss_fn).__name__
        if not isinstance(loss, torch.Tensor):
            raise SanityError(
                f"the loss is a {type(loss).__name__}, not a tensor, so backward() cannot run "
                "(\"'float' object has no attribute 'backward'\"). Return the loss tensor itself; "
                "call .item() only to log it."
            )
        if loss.ndim != 0:
            raise SanityError(
                f"the loss has shape {tuple(loss.shape)}, not a single number. Reduce it with "
                f".mean() or build {loss_name} with reduction='mean'."
            )
        if loss.grad_fn is None:
            raise SanityError(
                "the loss has no grad_fn: it was computed without autograd (a .detach(), .item(), "
                "torch.no_grad() or inference_mode around it, or inputs that do not require grad),"
                " so backward() would fail with 'element 0 of tensors does not require grad'. "
                "Compute the loss from the model's outputs as they are."
            )
        if looks_like_probabilities(outputs, self.loss_fn):
            warnings.warn(
                f"the model's outputs look like probabilities (all in [0, 1]) but {loss_name} "
                "expects raw logits and applies the softmax/sigmoid itself. Remove the "
                "softmax/sigmoid at the end of forward(); training works much worse with it.",
                stacklevel=2,
            )

    def before_optimizer_step(self) -> None:
        """Every trainable parameter must have a gradient; remember the weights."""
        trainable = dict(trainable_parameters(self.model))
        missing = [name for name, p in trainable.items() if p.grad is None]
        if len(missing) == len(trainable):
            raise SanityError(
                "no parameter received a gradient in the first step: loss.backward() was not "
                "called, or the loss does not depend on the model's parameters."
            )
        if missing:
            raise SanityError(
                f"{len(missing)} of {len(trainable)} trainable parameters received no gradient: "
                f"{group_by_module(missing)}. The forward pass does not use them: a layer built "
                "but never called, a branch that is .detach()ed, or an output computed from the "
                "wrong variable (e.g. `y = self.conv(x1)` where `x1_up` was meant). Freeze "
                "parameters you do not train with requires_grad_(False)."
            )
        self.before_step = {
            name: p.detach().clone() for name, p in trainable.items() if p.grad.any()
        }

    def after_optimizer_step(self, step_skipped: bool) -> None:
        """Parameters that had a non-zero gradient must have moved."""
        if step_skipped:  # the fp16 loss scaler skipped an overflowing step: nothing to compare
            return
        stuck = [
            name
            for name, p in trainable_parameters(self.model)
            if name in self.before_step and torch.equal(p.detach(), self.before_step[name])
        ]
        self.before_step = {}
        if stuck:
            raise SanityError(
                f"{len(stuck)} parameters had gradients but did not change in the first "
                f"optimizer step: {group_by_module(stuck)}. optimizer.step() is not called, the "
                "learning rate is 0, or these parameters are missing from the optimizer."
            )


def shape_of(value: object) -> str:
    shape = getattr(value, "shape", None)
    return str(tuple(shape)) if shape is not None else f"<{type(value).__name__}>"


def looks_like_probabilities(outputs: torch.Tensor, loss_fn: nn.Module) -> bool:
    """Whether `outputs` look softmax- or sigmoid-ed while `loss_fn` expects logits."""
    if not isinstance(loss_fn, nn.CrossEntropyLoss | nn.BCEWithLogitsLoss):
        return False
    values = outputs.detach().float()
    if values.numel() == 0 or values.min() < 0 or values.max() > 1:
        return False
    if isinstance(loss_fn, nn.CrossEntropyLoss) and values.ndim >= 2:
        return bool(torch.allclose(values.sum(dim=1), torch.ones(()), atol=1e-3))
    return True


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Parameters that training updates; frozen ones (requires_grad=False) are expected idle."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


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
    for name, module in model.named_children():
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
        rows.append((name, type(module).__name__, f"{trainable:,}", f"{frozen:,}"))
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

    def installed(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    report = [
        (
            True,
            f"python {platform.python_version()}, {os.cpu_count()} CPU cores, "
            f"torch uses {torch.get_num_threads()} threads",
        )
    ]
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    report.append(
        (
            (major, minor) >= (2, 6),
            f"torch {torch.__version__}"
            + (
                ""
                if (major, minor) >= (2, 6)
                else " is older than 2.6, whose torch.load can run code "
                "hidden in checkpoints (CVE-2025-32434): pip install -r requirements.txt"
            ),
        )
    )
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        report.append((True, f"CUDA {torch.version.cuda}: {names}"))
        bf16 = torch.cuda.is_bf16_supported()
        report.append(
            (
                True,
                "bf16 mixed precision"
                + ("" if bf16 else ": not on this GPU; amp uses fp16 with loss scaling"),
            )
        )
    else:
        build = (
            f"this torch is built for CUDA {torch.version.cuda}"
            if torch.version.cuda
            else ("this torch is a CPU-only build; for a GPU install a CUDA build from pytorch.org")
        )
        report.append((True, f"no CUDA GPU visible: training runs on the CPU ({build})"))
    if torch.backends.mps.is_available():
        report.append((True, "Apple MPS available: device=mps"))
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    compile_ok = installed("triton") if torch.cuda.is_available() else compiler is not None
    report.append(
        (
            compile_ok,
            "torch.compile can build kernels"
            if compile_ok
            else "torch.compile cannot build kernels: "
            + (
                "pip install triton"
                if torch.cuda.is_available()
                else "install a C++ compiler (gcc)"
            ),
        )
    )
    for module, purpose in (("tensorboard", "TensorBoard logs"), ("matplotlib", "curve plots")):
        ok = installed(module)
        report.append(
            (ok, f"{module}: {'installed' if ok else 'missing; pip install ' + module} ({purpose})")
        )
    if os.path.isdir("/dev/shm"):
        shm = shutil.disk_usage("/dev/shm").free / 2**30
        report.append(
            (
                shm >= 1,
                f"shared memory for DataLoader workers: {shm:.1f} GB free"
                + ("" if shm >= 1 else "; in Docker add --shm-size=8g, or use num_workers=0"),
            )
        )
    disk = shutil.disk_usage(".").free / 2**30
    report.append(
        (
            disk >= 2,
            f"free disk here: {disk:.1f} GB"
            + ("" if disk >= 2 else "; checkpoints need room, free some space"),
        )
    )
    return report


def check_splits(splits: dict[str, Any], imbalance_ratio: float) -> str:
    """The data checks at the start of a run: the splits must share no sample, and the class
    counts per split are reported, with a warning when one class dwarfs another. Returns the
    report to print."""
    keys = {name: set(dataset.sample_keys()) for name, dataset in splits.items()}
    for (first, a), (second, b) in itertools.combinations(keys.items(), 2):
        shared = len(a & b)
        if shared:
            raise SanityError(
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
