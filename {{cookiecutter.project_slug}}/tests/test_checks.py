"""Self-checks: the classic training bugs, put into a model or a training step the test defines,
are each caught and named; the unmodified project passes every check."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.nn import functional as F

import modes
from checks import (
    FirstStepChecks,
    LossCheck,
    LossWatch,
    SanityError,
    add_hint,
    model_summary,
    overfit_batch,
    suggest_lr,
    train_on,
)
from config import Config, apply_overrides
from helpers import CHECKPOINTS, LAYERED, LinearTask, linear_trainer, task_for
from main import main
from model import Batch, Step
from train import Trainer
from utils import load_checkpoint

build_task = modes.build_task


class IgnoresMostLayers(LinearTask):
    """A task of the test's own with seed 001's production bug: its last layer sees a detached
    input, so that every layer before it is computed but never trained. (Defined here, not put
    into the project's model: a model you change cannot move or hide the bug.)"""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def training_step(self, batch: Batch) -> Step:
        inputs, labels = batch
        features = self.model[:-1](inputs).detach()  # the bug
        outputs = self.model[-1](features)
        return Step(self.loss_fn(outputs, labels), outputs, labels)


def leave_out_a_parameter(cfg, **inputs):
    """The task, with its first parameter missing from the optimizer's groups."""
    task = build_task(cfg, **inputs)
    first = next(task.model.parameters())
    groups = task.parameter_groups(cfg)
    task.parameter_groups = lambda cfg: [
        {**group, "params": [p for p in group["params"] if p is not first]} for group in groups
    ]
    return task


def learning_rate_0(cfg, **inputs):
    """The task, with an lr of 0 in every parameter group."""
    task = build_task(cfg, **inputs)
    groups = task.parameter_groups(cfg)
    task.parameter_groups = lambda cfg: [{**group, "lr": 0.0} for group in groups]
    return task


def detach_the_loss(cfg, **inputs):
    """The task, with a training step that detaches its loss from the graph."""
    task = build_task(cfg, **inputs)
    training_step = task.training_step

    def detached(batch: Batch) -> Step:
        step = training_step(batch)
        step.loss = step.loss.detach()
        return step

    task.training_step = detached
    return task


BUGS = {
    "a parameter missing from the optimizer": (
        leave_out_a_parameter,
        ("had gradients but did not change in the first optimizer step",),
    ),
    "learning rate 0": (learning_rate_0, ("the learning rate is 0",)),
    "detached loss": (detach_the_loss, ("the loss has no grad_fn",)),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_each_classic_bug_is_caught_and_named(workdir, tiny, monkeypatch, capsys, bug) -> None:
    broken, causes = BUGS[bug]
    monkeypatch.setattr(modes, "build_task", broken)
    assert main([*tiny, *LAYERED, "epochs=1", "run_name=r"]) == 1
    err = capsys.readouterr().err
    assert any(cause in err for cause in causes), err
    assert "Traceback" not in err
    assert not (CHECKPOINTS / "r" / "last.pt").exists()  # nothing was saved


def test_the_checks_and_the_overfit_ladder_catch_a_forward_that_ignores_most_layers() -> None:
    batch = (torch.randn(8, 4), torch.randint(3, (8,)))
    cause = r"2 of 4 trainable parameters received no gradient: 0 \(weight, bias\)\. The"
    trainer = linear_trainer([], IgnoresMostLayers())
    trainer.check_first_step()
    with pytest.raises(SanityError, match=cause):
        train_on(trainer, batch)
    with pytest.raises(SanityError, match=cause):  # --overfit-batch checks its first step too
        overfit_batch(linear_trainer([], IgnoresMostLayers()), batch, max_steps=50)


def test_the_unmodified_project_passes_every_check(workdir, tiny) -> None:
    """... and climbs the overfit ladder: test_training.py's first test, which runs it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # not even a warning
        # (but for the hint to load data faster, which depends on this machine's load)
        warnings.filterwarnings("ignore", "the last training epoch waited for data")
        # (and for a default warmup longer than the tiny run, which shortens only the run)
        warnings.filterwarnings("ignore", "warmup_steps=.* is more than half of the run")
        assert main([*tiny, "run_name=r", "sanity_checks=true"]) == 0


def test_shapes_that_cannot_match_the_loss_are_named() -> None:
    shapes = r"outputs of shape \(4, 5\) with targets of shape \(3,\)"
    with pytest.raises(SanityError, match=shapes), LossWatch():
        nn.CrossEntropyLoss()(torch.randn(4, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(SanityError, match="broadcast into a wrong loss"), LossWatch():
        nn.MSELoss()(torch.randn(4, 1), torch.randn(4))


class SmoothedLoss(nn.CrossEntropyLoss):
    """A loss of the user's own: label smoothing, in a subclass."""

    def __init__(self) -> None:
        super().__init__(label_smoothing=0.1)


@pytest.mark.parametrize(
    "loss",
    [nn.CrossEntropyLoss(), SmoothedLoss(), lambda x, y: F.cross_entropy(x, y) + x.abs().mean()],
    ids=["cross-entropy", "a subclass", "a loss function of one's own"],
)
def test_a_softmax_before_any_cross_entropy_stops_with_its_cause(loss) -> None:
    probabilities = torch.randn(8, 5).softmax(dim=1)
    cause = r"look like probabilities \(all in \[0, 1\], summing to 1\)"
    with pytest.raises(SanityError, match=cause), LossWatch():
        loss(probabilities, torch.randint(5, (8,)))
    with warnings.catch_warnings(), LossWatch():
        warnings.simplefilter("error")
        loss(torch.randn(8, 5), torch.randint(5, (8,)))  # logits: no warning


def test_a_loss_that_is_not_a_scalar_tensor_is_named() -> None:
    model = nn.Linear(2, 1)
    outputs = torch.zeros(2)
    with pytest.raises(SanityError, match="'float' object has no attribute 'backward'"):
        FirstStepChecks(model).run(lambda batch: Step(0.5, outputs, outputs), ())
    not_reduced = torch.zeros(2, requires_grad=True) * 2
    with pytest.raises(SanityError, match=r"shape \(2,\), not a single number"):
        FirstStepChecks(model).run(lambda batch: Step(not_reduced, outputs, outputs), ())
    with pytest.raises(SanityError, match="returned a float, not a Step"):
        FirstStepChecks(model).run(lambda batch: 0.5, ())


def test_frozen_parameters_are_not_reported_and_unused_ones_are() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)  # a frozen encoder
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    checks = FirstStepChecks(model)
    nn.CrossEntropyLoss()(model(torch.randn(4, 3)), torch.tensor([0, 1, 0, 1])).backward()
    checks.before_optimizer_step()
    optimizer.step()
    checks.after_optimizer_step(step_skipped=False)

    model[0].requires_grad_(True)  # trainable, but the loss only sees the last layer
    checks = FirstStepChecks(model)
    nn.CrossEntropyLoss()(model[1](torch.randn(4, 3)), torch.tensor([0, 1, 0, 1])).backward()
    with pytest.raises(SanityError, match=r"2 of 4 trainable parameters .*: 0 \(weight, bias\)"):
        checks.before_optimizer_step()
    with pytest.raises(SanityError, match="no parameter received a gradient"):
        FirstStepChecks(model).before_optimizer_step()  # backward() never ran


def test_a_loss_that_does_not_move_is_warned_about() -> None:
    check = LossCheck(at=6)
    for done, value in enumerate((1.6, 1.7, 1.5, 1.6, 1.65, 1.7, 9.0)):  # the 7th comes too late
        check.add(torch.tensor(value), done)
    with pytest.warns(UserWarning, match="has not decreased in the first 6 steps"):
        check.verdict(6, lr=1e-3)
    check = LossCheck(at=6)
    for done, value in enumerate((1.6, 1.7, 1.5, 1.2, 1.1, 1.0)):
        check.add(torch.tensor(value), done)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check.verdict(5, lr=1e-3)  # not yet due
        check.verdict(6, lr=1e-3)


def test_known_errors_get_a_hint_after_their_message() -> None:
    error = RuntimeError("Trying to backward through the graph a second time (or directly ...)")
    add_hint(error)
    assert error.__notes__[0].startswith("hint: a tensor from an earlier step is reused")
    error = IndexError("Dimension out of range (expected to be in range of [-2, 1], but got 2)")
    add_hint(error)
    assert "batch dimension" in error.__notes__[0]


def test_main_adds_the_hint_and_keeps_the_traceback(monkeypatch) -> None:
    def buggy(*args: object) -> int:
        raise RuntimeError(
            "one of the variables needed for gradient computation has been "
            "modified by an inplace operation"
        )

    monkeypatch.setattr(modes, "fit", buggy)
    with pytest.raises(RuntimeError) as error:
        main([])
    assert "in-place operation" in error.value.__notes__[0]


def test_model_summary_is_printed_and_saved(finished, tiny) -> None:
    saved = Path("results/logs/default/r/model_summary.txt").read_text()
    assert saved.strip() in finished
    model = task_for(tiny).model
    total = sum(p.numel() for p in model.parameters())
    assert "total  " in saved and f"{total:,}" in saved and "MB" in saved
    assert model_summary(model).splitlines()[0].split() == ["module", "type", "trainable", "frozen"]


def test_model_summary_rows_add_up_with_parameters_held_by_the_model_itself() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))
    model.cls = nn.Parameter(torch.zeros(8))  # a [CLS] vector, say
    rows = [line.split() for line in model_summary(model).splitlines()]
    counts = {row[0]: int(row[-2].replace(",", "")) for row in rows if row[0] in ("0", "1", "(its")}
    assert counts == {"0": 40, "1": 27, "(its": 8}
    assert f"{sum(counts.values()):,}" in model_summary(model).splitlines()[-2]  # the total


