"""Training end to end: the overfit check, outputs of a run, resume, accumulation, best tracking."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from config import Config, apply_overrides
from dataset import make_dataloaders
from helpers import CHECKPOINTS, linear_trainer
from main import main
from model import Task
from tracking import Checkpoints, RunLog
from train import build_scheduler
from utils import RunPaths, load_checkpoint

RUN = Path("models/checkpoints/default/r")
LOGS = Path("results/logs/default/r")


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in a run's event files, read back with TensorBoard's own reader."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_overfit_check_passes_with_the_default_config(workdir, capsys) -> None:
    assert main(["--overfit-batch"]) == 0
    out = capsys.readouterr().out
    assert "overfit check passed: one sample" in out
    assert f"overfit check passed: one batch of {Config().batch_size} samples" in out


def test_a_short_run_writes_checkpoints_logs_and_plots(finished) -> None:
    assert (RUN / "last.pt").is_file() and (RUN / "best.pt").is_file()
    logged = scalars(LOGS)
    row = load_checkpoint(RUN / "last.pt", torch.device("cpu"))["history"][-1]
    values = [key.split("_", 1) for key in row if key.startswith(("train_", "val_"))]
    assert {"train", "val"} <= {split for split, _ in values}  # the loss and the metrics
    for tag in (
        "loss/train",
        "loss/val",
        "train/lr",
        *(f"{name}/{split}" for split, name in values),
    ):
        assert tag in logged, f"{tag} missing from {sorted(logged)}"
    assert len(logged["loss/val"]) == 2  # one per epoch
    curves = Path("results/visualizations/default/r/curves.png")
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "epoch 2/2 | train_loss" in finished and "tensorboard --logdir results/logs" in finished


def test_resume_continues_from_the_saved_epoch_and_step(finished, tiny) -> None:
    first = load_checkpoint(RUN / "last.pt", torch.device("cpu"))
    assert (first["epoch"], first["global_step"]) == (2, 18)  # 280 samples / 32 per batch
    assert main(["--resume", "auto", *tiny, "epochs=3", "scheduler=step"]) == 0
    second = load_checkpoint(RUN / "last.pt", torch.device("cpu"))
    assert (second["epoch"], second["global_step"]) == (3, 27)
    assert second["history"][:2] == first["history"]
    steps = [step for step, _ in scalars(LOGS)["loss/val"]]
    assert steps == [9, 18, 27]  # no duplicated or out-of-order points after the resume


def test_resume_refuses_to_stretch_a_cosine_schedule(workdir, tiny, capsys) -> None:
    assert main([*tiny, "run_name=r", "epochs=1", "scheduler=cosine"]) == 0
    assert main(["--resume", str(RUN / "last.pt"), "epochs=3"]) == 2
    assert "epochs cannot change on --resume with scheduler=cosine" in capsys.readouterr().err


def test_resume_auto_with_nothing_to_resume_is_a_clear_error(workdir, capsys) -> None:
    assert main(["--resume", "auto"]) == 2
    assert "found nothing to resume" in capsys.readouterr().err


def test_an_existing_run_is_never_overwritten(finished, tiny, capsys) -> None:
    before = (RUN / "last.pt").read_bytes()
    assert main([*tiny, "run_name=r", "epochs=1"]) == 2
    assert "already has checkpoints" in capsys.readouterr().err
    assert (RUN / "last.pt").read_bytes() == before


def test_best_checkpoint_holds_the_lowest_val_loss(workdir, tiny) -> None:
    assert main([*tiny, "run_name=r", "epochs=4", "lr=0.05"]) == 0
    last = load_checkpoint(RUN / "last.pt", torch.device("cpu"))
    best = load_checkpoint(RUN / "best.pt", torch.device("cpu"))
    scores = [row[f"val_{best['monitor']}"] for row in last["history"]]  # val_loss mostly
    assert best["best_score"] == min(scores)
    assert best["epoch"] == 1 + scores.index(min(scores))


def test_test_mode_evaluates_a_checkpoint(finished, capsys) -> None:
    assert main(["--test", str(RUN / "best.pt")]) == 0
    assert "on 60 test samples: test_loss" in capsys.readouterr().out
    record = json.loads(Path("results/logs/default/r/test.json").read_text())
    assert record["samples"] == 60 and record["checkpoint"] == str(RUN / "best.pt")
    assert isinstance(record["loss"], float)
    assert main(["--test", str(RUN / "step-00000009.pt")]) == 0  # never replaces the first
    again = json.loads(Path("results/logs/default/r/test-2.json").read_text())
    assert again["checkpoint"].endswith("step-00000009.pt")
    assert json.loads(Path("results/logs/default/r/test.json").read_text()) == record


# Run in a fresh interpreter, in the export's folder: torch and onnxruntime, not this project.
RUN_EXPORTED = """
import json, onnxruntime, torch
spec = json.load(open("model.json"))
shape = [3, *spec["input"]["example"][1:]]  # three samples, whatever the batch size was
inputs = (torch.rand(shape) * 4).to(getattr(torch, spec["input"]["dtype"]))  # token ids 0-3
program = torch.export.load("model.pt2").module()
session = onnxruntime.InferenceSession("model.onnx")
outputs = session.run(None, {spec["input"]["name"]: inputs.numpy()})[0]
assert torch.allclose(torch.from_numpy(outputs), program(inputs), atol=1e-4, rtol=1e-3)
print(list(outputs.shape))
"""


def test_export_writes_a_network_that_runs_without_the_project(finished, capsys) -> None:
    pytest.importorskip("onnxruntime")
    assert main(["--export", str(RUN / "best.pt")]) == 0
    assert "checked on 60 test samples: outputs within" in capsys.readouterr().out
    folder = Path("models/exported/default/r-best")
    spec = json.loads((folder / "model.json").read_text())
    assert spec["checked"]["test_samples"] == 60 and spec["checked"]["difference"] < 1e-3
    assert spec["config"]["run_name"] == "r"
    ran = subprocess.run(
        [sys.executable, "-c", RUN_EXPORTED], cwd=folder, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    shape = json.loads(ran.stdout.strip().splitlines()[-1])
    assert shape[0] == 3
    assert all(d in (None, size) for d, size in zip(spec["output"]["shape"], shape, strict=True))
    assert main(["--export", str(RUN / "best.pt")]) == 0  # never replaces the first
    assert (folder.parent / "r-best-2" / "model.onnx").is_file()
    assert json.loads((folder / "model.json").read_text()) == spec


def test_a_network_torch_export_cannot_trace_is_refused(finished, capsys, monkeypatch) -> None:
    class Branching(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.float().sum() > 0 else -x  # a branch on a tensor's value

    pytest.importorskip("onnxruntime")
    for kind in (Task, *Task.__subclasses__()):  # the task's own `exported` too, if it has one
        monkeypatch.setattr(kind, "exported", lambda task, batch: (Branching(), batch[0]))
    assert main(["--export", str(RUN / "best.pt")]) == 2
    err = capsys.readouterr().err
    assert "cannot be exported: " in err and "torch.cond" in err and "Traceback" not in err
    assert not Path("models/exported/default").exists() or not any(
        Path("models/exported/default").iterdir()
    )


def test_a_checkpoint_moved_without_its_run_folder_reads_the_data_as_the_run_did(
    finished, capsys
) -> None:
    index = RUN / "data.json"  # the split and what else the data source saves; none if built-in
    saved = index.read_text() if index.exists() else None
    moved = Path("moved.pt")
    shutil.copy(RUN / "best.pt", moved)
    shutil.rmtree(RUN)
    assert main(["--test", str(moved)]) == 0
    assert "on 60 test samples: test_loss" in capsys.readouterr().out
    assert (index.read_text() if index.exists() else None) == saved  # restored from moved.pt


def test_missing_checkpoint_names_the_path(workdir, capsys) -> None:
    assert main(["--test", "models/nowhere.pt"]) == 2
    assert "no checkpoint at models/nowhere.pt" in capsys.readouterr().err


def test_accumulation_steps_once_per_window_with_the_mean_gradient() -> None:
    inputs, labels = torch.randn(21, 4), torch.randint(3, (21,))

    accumulating = linear_trainer(["accumulate_steps=3"])
    steps = []
    accumulating.optimizer.register_step_post_hook(lambda *_: steps.append(1))
    accumulating.train_epoch(DataLoader(TensorDataset(inputs, labels), batch_size=3))
    assert len(steps) == 3  # 7 batches: windows of 3, 3 and 1
    assert accumulating.global_step == 3

    # One window of 3 batches of 3 must equal one step on the 9 samples at once.
    windowed, whole = linear_trainer(["accumulate_steps=3"]), linear_trainer([])
    windowed.train_epoch(DataLoader(TensorDataset(inputs[:9], labels[:9]), batch_size=3))
    whole.train_epoch(DataLoader(TensorDataset(inputs[:9], labels[:9]), batch_size=9))
    for a, b in zip(windowed.model.parameters(), whole.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_the_loss_check_waits_for_20_steps_and_the_warmup(workdir) -> None:
    inputs, labels = torch.randn(4, 4).repeat(2, 1), torch.randint(3, (4,)).repeat(2)
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=4)  # 2 identical batches
    stuck = ["lr=1e-12", "sanity_checks=false", "early_stopping_patience=0", "warmup_steps=0"]
    short = linear_trainer([*stuck, "epochs=3", "run_name=short"])  # 6 steps: too few
    warming = linear_trainer([*stuck, "epochs=12", "warmup_steps=30", "run_name=warming"])
    for trainer in (short, warming):  # 24 steps, all of them in the warmup, are too few too
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit(trainer, loader)
        assert not [w for w in caught if "has not decreased" in str(w.message)]
    long = linear_trainer([*stuck, "epochs=12", "run_name=long"])
    with pytest.warns(UserWarning, match="has not decreased in the first 20 steps"):
        fit(long, loader)


def fit(trainer, loader) -> None:
    """`trainer.fit` on `loader` for training and validation, in its run's folders."""
    run = RunPaths.for_run(trainer.cfg)
    trainer.fit(loader, loader, run, RunLog(trainer.cfg, run))


