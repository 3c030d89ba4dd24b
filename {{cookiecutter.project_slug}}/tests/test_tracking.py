"""Every run explains itself: its record, its TensorBoard logs and curves, the runs table, sweeps
and reproducing a run from its config.json."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import tracking
from config import Config, apply_overrides, to_dict
from helpers import CHECKPOINTS, FINISHED, stop_once_after_step
from main import main
from run_table import collect_runs
from runs import code_version, sweep_grid
from train import Trainer

LOGS = Path("results/logs/default")


def record(run: str) -> dict:
    return json.loads((LOGS / run / "run.json").read_text())


def history_csv(run: str) -> list[dict[str, str]]:
    with (LOGS / run / "metrics.csv").open() as file:
        return list(csv.DictReader(file))


def test_a_run_folder_holds_its_config_record_and_metrics(finished) -> None:
    saved = json.loads((LOGS / "r" / "config.json").read_text())
    assert saved == to_dict(apply_overrides(Config(), FINISHED))
    run = record("r")
    assert run["status"] == "finished" and run["error"] is None
    assert run["ended"] >= run["started"] and run["duration_s"] > 0
    assert run["libraries"]["torch"] == torch.__version__.split("+")[0]
    (session,) = run["sessions"]
    assert session["command"] == "python src/main.py " + " ".join(FINISHED)
    assert session["device"].startswith("cpu") and session["pid"] == os.getpid()
    assert "git" in session["code"] or "commit" in session["code"]

    rows = history_csv("r")
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    best = json.loads((LOGS / "r" / "metrics.json").read_text())
    monitor = run["monitor"]  # val_loss, or the task's own score
    assert best["best_epoch"][monitor] == pytest.approx(min(float(row[monitor]) for row in rows))
    assert best["last_epoch"]["epoch"] == 2


def test_a_resumed_run_adds_a_session_to_its_record(finished) -> None:
    assert main(["--resume", str(CHECKPOINTS / "r" / "last.pt"), "epochs=3"]) == 0
    run = record("r")
    assert [s["command"].split()[2] for s in run["sessions"]] == [FINISHED[0], "--resume"]
    assert run["status"] == "finished" and len(history_csv("r")) == 3
    assert json.loads((LOGS / "r" / "config.json").read_text())["epochs"] == 3


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_code_version_names_the_commit_and_keeps_uncommitted_changes(tmp_path) -> None:
    assert code_version(tmp_path, tmp_path / "x.patch") == {"git": "not a git repository"}

    def git(*args: str) -> str:
        identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
        result = subprocess.run(["git", *identity, *args], cwd=tmp_path, capture_output=True)
        assert result.returncode == 0, result.stderr
        return result.stdout.decode().strip()

    git("init", "-q")
    (tmp_path / "model.py").write_text("width = 8\n")
    git("add", "model.py")
    git("commit", "-q", "-m", "first")
    assert code_version(tmp_path, tmp_path / "a.patch") == {
        "commit": git("rev-parse", "HEAD"),
        "dirty": False,
    }

    (tmp_path / "model.py").write_text("width = 16\n")
    (tmp_path / "new.py").write_text("")
    code = code_version(tmp_path, tmp_path / "b.patch")
    assert code["dirty"] and code["untracked"] == ["new.py"] and code["patch"] == "b.patch"
    patch = (tmp_path / "b.patch").read_text()
    assert "-width = 8" in patch and "+width = 16" in patch
    # The patch recreates the run's code from the commit.
    git("stash", "-q")
    git("apply", str(tmp_path / "b.patch"))
    assert (tmp_path / "model.py").read_text() == "width = 16\n"


def test_tensorboard_gets_scalars_pictures_graph_histograms_and_hparams(finished) -> None:
    traced = "no model graph in TensorBoard" not in finished
    events = EventAccumulator(str(LOGS / "r"), size_guidance={"histograms": 0, "images": 0})
    events.Reload()
    tags = events.Tags()

    for tag in ("loss/train", "loss/val", "train/loss_step", "train/lr", "train/grad_norm"):
        assert tag in tags["scalars"], tag
    assert all(e.value > 0 for e in events.Scalars("train/samples_per_s"))
    assert any(tag.endswith("/val") and tag != "inputs/val" for tag in tags["images"])
    picture = events.Images(next(t for t in tags["images"] if t != "inputs/val"))
    assert len(picture) == 1  # a run this short draws its pictures once, at the end
    assert tags["graph"] == traced  # a model that tracing cannot follow gets a note instead
    first = next(tag for tag in tags["histograms"] if tag.startswith("weights/"))
    assert first.replace("weights/", "gradients/") in tags["histograms"]
    hparams = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= hparams.keys()
    assert b"batch_size" in hparams["_hparams_/session_start_info"]
    monitor = record("r")["monitor"]  # val_loss, or the task's own score
    best = min(history_csv("r"), key=lambda row: float(row[monitor]))
    assert events.Scalars("hparams/val_loss")[-1].value == pytest.approx(float(best["val_loss"]))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_tensorboard_server_serves_a_logged_scalar(finished) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", "results/logs"]
        + ["--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    query = urllib.parse.urlencode({"run": "default/r", "tag": "loss/val"})
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?{query}"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        points, deadline = None, time.monotonic() + 90
        while points is None and time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()
            try:
                with direct.open(url, timeout=5) as response:
                    points = json.loads(response.read()) or None  # [] until loaded
            except OSError:  # not listening yet, or the run not loaded yet (400)
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert points is not None, "TensorBoard never served the scalar"
    logged = [float(row["val_loss"]) for row in history_csv("r")]
    assert [value for _, _, value in points] == pytest.approx(logged)


def test_curves_are_png_images_redrawn_within_a_small_share_of_the_time(
    workdir, tiny, monkeypatch
) -> None:
    """Drawing waits 30 s, then is held back until the run has trained 20 times as long as it
    took; the last curves are always drawn at the end. metrics.csv is written whole once, then
    appended to, and TensorBoard gets every epoch. (Here drawing starts at once, takes 0.3 s
    and is held for 100 times as long: 30 s, longer than the run on any machine.)"""
    drawn, whole = [], []
    save_curves, save_metrics_csv = tracking.save_curves, tracking.save_metrics_csv

    def slow_curves(history, path):
        drawn.append(len(history))
        time.sleep(0.3)
        save_curves(history, path)

    def spy_csv(history, path):
        whole.append(len(history))
        save_metrics_csv(history, path)

    monkeypatch.setattr(tracking, "save_curves", slow_curves)
    monkeypatch.setattr(tracking, "save_metrics_csv", spy_csv)
    monkeypatch.setattr(tracking.Throttle.__init__, "__defaults__", (0.01, 0.0))
    assert main([*tiny, "run_name=r", "epochs=6", "keep_last_checkpoints=6", "scheduler=step"]) == 0
    assert drawn == [1, 6] and whole == [1]
    assert [int(float(row["epoch"])) for row in history_csv("r")] == [1, 2, 3, 4, 5, 6]
    events = EventAccumulator(str(LOGS / "r"))
    events.Reload()
    assert len(events.Scalars("loss/val")) == 6
    with Image.open("results/visualizations/default/r/curves.png") as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 300
    # A resumed run starts metrics.csv afresh from its checkpoint's history, then appends.
    older = sorted((CHECKPOINTS / "r").glob("step-*.pt"))[0]
    epoch = torch.load(older, weights_only=True)["epoch"]
    assert main(["--resume", str(older), f"epochs={epoch + 1}"]) == 0
    assert whole == [1, epoch + 1] and len(history_csv("r")) == epoch + 1 < 6


def test_runs_lists_finished_and_crashed_runs(workdir, tiny, monkeypatch, capsys) -> None:
    assert main(["--runs"]) == 2  # not in a project folder: nothing to list, nothing written
    assert "log_dir 'results/logs' is not a folder" in capsys.readouterr().err
    assert [p.name for p in workdir.iterdir()] == ["data"]
    Path("results/logs").mkdir(parents=True)  # as in a new project
    assert main(["--runs"]) == 0
    assert "no runs recorded yet" in capsys.readouterr().out
    assert main([*tiny, "run_name=good"]) == 0

    def broken(self, loader):
        raise RuntimeError("a bug in the training step")

    monkeypatch.setattr(Trainer, "train_epoch", broken)
    with pytest.raises(RuntimeError):
        main([*tiny, "run_name=bad", "lr=0.01"])
    assert record("bad")["error"] == "RuntimeError: a bug in the training step"

    capsys.readouterr()
    assert main(["--runs"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if "default/" in line}
    assert lines["default/good"][1:3] == ["finished", "2/2"]
    assert lines["default/bad"][1:4] == ["crashed", "0/2", "0.01"]  # lr differs: shown
    assert "lr" in out.splitlines()[0]
    with open("results/runs.csv") as file:
        table = {row["run"]: row for row in csv.DictReader(file)}
    assert table["good"]["status"] == "finished" and float(table["good"]["best"]) > 0
    assert table["bad"]["status"] == "crashed" and table["bad"]["lr"] == "0.01"


def test_config_reproduces_a_run_exactly(finished, capsys) -> None:
    saved = LOGS / "r" / "config.json"
    assert main(["--config", str(saved), "run_name=again"]) == 0
    first, again = (json.loads((LOGS / r / "config.json").read_text()) for r in ("r", "again"))
    assert {**first, "run_name": "again"} == again
    same = ("epoch", "train_loss", "val_loss")
    assert [{k: r[k] for k in same} for r in history_csv("again")] == [
        {k: r[k] for k in same} for r in history_csv("r")
    ]

    assert main(["--config", str(saved), "epochs=1"]) == 0  # overrides apply on top
    newest = max(LOGS.iterdir(), key=lambda p: p.stat().st_mtime)
    assert newest.name not in ("r", "again")  # a fresh timestamped run
    assert json.loads((newest / "config.json").read_text())["epochs"] == 1

    capsys.readouterr()
    assert main(["--config", "missing.json"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--config", str(saved), "--resume", "auto"]) == 2


def test_a_2x2_sweep_trains_four_runs_and_ranks_them(workdir, tiny, capsys) -> None:
    assert main([*tiny, "epochs=1", "--sweep", "lr=1e-4,3e-3", "weight_decay=0,0.1"]) == 0
    out = capsys.readouterr().out
    rows = collect_runs(Path("results/logs"))
    assert len(rows) == 4 and len({row["sweep"] for row in rows}) == 1
    configs = {(row["config"]["lr"], row["config"]["weight_decay"]) for row in rows}
    assert configs == {(1e-4, 0.0), (1e-4, 0.1), (3e-3, 0.0), (3e-3, 0.1)}
    table = out[out.index("best first") :].splitlines()[1:6]
    assert table[0].split()[:3] == ["run", "status", "epochs"]
    assert "lr" in table[0] and "weight_decay" in table[0]
    best = [float(line.split()[5]) for line in table[1:]]
    assert best == sorted(best) == pytest.approx(sorted(row["best"] for row in rows), abs=1e-4)


def test_a_sweep_records_a_failed_run_and_goes_on(workdir, tiny, monkeypatch, capsys) -> None:
    original = Trainer.train_epoch

    def fails_at_high_lr(self, loader):
        if self.cfg.lr > 0.01:
            raise RuntimeError("diverged")
        return original(self, loader)

    monkeypatch.setattr(Trainer, "train_epoch", fails_at_high_lr)
    assert main([*tiny, "epochs=1", "--sweep", "lr=1,1e-3"]) == 1
    statuses = {row["config"]["lr"]: row["status"] for row in collect_runs(Path("results/logs"))}
    assert statuses == {1.0: "crashed", 1e-3: "finished"}
    assert "going on with the next" in capsys.readouterr().out


def test_sweep_axes_are_checked_before_any_run(workdir, tiny, capsys) -> None:
    assert sweep_grid(["lr=1,2", "width=3"]) == [["lr=1", "width=3"], ["lr=2", "width=3"]]
    assert sweep_grid(["classes=a,b;a,c"]) == [["classes=a,b"], ["classes=a,c"]]
    bad = (["lr="], ["lr=1", "lr=2"], ["lr=1,2", "warp=1,2"], ["lr=1,-2"], ["lr=1,1"])
    for axes in (*bad, ["lr=1,2", "run_name=mine"]):
        assert main([*tiny, "--sweep", *axes]) == 2, axes
    assert not Path("results/logs").exists() or not any(Path("results/logs").iterdir())


def wandb_records(folder: Path) -> list[Any]:
    """The records of the offline W&B runs under `folder`, read as W&B's own protobuf Records:
    a .wandb file is a 7-byte header, then records in 32 KiB blocks, each piece with a 7-byte
    header of its own (checksum, length, kind: whole, first, middle or last), as LevelDB logs."""
    from wandb.proto.wandb_internal_pb2 import Record  # noqa: PLC0415

    records = []
    for path in sorted(folder.glob("offline-run-*/run-*.wandb")):
        data, position, pending = path.read_bytes(), 7, b""
        while position + 7 <= len(data):
            if 32768 - position % 32768 < 7:  # a block's last bytes hold no piece
                position += 32768 - position % 32768
                continue
            length = int.from_bytes(data[position + 4 : position + 6], "little")
            kind = data[position + 6]
            pending += data[position + 7 : position + 7 + length]
            position += 7 + length
            if kind in (1, 4):  # a whole record, or its last piece
                records.append(Record.FromString(pending))
                pending = b""
    return records


def test_wandb_and_mlflow_log_the_run_and_continue_it_on_resume(workdir, tiny, monkeypatch) -> None:
    """W&B (offline) and MLflow (its SQLite store) get the config, every epoch's scores, the
    pictures and the code version, read back with their own record type and client; a stopped
    and resumed run stays one run in each."""
    pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    stop_once_after_step(monkeypatch, 3)
    assert main([*tiny, "run_name=r", "tracker=wandb,mlflow", "log_images_every=1"]) == 143
    assert main(["--resume", str(CHECKPOINTS / "r" / "last.pt")]) == 0
    logs = Path("results/logs/default/r")
    ids = json.loads((logs / "trackers.json").read_text())
    settings = json.loads((logs / "config.json").read_text())
    with (logs / "metrics.csv").open() as file:
        val_loss = [float(row["val_loss"]) for row in csv.DictReader(file)]

    client = mlflow.MlflowClient("sqlite:///results/mlflow.db")
    (found,) = client.search_runs([client.get_experiment_by_name("default").experiment_id])
    assert found.info.run_id == ids["mlflow"] and found.info.run_name == "r"
    assert found.info.status == "FINISHED" and found.data.params["lr"] == str(settings["lr"])
    assert "git" in json.loads(found.data.tags["code"])
    history = client.get_metric_history(found.info.run_id, "loss/val")
    assert [metric.value for metric in history] == pytest.approx(val_loss)
    steps = [m.step for m in client.get_metric_history(found.info.run_id, "train/loss_step")]
    assert steps == sorted(set(steps))  # the resumed session repeats no step
    assert client.list_artifacts(found.info.run_id, "images")  # the prediction pictures

    sessions = sorted(Path("results/wandb").glob("offline-run-*"))
    assert len(sessions) == 2 and all(ids["wandb"] in folder.name for folder in sessions)
    records = wandb_records(Path("results/wandb"))
    rows = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}
        for items in [r.history.item for r in records if r.WhichOneof("record_type") == "history"]
    ]
    assert [row["loss/val"] for row in rows if "loss/val" in row] == pytest.approx(val_loss)
    images = [value for row in rows for key, value in row.items() if key.endswith("/_type")]
    assert images and set(images) == {"image-file"}  # the prediction pictures
    (run,) = {r.run.run_id for r in records if r.WhichOneof("record_type") == "run"}
    assert run == ids["wandb"]


def test_an_unknown_tracker_or_a_missing_package_is_refused(workdir, monkeypatch, capsys):
    assert main(["tracker=comet"]) == 2
    assert "tracker must name tensorboard, wandb or mlflow" in capsys.readouterr().err
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if n == "mlflow" else real(n))
    assert main(["tracker=wandb,mlflow"]) == 2
    err = capsys.readouterr().err
    assert "pip install mlflow-skinny, then run it again" in err and "Traceback" not in err
    assert not Path("results").exists()