def test_weights_and_gradients_are_logged_per_layer(finished, tiny) -> None:
    events = EventAccumulator("results/logs/default/r", size_guidance={"histograms": 0})
    events.Reload()
    tags = events.Tags()
    first, weights = next(iter(task_for(tiny).model.named_parameters()))
    assert f"grad_to_weight/{first}" in tags["scalars"]
    for kind in ("weights", "gradients"):
        assert f"{kind}/{first}" in tags["histograms"]
    steps = load_checkpoint(CHECKPOINTS / "r" / "last.pt", torch.device("cpu"))["global_step"]
    assert steps >= 3
    logged = events.Histograms(f"gradients/{first}")
    assert [e.step for e in logged] == list(range(3, steps + 1, 3))  # log_hist_every=3
    assert logged[0].histogram_value.num == weights.numel()  # every gradient value counted


def test_debug_turns_on_anomaly_detection(workdir, tiny, monkeypatch, capsys) -> None:
    seen = []
    original = Trainer.train_epoch

    def spy(self, loader):
        seen.append(torch.is_anomaly_enabled())
        return original(self, loader)

    monkeypatch.setattr(Trainer, "train_epoch", spy)
    with pytest.warns(UserWarning, match="Anomaly Detection has been enabled"):
        assert main([*tiny, "run_name=r", "epochs=1", "debug=true"]) == 0
    assert seen == [True]
    assert "runs several times slower" in capsys.readouterr().out


