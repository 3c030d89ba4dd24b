{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task with context %}
"""The speed settings do what they say and change nothing else: mixed precision,{{ " channels_last," if task.convolutional }}
whole batches from memory, and the report of time spent waiting for data."""

from __future__ import annotations

import math
import os
import re
import sys
import time
from pathlib import Path
from types import FrameType

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader, TensorDataset, default_collate

from config import Config, apply_overrides
from dataset import make_dataloaders
{% if task.convolutional %}
from helpers import CHECKPOINTS, linear_trainer, task_for
{% else %}
from helpers import CHECKPOINTS, linear_trainer
{% endif %}
from main import main
from tracking import RunLog
{% if task.convolutional %}
from train import Trainer
{% endif %}
from utils import RunPaths, load_checkpoint


def test_bf16_autocast_trains_on_the_cpu_and_fp16_is_refused(workdir, tiny, capsys) -> None:
    trainer = linear_trainer(["amp=bf16"])
    with trainer.autocast():
        assert trainer.model(torch.randn(2, 4)).dtype == torch.bfloat16

    assert main([*tiny, "epochs=1", "amp=bf16", "run_name=bf16"]) == 0
    history = load_checkpoint(CHECKPOINTS / "bf16" / "last.pt", torch.device("cpu"))["history"]
    assert math.isfinite(history[0]["train_loss"]) and math.isfinite(history[0]["val_loss"])

    assert main([*tiny, "epochs=1", "amp=fp16", "run_name=fp16"]) == 2
    assert "amp=fp16 needs a GPU" in capsys.readouterr().err
    assert not (CHECKPOINTS / "fp16").exists()  # refused before anything was written
{% if task.convolutional %}


def test_channels_last_changes_the_memory_layout_not_the_numbers(workdir, tiny) -> None:
    results = []
    for layout in ("false", "true"):
        cfg = apply_overrides(Config(), [*tiny, f"channels_last={layout}"])
        loader, _, _ = make_dataloaders(cfg)
        torch.manual_seed(0)
        trainer = Trainer(task_for([*tiny, f"channels_last={layout}"]), cfg, torch.device("cpu"))
        trainer.prepare()
        trainer.task.eval()  # batch-norm statistics stay as they are
        batch = trainer.to_device(next(iter(loader)))
        if layout == "true":
            assert batch[0].is_contiguous(memory_format=torch.channels_last)
        torch.manual_seed(1)
        step = trainer.task.training_step(batch)
        step.loss.backward()
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        results.append([step.outputs, step.loss, *grads])
    for plain, nhwc in zip(*results, strict=True):  # equal up to the order of float sums
        torch.testing.assert_close(nhwc, plain, rtol=1e-4, atol=1e-5)

    assert main([*tiny, "epochs=1", "channels_last=true", "run_name=nhwc"]) == 0
    assert main(["--test", str(CHECKPOINTS / "nhwc" / "last.pt")]) == 0
{% endif %}


def test_each_batch_holds_its_samples_as_fetched_one_by_one(workdir, tiny) -> None:
    """In-memory datasets hand the DataLoader whole batches (`TensorBatches`): those must be
    exactly the samples, fetched one by one and stacked."""
    loader, _, _ = make_dataloaders(apply_overrides(Config(), tiny))
    loader.sampler.set_epoch(1)
    indices = list(loader.sampler)[: loader.batch_size]
    expected = default_collate([loader.dataset[index] for index in indices])
    batch = next(iter(loader))
    for got, want in zip(batch, expected, strict=True):
        assert torch.equal(got, want)


class HostCopies(TorchFunctionMode):
    """Counts the calls of the Trainer that bring a tensor's value to the host: on a GPU each
    one waits until the device has finished all the work queued before it. Not those of the
    task (model.py, the user's to write: a MixUp share drawn on the CPU, say)."""

    NAMES = frozenset(
        ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
    )

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = getattr(func, "__name__", "")
        if name in self.NAMES and self.trainer_asks(sys._getframe(1)):
            self.seen.append(name)
        return func(*args, **(kwargs or {}))

    @staticmethod
    def trainer_asks(frame: FrameType | None) -> bool:
        """Whether the code that asked, the first caller outside torch, is not the task's.
        torch's unfused optimizers read their step counters with .item(); those counters live
        on the host, whatever the device, so that read waits for nothing."""
        while frame and f"{os.sep}torch{os.sep}" in frame.f_code.co_filename:
            if f"torch{os.sep}optim{os.sep}" in frame.f_code.co_filename:
                return False
            frame = frame.f_back
        return frame is not None and os.path.basename(frame.f_code.co_filename) != "model.py"


def test_steps_that_do_not_log_never_wait_for_the_device(workdir, tiny, monkeypatch) -> None:
    """Between logging steps a step queues its work and goes on: the non-finite check, the
    running loss and the metrics stay on the device (counted here on the CPU)."""
    progress = RunLog.progress
    copies: list[list[str]] = []  # per batch: from its arrival to the request for the next

    def counted(self: RunLog, *args: object):  # noqa: ANN202
        for batch in progress(self, *args):
            with HostCopies() as counter:
                yield batch
            copies.append(counter.seen)

    monkeypatch.setattr(RunLog, "progress", counted)
    assert main([*tiny, "epochs=1", "batch_size=16", "log_every=5", "run_name=r"]) == 0
    logging = [index for index in range(len(copies)) if (index + 1) % 5 == 0]
    assert len(copies) > 10 and all(copies[index] for index in logging)
    # The first step is examined by the first-step checks; every other step is quiet.
    quiet = {index: copies[index] for index in range(1, len(copies)) if index not in logging}
    assert quiet == {index: [] for index in quiet}


class SlowSamples(TensorDataset):
    """Samples that take 0.1 s each to load, as from a slow disk."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        time.sleep(0.1)
        return super().__getitem__(index)


def test_an_epoch_spent_waiting_for_data_says_so_with_a_hint(workdir, capsys) -> None:
    inputs, labels = torch.randn(12, 4), torch.randint(3, (12,))
    slow = DataLoader(SlowSamples(inputs, labels), batch_size=4)  # 1.2 s of waiting
    fast = DataLoader(TensorDataset(inputs, labels), batch_size=4)
    trainer = linear_trainer(["epochs=1", "sanity_checks=false", "run_name=slow"])
    run = RunPaths.for_run(trainer.cfg)
    with pytest.warns(UserWarning, match=r"waited for data 1\.\d s of .* Try load batches"):
        trainer.fit(slow, fast, run, RunLog(trainer.cfg, run))

    share = int(re.search(r"\(data (\d+)%\)", capsys.readouterr().out).group(1))
    assert share >= 80
    events = EventAccumulator(str(Path("results/logs/default/slow")))
    events.Reload()
    assert events.Scalars("time/data_share")[0].value >= 0.8
    assert events.Scalars("time/data_wait_s")[0].value >= 1.2
