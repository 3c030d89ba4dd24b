"""Self-checks: the classic training bugs, injected into a copy of this project, are each caught
and named; the unmodified project passes every check."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

import main as entry_point
from checks import FirstStepChecks, SanityError, add_hint, model_summary
from config import Config, apply_overrides
from helpers import CHECKPOINTS, LAYERED, CountingMetrics, make_data_folder
from main import main
from model import build_loss, build_model
from train import Trainer, build_optimizer, suggest_lr
from utils import load_checkpoint

PROJECT = Path(entry_point.__file__).resolve().parents[1]

# Appended to model.py: the last top-level layer sees a detached input, so every layer before it
# is computed but never trained (seed 001's production bug, in its most general form).
IGNORE_MOST_LAYERS = """

_build_model = build_model


def build_model(cfg):
    model = _build_model(cfg)
    last = list(model.children())[-1]
    last.register_forward_pre_hook(lambda module, args: tuple(a.detach() for a in args))
    return model
"""
BUGS = {
    "forward ignores most layers": (
        "src/model.py",
        None,
        IGNORE_MOST_LAYERS,
        # No gradient reaches the layers before; where every path to the loss runs through the
        # detached input (a GAN's generator), the loss itself has none.
        ("trainable parameters received no gradient", "the loss has no grad_fn"),
    ),
    "optimizer.step() removed": (
        "src/train.py",
        "self.scaler.step(self.optimizer)",
        "pass",
        "had gradients but did not change in the first optimizer step",
    ),
    "loss.backward() removed": (
        "src/train.py",
        "self.scaler.scale(loss / window if window > 1 else loss).backward()",
        "pass",
        "no parameter received a gradient in the first step",
    ),
    "detached loss": (
        "src/train.py",
        "        return outputs, loss\n",
        "        return outputs, loss.detach()\n",
        "the loss has no grad_fn",
    ),
    "learning rate 0": (
        "src/train.py",
        '{**group, "params": params,',
        '{**group, "lr": 0.0, "params": params,',
        "optimizer.step() is not called, the learning rate is 0",
    ),
}


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A fresh copy of this project's code and tests, to break on purpose."""
    copy = tmp_path / "project"
    shutil.copytree(PROJECT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    make_data_folder(copy / "data")
    return copy


def run(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "src/main.py", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def inject(project: Path, file: str, old: str | None, new: str) -> None:
    path = project / file
    source = path.read_text()
    if old is None:
        path.write_text(source + new)
        return
    assert source.count(old) == 1, f"{old!r} is not exactly once in {file}"
    path.write_text(source.replace(old, new))


@pytest.mark.slow
@pytest.mark.parametrize("bug", list(BUGS))
def test_each_classic_bug_is_caught_and_named(project_copy: Path, tiny, bug: str) -> None:
    file, old, new, cause = BUGS[bug]
    inject(project_copy, file, old, new)
    result = run(project_copy, *tiny, *LAYERED, "epochs=1")
    assert result.returncode == 1, result.stdout + result.stderr
    causes = cause if isinstance(cause, tuple) else (cause,)
    assert any(c in result.stderr for c in causes), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_overfit_ladder_catches_the_discarded_layers(project_copy: Path) -> None:
    inject(project_copy, "src/model.py", None, IGNORE_MOST_LAYERS)
    result = run(project_copy, "--overfit-batch", *LAYERED)
    assert result.returncode == 1
    assert any(c in result.stderr for c in BUGS["forward ignores most layers"][3])


@pytest.mark.slow
def test_a_huge_learning_rate_is_caught_as_a_non_finite_loss(project_copy: Path, tiny) -> None:
    result = run(project_copy, *tiny, "lr=1e30", "grad_clip=0", "optimizer=sgd", "scheduler=none")
    assert result.returncode == 1
    assert "the loss became" in result.stderr and "a learning rate too high" in result.stderr


def test_the_unmodified_project_passes_every_check(workdir, tiny, capsys) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # not even a warning
        assert main([*tiny, "run_name=r", "sanity_checks=true"]) == 0
    assert main(["--overfit-batch"]) == 0
    out = capsys.readouterr().out
    assert "overfit check passed: one sample" in out
    assert f"overfit check passed: one batch of {Config().batch_size} samples" in out


def test_shapes_that_cannot_match_the_loss_are_named() -> None:
    checks = FirstStepChecks(nn.Linear(2, 1), nn.CrossEntropyLoss())
    with pytest.raises(
        SanityError, match=r"outputs of shape \(4, 5\) with targets of shape \(3,\)"
    ):
        checks.loss(torch.randn(4, 5), torch.zeros(3, dtype=torch.long))
    broadcasting = FirstStepChecks(nn.Linear(2, 1), nn.MSELoss())
    with pytest.raises(SanityError, match="broadcast into a wrong loss"):
        broadcasting.loss(torch.randn(4, 1), torch.randn(4))


def test_a_loss_that_is_not_a_scalar_tensor_is_named() -> None:
    checks = FirstStepChecks(nn.Linear(2, 1), nn.MSELoss())
    with pytest.raises(SanityError, match="'float' object has no attribute 'backward'"):
        checks.after_forward(torch.zeros(2), 0.5)
    with pytest.raises(SanityError, match=r"shape \(2,\), not a single number"):
        checks.after_forward(torch.zeros(2), torch.zeros(2, requires_grad=True) * 2)


def test_frozen_parameters_are_not_reported() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)  # a frozen encoder
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    checks = FirstStepChecks(model, nn.CrossEntropyLoss())
    nn.CrossEntropyLoss()(model(torch.randn(4, 3)), torch.tensor([0, 1, 0, 1])).backward()
    checks.before_optimizer_step()
    optimizer.step()
    checks.after_optimizer_step(step_skipped=False)


def test_a_loss_that_does_not_move_is_warned_about(workdir) -> None:
    cfg = Config()
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    trainer = Trainer(model, build_loss(cfg), CountingMetrics, cfg, torch.device("cpu"), optimizer)
    trainer.global_step = 66
    trainer.early_losses = [torch.tensor(value) for value in (1.6, 1.7, 1.5, 1.6, 1.65, 1.7)]
    with pytest.warns(UserWarning, match="has not decreased in the first 66 steps"):
        trainer.warn_if_loss_did_not_move()
    trainer.early_losses = [torch.tensor(value) for value in (1.6, 1.7, 1.5, 1.2, 1.1, 1.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.warn_if_loss_did_not_move()


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

    monkeypatch.setattr(entry_point, "train", buggy)
    with pytest.raises(RuntimeError) as error:
        main([])
    assert "in-place operation" in error.value.__notes__[0]


def test_model_summary_is_printed_and_saved(workdir, tiny, capsys) -> None:
    assert main([*tiny, "run_name=r", "epochs=1"]) == 0
    saved = Path("results/logs/default/r/model_summary.txt").read_text()
    assert saved.strip() in capsys.readouterr().out
    model = build_model(apply_overrides(Config(), tiny))
    total = sum(p.numel() for p in model.parameters())
    assert "total  " in saved and f"{total:,}" in saved and "MB" in saved
    assert model_summary(model).splitlines()[0].split() == ["module", "type", "trainable", "frozen"]


def test_weights_and_gradients_are_logged_per_layer(workdir, tiny) -> None:
    assert main([*tiny, "run_name=r", "epochs=1", "log_hist_every=3"]) == 0
    events = EventAccumulator("results/logs/default/r", size_guidance={"histograms": 0})
    events.Reload()
    tags = events.Tags()
    model = build_model(apply_overrides(Config(), tiny))
    first, weights = next(iter(model.named_parameters()))
    assert f"grad_to_weight/{first}" in tags["scalars"]
    for kind in ("weights", "gradients"):
        assert f"{kind}/{first}" in tags["histograms"]
    steps = load_checkpoint(CHECKPOINTS / "r" / "last.pt", torch.device("cpu"))["global_step"]
    assert steps >= 3
    logged = events.Histograms(f"gradients/{first}")
    assert [e.step for e in logged] == list(range(3, steps + 1, 3))
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
    assert main(["--find-lr", *tiny, "lr_finder_steps=40"]) == 0
    out = capsys.readouterr().out
    suggested = float(out.split("train with: python src/main.py lr=")[1].split()[0])
    assert 1e-7 <= suggested <= 10
    plot = Path("results/visualizations/default/lr_finder.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_suggest_lr_picks_the_steepest_descent_before_the_minimum() -> None:
    lrs = [10.0**e for e in range(-6, 2)]
    losses = [2.0, 1.99, 1.9, 1.2, 0.9, 0.85, 3.0, 9.0]
    assert suggest_lr(lrs, losses) == 1e-3  # 1.9 -> 1.2 is the steepest fall
    rising = [1.0, 1.1, 1.5, 3.0, 9.0, 20.0, 40.0, 90.0]
    assert suggest_lr(lrs, rising) == 1e-6  # never below the lowest lr swept