def test_checkpoint_round_trip_restores_the_trainer(workdir) -> None:
    trainer = linear_trainer(["run_name=r"])
    trainer.train_epoch(DataLoader(TensorDataset(torch.randn(8, 4), torch.randint(3, (8,))), 4))
    trainer.epoch, trainer.best_score = 1, 0.5
    saved = Checkpoints(RUN, keep=2).save(trainer.state_dict(), (1, 2, 0))
    assert saved.name == "step-00000002.pt"
    assert (RUN / "last.pt").read_bytes() == saved.read_bytes()
    assert not (RUN / "last.pt").samefile(saved)  # a copy: each file stands alone

    restored = linear_trainer(["seed=1"])
    restored.load_state_dict(load_checkpoint(RUN / "last.pt", torch.device("cpu")), RUN / "last.pt")
    for a, b in zip(trainer.model.parameters(), restored.model.parameters(), strict=True):
        assert torch.equal(a, b)
    before = trainer.optimizer.state_dict()["state"]
    after = restored.optimizer.state_dict()["state"]
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key]["momentum_buffer"], after[key]["momentum_buffer"])
    assert (restored.epoch, restored.global_step, restored.best_score) == (1, 2, 0.5)
    assert restored.resumed_from == saved


def test_warmup_ramps_the_lr_up_then_hands_over_to_the_schedule() -> None:
    overrides = ["lr=1", "epochs=2", "warmup_steps=4", "scheduler=cosine"]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1)
    scheduler = build_scheduler(apply_overrides(Config(), overrides), optimizer, 5)  # 10 steps
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:5] == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1.0])
    assert lrs[4:] == sorted(lrs[4:], reverse=True) and 0 < lrs[-1] < 0.1  # cosine down to ~0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("scheduler", ["none", "step", "cosine", "onecycle", "plateau"])
