"""Changing what a training step does, the way a user would: in the task (model.py) and
config.py alone, with no edit to train.py. An extra loss term whose value is logged, a second
network the step keeps up to date, an average of the weights (EMA) that is what gets evaluated,
a score where higher wins picking best.pt, and a parameter group with options of its own; each
trains, passes the first-step checks and resumes exactly."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from checks import overfit_batch
from config import Config, apply_overrides
from dataset import make_dataloaders
from helpers import CHECKPOINTS, assert_same_run, task_for, train_stop_and_resume
from main import main
from model import Batch, Step
from train import Trainer, build_optimizer
from utils import load_checkpoint, load_weights

LOGS = Path("results/logs/default")
CPU = torch.device("cpu")


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


def test_an_average_of_the_weights_is_what_is_evaluated_and_resumes_exactly(
    workdir, tiny, monkeypatch, capsys
):
    """An EMA as the contract has it: updated after every optimizer step, evaluated (so it
    picks best.pt and is what --test scores), saved with the run, and no false alarm from
    --overfit-batch, which measures the trained weights."""
    task_class = type(task_for(tiny))
    init = task_class.__init__
    cfg = apply_overrides(Config(), tiny)
    batch = next(iter(make_dataloaders(cfg)[0]))

    def overfit_measures() -> dict[str, float]:  # what 20 steps of --overfit-batch see
        torch.manual_seed(0)
        task = task_for(tiny)
        return overfit_batch(Trainer(task, cfg, CPU, build_optimizer(cfg, task)), batch, 20).end

    plain = overfit_measures()

    def with_ema(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(0.99), use_buffers=True)
        self.ema = ema.requires_grad_(False)

    def update(self) -> None:
        self.ema.update_parameters(self.model)

    monkeypatch.setattr(task_class, "__init__", with_ema)
    monkeypatch.setattr(task_class, "after_optimizer_step", update)
    monkeypatch.setattr(task_class, "evaluated", lambda self: self.ema.module)
    assert overfit_measures() == plain  # the weights it trains, not their lagging average
    args = [*tiny, "epochs=2", "accumulate_steps=2", "deterministic=true", "sanity_checks=true"]
    straight, resumed = train_stop_and_resume(args, monkeypatch)
    assert_same_run(straight, resumed)
    # One update per optimizer step (two batches each), and validation scored the average.
    assert straight["task"]["ema.n_averaged"] == straight["global_step"]
    cfg = apply_overrides(Config(), args)
    trainer = Trainer(task_for(args), cfg, CPU)  # a task with the EMA, as evaluated
    load_weights(trainer.task, straight, CHECKPOINTS / "straight" / "last.pt")
    val = trainer.evaluate(make_dataloaders(cfg)[1])
    assert val["loss"] == pytest.approx(straight["history"][-1]["val_loss"], rel=1e-5)
    capsys.readouterr()
    assert main(["--test", str(CHECKPOINTS / "straight" / "last.pt")]) == 0
    assert f"test_loss {trainer.evaluate(make_dataloaders(cfg)[2])['loss']:.4f}" in (
        capsys.readouterr().out
    )


def test_a_score_where_higher_wins_picks_best_pt(workdir, tiny, monkeypatch) -> None:
    """A score of the validation step's own, monitored with its direction stated in config.py
    (monitor=closeness:max): best.pt holds its highest epoch."""
    task_class = type(task_for(tiny))
    validation_step = task_class.validation_step

    def with_closeness(self, batch: Batch) -> Step:
        step = validation_step(self, batch)
        step.logs["closeness"] = 1 / (1 + step.loss.detach().float())
        return step

    monkeypatch.setattr(task_class, "validation_step", with_closeness)
    assert main([*tiny, "epochs=3", "monitor=closeness:max", "run_name=r"]) == 0
    best, last = (load_checkpoint(CHECKPOINTS / "r" / name, CPU) for name in ("best.pt", "last.pt"))
    scores = [row["val_closeness"] for row in last["history"]]
    assert best["best_score"] == max(scores)
    assert best["epoch"] == 1 + scores.index(max(scores))
    assert main([*tiny, "epochs=1", "monitor=nothing", "run_name=n"]) == 2  # named, not a KeyError


def test_a_parameter_group_keeps_the_options_it_sets(tiny, monkeypatch) -> None:
    """weight_decay applies to the weights of groups that do not set their own; a group that
    sets it (learnable class centres, a [CLS] vector: 0.0) keeps it for all its parameters."""
    task_class = type(task_for(tiny))
    parameter_groups = task_class.parameter_groups
    cfg = apply_overrides(Config(), [*tiny, "weight_decay=0.1"])
    decays = {group["weight_decay"] for group in build_optimizer(cfg, task_for(tiny)).param_groups}
    assert decays == {0.1, 0.0}  # weights decay, biases and norms not

    def undecayed(self, cfg: Config) -> list[dict]:
        return [{**group, "weight_decay": 0.0} for group in parameter_groups(self, cfg)]

    monkeypatch.setattr(task_class, "parameter_groups", undecayed)
    task = task_for(tiny)
    groups = build_optimizer(cfg, task).param_groups
    assert {group["weight_decay"] for group in groups} == {0.0}
    given = [p for group in task.parameter_groups(cfg) for p in group["params"]]
    assert sum(len(group["params"]) for group in groups) == sum(p.requires_grad for p in given)
