"""Changing what a training step does, the way a user would: in the task's `training_step`
alone (model.py), with no edit to train.py. An extra loss term whose value is logged, and a
second network the step keeps up to date; each trains, passes the first-step checks and resumes
exactly."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from helpers import CHECKPOINTS, stop_once_after_step, task_for
from main import main
from model import Batch, Step
from utils import load_checkpoint

LOGS = Path("results/logs/default")
CPU = torch.device("cpu")


def train_stop_and_resume(args: list[str], monkeypatch) -> tuple[dict, dict]:
    """The last checkpoints of a run trained straight through, and of the same run stopped
    after its third step (in the first epoch) and resumed."""
    assert main([*args, "run_name=straight"]) == 0
    stop_once_after_step(monkeypatch, 3)
    assert main([*args, "run_name=stopped"]) == 143
    assert main(["--resume", str(CHECKPOINTS / "stopped" / "last.pt")]) == 0
    return tuple(load_checkpoint(CHECKPOINTS / r / "last.pt", CPU) for r in ("straight", "stopped"))


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


def test_an_extra_loss_term_is_logged_and_resumes_exactly(workdir, tiny, monkeypatch, capsys):
    task_class = type(task_for(tiny))
    training_step = task_class.training_step

    def with_output_penalty(self, batch: Batch) -> Step:
        step = training_step(self, batch)
        penalty = step.outputs.float().square().mean()  # keeps the outputs small
        step.loss = step.loss + 1e-4 * penalty
        step.logs["output_penalty"] = penalty.detach()  # logged with no other edit
        return step

    monkeypatch.setattr(task_class, "training_step", with_output_penalty)
    args = [*tiny, "epochs=1", "deterministic=true", "sanity_checks=true"]
    straight, resumed = train_stop_and_resume(args, monkeypatch)
    assert_same_run(straight, resumed)

    assert "| train_output_penalty " in capsys.readouterr().out  # the summary line
    with (LOGS / "straight" / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [float(row["train_output_penalty"]) > 0 for row in rows] == [True]  # one epoch
    events = EventAccumulator(str(LOGS / "straight"))
    events.Reload()
    assert len(events.Scalars("output_penalty/train")) == 1


def test_a_second_network_is_kept_with_the_run_and_resumes_exactly(workdir, tiny, monkeypatch):
    task_class = type(task_for(tiny))
    init, training_step = task_class.__init__, task_class.training_step

    def with_average(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        # A running average of the model's weights: frozen, it follows the model, not the loss.
        average = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
        self.average = average.requires_grad_(False)

    def averaging_step(self, batch: Batch) -> Step:
        self.average.update_parameters(self.model)
        return training_step(self, batch)

    monkeypatch.setattr(task_class, "__init__", with_average)
    monkeypatch.setattr(task_class, "training_step", averaging_step)
    args = [*tiny, "epochs=1", "deterministic=true", "sanity_checks=true"]
    straight, resumed = train_stop_and_resume(args, monkeypatch)
    assert_same_run(straight, resumed)
    # The average is in every checkpoint, with one update per training batch.
    assert straight["task"]["average.n_averaged"] == straight["global_step"]