def test_every_scheduler_trains_and_checkpoints(workdir, tiny, scheduler) -> None:
    warmup = "warmup_steps=0" if scheduler in ("onecycle", "plateau") else "warmup_steps=3"
    assert main([*tiny, "run_name=r", f"scheduler={scheduler}", warmup, "epochs=1"]) == 0
    assert load_checkpoint(RUN / "last.pt", torch.device("cpu"))["epoch"] == 1


def test_best_tracking_and_early_stopping_follow_val_loss(workdir) -> None:
    trainer = linear_trainer(["early_stopping_patience=2", "epochs=10", "run_name=r"])
    run = RunPaths.for_run(trainer.cfg)
    trainer.log, trainer.checkpoints = RunLog(trainer.cfg, run), Checkpoints(run.checkpoints, 2)
    best_epochs = []
    for val_loss in (1.0, 0.9, 0.95, 0.9):  # 0.9 again is no improvement
        trainer.epoch += 1
        trainer.end_epoch({"loss": 1.0, "acc": 0.5}, {"loss": val_loss, "acc": 0.5}, 0.1)
        best = load_checkpoint(RUN / "best.pt", torch.device("cpu"))
        best_epochs.append(best["epoch"])
    assert best_epochs == [1, 2, 2, 2]
    assert trainer.best_score == 0.9 and trainer.epochs_without_improvement == 2
    assert trainer.patience_exhausted() and trainer.finished