def test_doctor_reports_each_capability(capsys) -> None:
    code = main(["--doctor"])
    out = capsys.readouterr().out
    for subject in ("torch ", "CUDA", "torch.compile", "tensorboard", "matplotlib", "free disk"):
        assert subject in out
    assert code == (1 if "FIX" in out else 0)


def test_doctor_names_the_fix_for_a_missing_package(monkeypatch, capsys) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "tensorboard" else find_spec(name)
    )
    assert main(["--doctor"]) == 1
    assert "FIX  tensorboard: missing; pip install tensorboard" in capsys.readouterr().out


def test_find_lr_plots_the_sweep_and_suggests_an_lr(workdir, tiny, capsys) -> None:
    assert main(["--find-lr", *tiny, "lr_finder_steps=80"]) == 0
    out = capsys.readouterr().out
    suggested = float(out.split("train with: python src/main.py lr=")[1].split()[0])
    assert 1e-7 <= suggested <= 10
    plot = Path("results/visualizations/default/lr_finder.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_suggest_lr_is_a_tenth_of_the_lr_of_the_lowest_loss() -> None:
    lrs = [10.0**e for e in range(-6, 2)]
    losses = [2.0, 1.99, 1.9, 1.2, 0.9, 0.85, 3.0, 9.0]
    assert suggest_lr(lrs, losses) == pytest.approx(1e-2)  # lowest at 1e-1
    rising = [1.0, 1.1, 1.5, 3.0, 9.0, 20.0, 40.0, 90.0]
    assert suggest_lr(lrs, rising) == 1e-6  # never below the lowest lr swept
    assert suggest_lr(lrs, losses, ceiling=3e-3) == 3e-3  # nor above the optimizer's ceiling


def test_lr_auto_trains_exactly_as_the_lr_it_chose_and_records_it(workdir, tiny, capsys) -> None:
    """lr=auto runs the range test on a throw-away model and puts the random numbers back: the
    run is the run of the lr it chose, which config.json and the checkpoints record and a
    resume keeps."""
    assert main([*tiny, "lr=auto", "run_name=chosen"]) == 0
    out = capsys.readouterr().out
    chosen = float(out.split("lr=auto: ")[1].split(",")[0])
    plot = Path("results/visualizations/default/chosen/lr_finder.png")
    assert f"plot: {plot}" in out and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(Path("results/logs/default/chosen/config.json").read_text())["lr"] == chosen
    assert main([*tiny, f"lr={chosen}", "run_name=given"]) == 0
    auto, given = (
        load_checkpoint(CHECKPOINTS / run / "last.pt", torch.device("cpu"))
        for run in ("chosen", "given")
    )
    assert auto["config"]["lr"] == chosen
    for name, weights in auto["model"].items():
        assert torch.equal(weights, given["model"][name]), name
    capsys.readouterr()
    # On --resume, auto stands for the value the run settled on when it began.
    assert main(["--resume", str(CHECKPOINTS / "chosen" / "last.pt"), "lr=auto"]) == 0
    assert "has already finished" in capsys.readouterr().out


def test_lr_auto_and_find_lr_refuse_a_sweep_where_the_loss_fell_nowhere(
    workdir, tiny, capsys, monkeypatch
):
    """Not a crawl at the lowest rate swept: a message, before anything trains, and the same
    from --find-lr (which suggested the sweep's first rate)."""
    if not task_for(tiny).loss_falls:
        pytest.skip("this task's training loss need not fall (a GAN's): no rate is refused")
    rising = ([10 ** (step / 4 - 7) for step in range(20)], [1.0 + step / 10 for step in range(20)])
    monkeypatch.setattr(modes, "find_lr", lambda trainer, loader, steps: rising)
    for command in ([*tiny, "lr=auto", "run_name=r"], [*tiny, "--find-lr"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "range test saw the training loss fall at no rate from 1e-07" in err, err
    assert not (CHECKPOINTS / "r" / "last.pt").exists()


def test_epochs_auto_trains_at_least_min_steps(workdir, tiny, capsys) -> None:
    cfg = apply_overrides(Config(), tiny)
    steps = len(modes.make_dataloaders(cfg)[0])  # optimizer steps an epoch
    budget = ["epochs=auto", "min_epochs=1", f"min_steps={2 * steps + 1}", "run_name=r"]
    assert main([*tiny, *budget]) == 0
    out = capsys.readouterr().out
    assert f"budget: 3 epochs of {steps} steps, {3 * steps} in all (epochs=auto, min_steps=" in out
    assert json.loads(Path("results/logs/default/r/config.json").read_text())["epochs"] == 3
    assert main([*tiny, "epochs=auto", "min_epochs=2", "min_steps=1", "run_name=few"]) == 0
    assert f"budget: 2 epochs of {steps} steps, {2 * steps} in all (epochs=auto, min_epochs)" in (
        capsys.readouterr().out
    )
