{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task with context %}
"""What the tests share besides fixtures: tiny settings and helpers to run the project."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import main as entry_point
from config import Config, apply_overrides
{% if cookiecutter.dataset == "image_folder" %}
from dataset import model_inputs, write_example_images
{% elif cookiecutter.dataset == "csv" %}
from dataset import model_inputs, write_example_csv
{% elif cookiecutter.dataset in ("mnist", "cifar10") %}
from dataset import CACHE, IMAGE_SIZE, IN_CHANNELS, model_inputs
{% else %}
from dataset import model_inputs
{% endif %}
from model import Batch, Step, Task, build_task
from train import Trainer
from utils import load_checkpoint

# Small enough for a CPU test to train in a second or two, big enough to learn something.
TINY = [{{ task.tiny_overrides }}, "epochs=2", "batch_size=32", "log_every=2"]
TINY += ["log_images_every=0"]  # drawing the pictures would take longer than such epochs
TINY += ["monitor={{ task.monitor }}"]  # the tests' score, whichever config.py picks for runs
# The run many tests look at, trained once per session (conftest.py's `finished`): TINY with a
# step schedule (so that --resume can lengthen it), histograms every 3 steps and the pictures.
FINISHED = [*TINY, "run_name=r", "scheduler=step", "log_hist_every=3", "log_images_every=1"]
# An override that changes the shape of the model's weights.
RESHAPE = "{{ task.reshape_override }}"
{% if task.layered_overrides %}
# Overrides that give the model several layers, for the tests that break one of them.
LAYERED = [{{ task.layered_overrides }}]
{% else %}
LAYERED: list[str] = []  # the default model already has several layers
{% endif %}

SRC = Path(entry_point.__file__).resolve().parent
CHECKPOINTS = Path("models/checkpoints/default")


{% if cookiecutter.dataset == "image_folder" %}
def make_data_folder(folder: Path) -> None:
    """The data/ folder of a fresh project, with 133 example images per class: splits of 279,
    60 and 60 samples, the sizes the synthetic data of the other projects give the tests."""
    write_example_images(folder, per_class=133)
{% elif cookiecutter.dataset == "csv" %}
def make_data_folder(folder: Path) -> None:
    """The data/ folder of a fresh project, with an example data.csv of 400 rows: splits of 280,
    60 and 60 samples, the sizes the synthetic data of the other projects give the tests."""
    write_example_csv(folder / "data.csv", rows=400)
{% elif cookiecutter.dataset in ("mnist", "cifar10") %}
def make_data_folder(folder: Path) -> None:
    """The data/ folder as the first run leaves it, but with a small stand-in for the real
    dataset (nothing is downloaded in tests): 329 training images (280 train and 49 val) and 60
    test images, the split sizes the synthetic data of the other projects give the tests."""
    folder.mkdir()
    torch.save(
        {
            "train_images": fake_images(torch.arange(330) % 10, seed=1),
            "train_labels": torch.arange(330) % 10,
            "test_images": fake_images(torch.arange(60) % 10, seed=2),
            "test_labels": torch.arange(60) % 10,
        },
        folder / CACHE,
    )


def fake_images(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 images of the dataset's shape that a small CNN can tell apart: the class lights one
    cell of a 4×3 grid, under noise."""
    generator = torch.Generator().manual_seed(seed)
    shape = (len(labels), IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    images = torch.randint(0, 100, shape, generator=generator, dtype=torch.uint8)
    cell = IMAGE_SIZE // 4
    for image, label in zip(images, labels.tolist(), strict=True):
        row, column = divmod(label, 4)
        image[:, row * cell : (row + 1) * cell, column * cell : (column + 1) * cell] += 150
    return images
{% else %}
def make_data_folder(folder: Path) -> None:
    """The data/ folder of a fresh project: empty; the built-in data are generated into it."""
    folder.mkdir()
{% endif %}


def copy_tree(source: Path, target: Path) -> None:
    """Copy the files and folders under `source` into `target`."""
    shutil.copytree(source, target, dirs_exist_ok=True)


def start(args: list[str], **popen: Any) -> subprocess.Popen:
    """`python src/main.py ARGS` in the current folder, as a user would start it."""
    return subprocess.Popen(
        [sys.executable, str(SRC / "main.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def wait_for_checkpoint(
    path: Path, process: subprocess.Popen, condition: Callable[[dict], bool]
) -> dict:
    """Poll the checkpoint at `path` until it satisfies `condition` while `process` runs."""
    seen, deadline = None, time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != seen:
            seen = stamp
            checkpoint = torch.load(path, weights_only=True)
            if condition(checkpoint):
                return checkpoint
        time.sleep(0.005)
    out, err = process.communicate()
    pytest.fail(f"the run ended before the moment to interrupt it:\n{out}\n{err}")


def task_for(overrides: list[str]) -> Task:
    """The project's task with these overrides, freshly initialised (make the data first)."""
    cfg = apply_overrides(Config(), overrides)
    return build_task(cfg, **model_inputs(cfg))


class CountingMetrics:
    """A task-independent stand-in for the task's metrics, for Trainer tests on a toy task."""

    def __init__(self) -> None:
        self.count = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.count += len(targets)

    def compute(self) -> dict[str, float]:
        return {"count": float(self.count)}

    def state_dict(self) -> dict[str, int]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.count = state["count"]


class LinearTask(Task):
    """A 4-in, 3-class linear model as a task, for tests of the Trainer's mechanics."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Linear(4, 3)
        self.loss_fn = nn.CrossEntropyLoss()

    def training_step(self, batch: Batch) -> Step:
        inputs, labels = batch
        outputs = self.model(inputs)
        return Step(self.loss_fn(outputs, labels), outputs, labels)

    def validation_step(self, batch: Batch) -> Step:
        return self.training_step(batch)

    def metrics(self) -> CountingMetrics:
        return CountingMetrics()

    def overfitted(self, batch: Batch, start: dict, end: dict) -> tuple[bool, str]:
        return end["loss"] < 0.01, "a loss below 0.01"


def linear_trainer(overrides: list[str], task: Task | None = None) -> Trainer:
    """A Trainer of `task` (default: a `LinearTask`) on the CPU, with plain SGD, for tests of
    its mechanics."""
    torch.manual_seed(0)
    task = task or LinearTask()
    defaults = ["optimizer=sgd", "lr=0.01", "grad_clip=0", "log_every=1000", "monitor=loss"]
    cfg = apply_overrides(Config(), [*defaults, *overrides])
    optimizer = torch.optim.SGD(task.parameters(), lr=cfg.lr, momentum=0.9)
    return Trainer(task, cfg, torch.device("cpu"), optimizer)


def stop_once_after_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The next run in this process stops after optimizer step `step` as on SIGTERM: it saves
    and exits with 143. Later runs (its resume) go on."""
    stop_if_requested = Trainer.stop_if_requested
    fired: list[bool] = []

    def stop(self: Trainer) -> None:
        if self.global_step == step and not fired:
            fired.append(True)
            self.stop.signum = signal.SIGTERM
        stop_if_requested(self)

    monkeypatch.setattr(Trainer, "stop_if_requested", stop)


def train_stop_and_resume(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict]:
    """The last checkpoints of a run trained straight through, and of the same run stopped
    after its third step (in the first epoch) and resumed."""
    assert entry_point.main([*args, "run_name=straight"]) == 0
    stop_once_after_step(monkeypatch, 3)
    assert entry_point.main([*args, "run_name=stopped"]) == 143
    assert entry_point.main(["--resume", str(CHECKPOINTS / "stopped" / "last.pt")]) == 0
    runs = [CHECKPOINTS / run / "last.pt" for run in ("straight", "stopped")]
    return tuple(load_checkpoint(path, torch.device("cpu")) for path in runs)


def assert_same_run(straight: dict, resumed: dict) -> None:
    assert_same(straight["model"], resumed["model"])
    assert_same(straight["task"], resumed["task"])
    without_times = [
        [{k: v for k, v in row.items() if k != "seconds"} for row in run["history"]]
        for run in (straight, resumed)
    ]
    assert without_times[0] == without_times[1]


def assert_same(straight: object, resumed: object, name: str = "") -> None:
    """Bitwise the same tensors, in the same structure of dicts and lists."""
    if isinstance(straight, dict):
        assert straight.keys() == resumed.keys(), name
        for key, value in straight.items():
            assert_same(value, resumed[key], f"{name}.{key}")
    elif isinstance(straight, list | tuple):
        for i, (a, b) in enumerate(zip(straight, resumed, strict=True)):
            assert_same(a, b, f"{name}[{i}]")
    elif isinstance(straight, torch.Tensor):
        assert torch.equal(straight, resumed), name
    else:
        assert straight == resumed, name