def test_folds_cross_validate_and_report_mean_and_std(workdir, tiny, capsys) -> None:
    assert main([*tiny, "epochs=1", "folds=3", "run_name=cv"]) == 0
    record = json.loads(Path("results/logs/default/cv/cv.json").read_text())
    assert record["runs"] == ["cv-fold1", "cv-fold2", "cv-fold3"]
    rows = []
    for run in record["runs"]:
        last = load_checkpoint(CHECKPOINTS / run / "last.pt", torch.device("cpu"))
        assert last["config"]["fold"] == int(run[-1])
        rows.append(min(last["history"], key=lambda row: row[f"val_{last['monitor']}"]))
    assert record["best_epochs"] == rows
    for key, mean in record["mean"].items():
        values = torch.tensor([row[key] for row in rows], dtype=torch.float64)
        assert mean == pytest.approx(values.mean().item())
        assert record["std"][key] == pytest.approx(values.std().item())
    assert f"{key:<14} {mean:.4f} ± {record['std'][key]:.4f}" in capsys.readouterr().out

    # Running it again keeps the finished folds; other settings under that name are refused.
    assert main([*tiny, "epochs=1", "folds=3", "run_name=cv"]) == 0
    assert json.loads(Path("results/logs/default/cv/cv.json").read_text()) == record
    assert main([*tiny, "epochs=2", "folds=3", "run_name=cv"]) == 2
    assert "epochs 1 (now 2)" in capsys.readouterr().err


def test_fold_splits_share_the_test_split_and_partition_the_rest(workdir, tiny) -> None:
    keys = []
    for fold in (1, 2, 3):
        loaders = make_dataloaders(apply_overrides(Config(), [*tiny, "folds=3", f"fold={fold}"]))
        keys.append([set(loader.dataset.sample_keys()) for loader in loaders])
    (train, val, test), *others = keys
    assert all(other[2] == test for other in others)  # one test split for every fold
    vals = [split[1] for split in keys]
    assert all(not a & b for a, b in itertools.combinations(vals, 2))
    assert set().union(*vals) == train | val  # each non-test sample validates exactly once
    assert all(not split[0] & split[1] and split[0] | split[1] == train | val for split in keys)
