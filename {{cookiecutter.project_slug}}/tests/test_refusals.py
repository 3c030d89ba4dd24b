"""Bad input of every kind ends with a message and an exit code, never a traceback, and writes
nothing: arbitrary overrides, config files and checkpoint files (property-based, with
Hypothesis), values that pass the type check but would break later, two processes in one run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import modes
from config import Config, ConfigError, apply_overrides, to_dict
from helpers import CHECKPOINTS, start, wait_for_checkpoint
from main import main
from runs import load_config_file
from train import build_scheduler

RUN = CHECKPOINTS / "r"
KEYS = sorted(to_dict(Config()))
# A fixed seed and a bounded number of examples: the same cases on every machine, in seconds.
PROPERTY = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def refused(capsys, exit_code: int) -> str:
    """The error message of a refusal with `exit_code`, checked to be one clean paragraph."""
    err = capsys.readouterr().err.rpartition("\r")[2]  # after any progress bar (tqdm, stderr)
    assert exit_code in (1, 2), err
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


# Overrides as users mistype them: real keys or not, any text as the value.
overrides = st.lists(
    st.builds(
        lambda key, sep, value: f"{key}{sep}{value}",
        st.sampled_from(KEYS) | st.text(max_size=12),
        st.sampled_from(["=", "", "=="]),
        st.text(max_size=20) | st.sampled_from(["nan", "-1", "1e999", "true", "", "9" * 30]),
    ),
    min_size=1,
    max_size=3,
)


@PROPERTY
@given(overrides)
def test_arbitrary_overrides_are_applied_or_refused_cleanly(workdir, capsys, items) -> None:
    try:
        cfg = apply_overrides(Config(), items)
    except ConfigError:
        before = files_under(workdir)
        try:
            exit_code = main(["--overfit-batch", *items])
        except SystemExit as stop:  # argparse: an item that looks like an option
            exit_code = stop.code
            assert exit_code == 2 and "Traceback" not in capsys.readouterr().err
        else:
            refused(capsys, exit_code)
        assert files_under(workdir) == before
    else:  # what is accepted is valid, and survives a checkpoint's round trip
        assert apply_overrides(cfg, []) == cfg


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)


@PROPERTY
@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=4))
def test_arbitrary_config_files_are_read_or_refused_cleanly(workdir, capsys, values) -> None:
    path = workdir / "given.json"
    path.write_text(json.dumps(values))  # NaN and Infinity included, as Python writes them
    try:
        load_config_file(path, [])
    except ConfigError:
        before = files_under(workdir)
        refused(capsys, main(["--config", str(path), "--overfit-batch"]))
        assert files_under(workdir) == before
    else:
        assume(False)  # a valid config would train: not this test's subject


@PROPERTY
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_as_a_checkpoint(workdir, capsys, data) -> None:
    path = workdir / "given.pt"
    path.write_bytes(data)
    before = files_under(workdir)
    err = refused(capsys, main(["--test", str(path)]))
    assert f"cannot read the checkpoint {path}: it is damaged or not a PyTorch file" in err
    assert "could run code" not in err
    assert files_under(workdir) == before


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (f"seed={2**32}", "seed must be <= 4294967295"),
        (f"run_name={'r' * 150}", "run_name is 150 characters long; folder names here have"),
        (f"experiment={'e' * 101}", "experiment is 101 characters long"),
        ("checkpoint_dir=README.md", "checkpoint_dir 'README.md' cannot hold the run's files"),
        ("plot_dir=README.md/plots", "is a file, not a folder. Point plot_dir= at a folder"),
        ("log_dir=README.md", "log_dir 'README.md' cannot hold the run's files"),
    ],
)
def test_values_that_would_break_later_are_refused_first(workdir, capsys, override, message):
    Path("README.md").write_text("a file where a folder would go")
    before = files_under(workdir)
    err = refused(capsys, main([override, "epochs=1"]))
    assert message in err
    assert files_under(workdir) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"lr": NaN}', "lr must be a finite number, got nan"),
        ('{"lr": Infinity}', "lr must be a finite number, got inf"),
        ("[" * 100_000 + "]" * 100_000, "is not a readable JSON config"),
        ('{"epochs": "' + "x" * 10_000 + '"}', "epochs must be of type int, got 'xxxx"),
    ],
)
def test_config_files_with_values_json_allows_but_a_config_cannot_hold(
    workdir, capsys, text, message
) -> None:
    Path("given.json").write_text(text)
    err = refused(capsys, main(["--config", "given.json"]))
    assert message in err and len(err) < 2000


def test_a_size_too_large_to_allocate_ends_with_a_message(workdir, tiny, capsys, monkeypatch):
    def too_large(cfg: Config, **inputs):
        return torch.nn.Linear(2**24, 2**24)  # 2**48 weights: no machine has the memory

    monkeypatch.setattr(modes, "build_task", too_large)
    err = refused(capsys, main([*tiny, "run_name=r"]))
    assert "error: out of memory (" in err and "lower batch_size" in err


def test_lr_auto_under_torchrun_is_refused_before_anything_is_written(
    workdir, tiny, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(modes.distributed, "is_active", lambda: True)  # as under torchrun
    before = files_under(workdir)
    err = refused(capsys, main([*tiny, "lr=auto", "run_name=r"]))
    assert "lr=auto runs the learning-rate range test in one process, not under torchrun" in err
    assert "--find-lr" in err and files_under(workdir) == before


def test_two_processes_cannot_train_one_run(workdir, tiny, capsys) -> None:
    """A second run of the same name is refused while the first lives; once the first is gone
    (killed: its lock file stays), the run is taken over with a note."""
    first = start([*tiny, "run_name=r", "epochs=40", "scheduler=step"])
    saved = wait_for_checkpoint(RUN / "last.pt", first, lambda checkpoint: True)
    try:
        err = refused(capsys, main([*tiny, "run_name=r", "overwrite=true"]))
        assert f"run default/r is being trained by pid {first.pid} on " in err
        assert "Wait for it to end (or stop it), or choose another run_name" in err
        refused(capsys, main(["--resume", "auto"]))
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.communicate()
    assert (RUN.parent / ".r.lock").read_text().startswith(f"pid {first.pid} on ")
    assert main(["--resume", "auto", f"epochs={saved['epoch'] + 2}"]) == 0
    assert f"took over the lock of run default/r from pid {first.pid}" in capsys.readouterr().out
    assert not (RUN.parent / ".r.lock").exists()  # released when the run ended


def test_resume_refuses_what_it_cannot_apply_and_records_what_changed(finished, capsys):
    err = refused(capsys, main(["--resume", "auto", "lr=0.5"]))
    assert "lr=" in err and "(given 0.5) cannot change on --resume" in err
    assert "--config results/logs/default/r/config.json lr=..." in err
    assert "What can change on --resume: " in err and "num_workers" in err
    assert main(["epochs=3", "--resume", "auto", "log_every=1"]) == 0  # overrides on both sides
    record = json.loads(Path("results/logs/default/r/run.json").read_text())
    changed = record["sessions"][-1]["changed"]
    assert changed == {"epochs": {"from": 2, "to": 3}, "log_every": {"from": 2, "to": 1}}


@pytest.mark.parametrize(
    "damage",
    ["weights that are not tensors", "a counter of the wrong type", "no rng state", "bad rng"],
)
def test_a_checkpoint_that_loads_safely_but_is_malformed_is_refused(
    finished, capsys, damage
) -> None:
    checkpoint = torch.load(RUN / "last.pt", weights_only=True)
    if damage == "weights that are not tensors":
        checkpoint["model"] = {name: 1.0 for name in checkpoint["model"]}
    elif damage == "a counter of the wrong type":
        checkpoint["global_step"] = "9"
    elif damage == "no rng state":
        del checkpoint["rng"]
    else:
        checkpoint["rng"] = {"python": None}
    torch.save(checkpoint, "odd.pt")
    err = refused(capsys, main(["--resume", "odd.pt", "epochs=3"]))
    assert "odd.pt is not a usable checkpoint of this project: " in err


def test_a_damaged_data_index_says_how_to_recover(finished, capsys) -> None:
    (RUN / "data.json").write_text('{"split": ')
    err = refused(capsys, main(["--test", str(RUN / "best.pt")]))
    assert f"the run's data index {RUN / 'data.json'} is damaged" in err
    (RUN / "data.json").unlink()
    assert main(["--test", str(RUN / "best.pt")]) == 0  # put back from the checkpoint


def test_resume_auto_never_falls_back_to_another_run(finished, tiny, capsys) -> None:
    assert main([*tiny, "run_name=new", "epochs=1"]) == 0  # newer than run r
    for path in (CHECKPOINTS / "new").glob("*.pt"):
        path.write_bytes(b"damaged")
    capsys.readouterr()
    with pytest.warns(UserWarning, match="skipping"):
        exit_code = main(["--resume", "auto"])
    err = refused(capsys, exit_code)
    assert f"none of the checkpoints of the newest run, {CHECKPOINTS / 'new'}, can be" in err


def test_resuming_a_finished_run_records_it_as_finished(finished) -> None:
    path = Path("results/logs/default/r/run.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "stopped"}))
    assert main(["--resume", "auto"]) == 0
    assert json.loads(path.read_text())["status"] == "finished"


def test_a_warmup_longer_than_the_run_is_warned_about() -> None:
    cfg = apply_overrides(Config(), ["epochs=2", "lr=0.1", "warmup_steps=1000", "scheduler=cosine"])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.warns(UserWarning, match="warmup_steps=1000 is more than half of the run's 20 "):
        build_scheduler(cfg, optimizer, batches_per_epoch=10)
