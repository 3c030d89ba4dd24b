"""Crash-safe checkpoint files, safe loading, non-finite losses and bad input."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import utils
from config import Config, apply_overrides
from dataset import make_dataloaders
from helpers import CHECKPOINTS, RESHAPE, SRC, start, wait_for_checkpoint
from main import main
from utils import CheckpointWriteError, atomic_save, find_resumable_checkpoint, load_checkpoint

RUN = CHECKPOINTS / "r"
CPU = torch.device("cpu")


def steps(folder: Path = RUN) -> list[str]:
    return sorted(p.name for p in folder.glob("step-*.pt"))


@pytest.mark.slow
def test_sigkill_during_saves_always_leaves_a_loadable_checkpoint(workdir, tiny) -> None:
    """Kill a run that saves after every step at several moments; a good state always loads."""
    args = [*tiny, "epochs=30", "checkpoint_every_steps=1", "run_name=r"]
    step = 0
    for delay in (0.0, 0.004, 0.023):
        process = start(["--resume", "auto"] if step else args)
        wait_for_checkpoint(RUN / "last.pt", process, lambda c, done=step: c["global_step"] > done)
        time.sleep(delay)
        process.kill()
        process.communicate()
        path, checkpoint = find_resumable_checkpoint(Config(), CPU)
        assert path.parent == RUN and checkpoint["global_step"] > step
        step = checkpoint["global_step"]
    # Killed saves leave temporary files behind; the next run removes them and never uses them.
    (RUN / ".step-99999999.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    assert main(["--resume", "auto"]) == 0
    assert not list(RUN.glob(".*.tmp"))


def test_a_failed_write_keeps_the_previous_file_and_names_the_path(tmp_path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    atomic_save({"weights": torch.ones(3)}, path)
    before = path.read_bytes()

    def disk_full(obj: object, file: object) -> None:
        file.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(utils.torch, "save", disk_full)
    with pytest.raises(CheckpointWriteError, match=f"cannot write {path}: No space left"):
        atomic_save({"weights": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_a_write_error_stops_the_run_with_exit_1(finished, monkeypatch, capsys) -> None:
    before, kept = (RUN / "last.pt").read_bytes(), steps()

    def disk_full(obj: object, file: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(utils.torch, "save", disk_full)
    assert main(["--resume", "auto", "epochs=3"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {RUN / 'step-00000027.pt'}: No space left on device" in err
    assert "The previous checkpoint is intact" in err and "Traceback" not in err
    assert (RUN / "last.pt").read_bytes() == before
    assert steps() == kept  # nothing was pruned for a checkpoint that was never written


def test_a_full_disk_before_the_first_checkpoint_says_nothing_was_saved(
    workdir, tiny, monkeypatch, capsys
) -> None:
    def disk_full(obj: object, file: object) -> None:  # how torch.save reports it
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    make_dataloaders(apply_overrides(Config(), tiny))  # the data (and any cache of it) first
    monkeypatch.setattr(utils.torch, "save", disk_full)
    assert main([*tiny, "run_name=r", "epochs=1"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {RUN / 'step-'}" in err and ": PytorchStreamWriter failed" in err
    assert "Nothing was saved before it" in err and "intact" not in err
    assert "Traceback" not in err and not steps()


def test_an_unwritable_plot_folder_costs_a_warning_not_the_epoch(workdir, tiny) -> None:
    """Pictures, plots and logs never cost training: a plot folder that cannot be written to
    (here a file stands where its run folder would be) warns once, and every epoch is saved."""
    blocked = Path("results/visualizations/default/r")
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    with pytest.warns(UserWarning, match="could not write the run's curves.png") as warned:
        assert main([*tiny, "run_name=r"]) == 0
    assert sum("curves.png" in str(w.message) for w in warned) == 1
    assert torch.load(RUN / "last.pt", weights_only=True)["epoch"] == 2
    assert Path("results/logs/default/r/metrics.csv").is_file()


def test_resume_auto_skips_damaged_checkpoints(finished) -> None:
    assert steps() == ["step-00000009.pt", "step-00000018.pt"]  # one per epoch
    with open(RUN / "step-00000018.pt", "r+b") as damaged:
        damaged.truncate(1000)
    with open(RUN / "last.pt", "r+b") as damaged:
        damaged.truncate(1000)
    with pytest.warns(UserWarning, match="skipping .*: cannot read the checkpoint"):
        path, checkpoint = find_resumable_checkpoint(Config(), CPU)
    assert path == RUN / "step-00000009.pt" and checkpoint["global_step"] == 9


def test_every_checkpoint_file_stands_alone(finished) -> None:
    """Overwriting or damaging last.pt in place (a user re-saving an edited checkpoint, a copy
    of another run's file) changes no other file of the run."""
    kept = {name: (RUN / name).read_bytes() for name in ("best.pt", "step-00000018.pt")}
    assert (RUN / "last.pt").read_bytes() == kept["step-00000018.pt"]
    checkpoint = torch.load(RUN / "last.pt", weights_only=True)
    checkpoint["history"] = []
    torch.save(checkpoint, RUN / "last.pt")
    with open(RUN / "best.pt", "r+b") as damaged:
        damaged.truncate(1000)
    assert (RUN / "step-00000018.pt").read_bytes() == kept["step-00000018.pt"]
    assert torch.load(RUN / "last.pt", weights_only=True)["history"] == []


def test_pruning_never_deletes_the_checkpoint_being_resumed_from(finished) -> None:
    (RUN / "step-00000018.pt").unlink()
    (RUN / "last.pt").unlink()
    resumed = ["--resume", str(RUN / "step-00000009.pt"), "epochs=3", "keep_last_checkpoints=1"]
    assert main(resumed) == 0
    assert steps() == ["step-00000009.pt", "step-00000027.pt"]


def test_a_non_finite_loss_stops_with_a_replayable_dump(workdir, tiny, capsys) -> None:
    args = [*tiny, "run_name=r", "lr=1e30", "grad_clip=0", "optimizer=sgd", "scheduler=none"]
    args.append("warmup_steps=0")  # the error names the lr; a warmup would lower it
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "the loss became" in err and "at epoch 1, step " in err and "(lr 1e+30)" in err
    assert "Usual causes: a learning rate too high" in err
    dumps = list(RUN.glob("nonfinite-step*.pt"))
    assert len(dumps) == 1 and f"python src/main.py --replay {dumps[0]}" in err
    for checkpoint in RUN.glob("*.pt"):  # every checkpoint written has finite weights
        if checkpoint not in dumps:
            load_checkpoint(checkpoint, CPU)
    assert main(["--replay", str(dumps[0])]) == 1
    replayed = capsys.readouterr().out
    assert "loss nan" in replayed or "loss inf" in replayed


def test_a_checkpoint_that_would_run_code_is_refused(workdir, capsys) -> None:
    marker = workdir / "code-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"version": 1, "model": {}, "payload": Payload()}, workdir / "evil.pt")
    assert main(["--test", "evil.pt"]) == 2
    err = capsys.readouterr().err
    assert "refused to load evil.pt" in err and "nothing in it ran" in err
    assert not marker.exists()


def test_a_checkpoint_of_another_model_shape_names_the_mismatch(finished, capsys) -> None:
    assert main(["--test", str(RUN / "last.pt"), RESHAPE]) == 2
    err = capsys.readouterr().err
    assert f"the weights in {RUN / 'last.pt'} do not fit the model" in err
    assert "size mismatch for" in err
    assert main(["--resume", str(RUN / "last.pt"), RESHAPE]) == 2  # refused before loading
    assert "cannot change on --resume" in capsys.readouterr().err


def test_a_checkpoint_of_another_project_or_edited_by_hand_is_named_so(finished, capsys) -> None:
    checkpoint = torch.load(RUN / "last.pt", weights_only=True)
    foreign = Path("foreign.pt")
    torch.save({**checkpoint, "project": {"task": "gan", "dataset": "image_folder"}}, foreign)
    edited = Path("edited.pt")
    torch.save({**checkpoint, "config": {**checkpoint["config"], "batch_size": 0}}, edited)
    history, step = Path("history.pt"), Path("step.pt")  # training state edited by hand
    torch.save({**checkpoint, "history": [{"epoch": 1}]}, history)
    torch.save({**checkpoint, "global_step": -3}, step)
    for path, message in [
        (foreign, "foreign.pt was trained by a gan project on image_folder data, and this is a"),
        (edited, "the checkpoint edited.pt holds a config this project refuses: batch_size must"),
        (step, "step.pt is not a usable checkpoint of this project: its global_step is not"),
    ]:
        for command in (["--test", str(path)], ["--resume", str(path)]):
            assert main(command) == 2
            err = capsys.readouterr().err
            assert message in err and "Traceback" not in err, err
    assert main(["--resume", str(history)]) == 2
    err = capsys.readouterr().err
    assert "history.pt is not a usable checkpoint of this project: its training state" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("damage", ["missing", "truncated", "not a checkpoint"])
def test_missing_or_damaged_checkpoints_name_the_path(finished, capsys, damage) -> None:
    path = Path("copy.pt")
    if damage == "truncated":
        path.write_bytes((RUN / "last.pt").read_bytes()[:5000])
    elif damage == "not a checkpoint":
        torch.save({"weights": torch.ones(2)}, path)
    assert main(["--test", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


# A run whose DataLoader workers fail on their second batch, as when a file goes bad mid-run.
WORKERS_FAIL = """
import sys

import torch.utils.data._utils.fetch as fetch
from torch.utils.data import get_worker_info

sys.path.insert(0, sys.argv.pop(1))
import main
from config import UserError

fetch_batch, fetched = fetch._MapDatasetFetcher.fetch, 0


def fetch_then_fail(self, index):
    global fetched
    fetched += 1
    if get_worker_info() is not None and fetched > 1:
        raise UserError("the data went away")
    return fetch_batch(self, index)


fetch._MapDatasetFetcher.fetch = fetch_then_fail
sys.exit(main.main(sys.argv[1:]))
"""


def test_a_worker_that_fails_mid_epoch_ends_the_run_at_once(workdir, tiny) -> None:
    """The error of a worker ends the run with its message, and the process exits: workers
    ignore SIGTERM (for graceful stops), so none may be left for the interpreter to wait on."""
    script = workdir / "workers_fail.py"
    script.write_text(WORKERS_FAIL)
    command = [sys.executable, str(script), str(SRC), *tiny, "num_workers=2", "run_name=r"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the run did not exit after its workers failed:\n{process.communicate()[1]}")
    assert process.returncode == 2, err
    assert err.strip().endswith("error: the data went away") and "Traceback" not in err, err


def test_a_missing_data_dir_is_refused_before_anything_is_written(workdir, capsys) -> None:
    assert main(["data_dir=nowhere"]) == 2
    assert "data_dir 'nowhere' is not a folder" in capsys.readouterr().err
    assert [p.name for p in workdir.iterdir()] == ["data"]


def test_test_without_a_checkpoint_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--test"])
    assert exit_info.value.code == 2
    assert "--test: expected one argument" in capsys.readouterr().err


def test_overwrite_true_replaces_an_existing_run(finished, tiny) -> None:
    assert main([*tiny, "run_name=r", "epochs=1", "overwrite=true"]) == 0
    assert steps() == ["step-00000009.pt"]  # the old run's step-00000018.pt is gone
    assert len(load_checkpoint(RUN / "last.pt", CPU)["history"]) == 1


def test_the_project_requires_a_torch_without_the_torch_load_cve() -> None:
    requirements = (Path(__file__).parents[1] / "requirements.txt").read_text()
    assert "torch>=2.6" in requirements
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    assert (major, minor) >= (2, 6)
    assert sys.version_info >= (3, 10)
