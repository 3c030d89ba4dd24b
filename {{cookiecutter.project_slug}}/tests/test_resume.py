"""Nothing lost: a run that is killed or stopped, then resumed, ends exactly as an unbroken one."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import modes
import train
from helpers import CHECKPOINTS, start, wait_for_checkpoint
from main import main
from run_table import collect_runs
from utils import EpochSampler, GracefulStop, load_checkpoint

LOGS = Path("results/logs/default")
# Deterministic kernels, a save every 2 steps, and long enough to interrupt in a later epoch.
EXACT = ["deterministic=true", "epochs=8", "checkpoint_every_steps=2", "early_stopping_patience=0"]


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def record(run: str) -> dict:
    return json.loads((LOGS / run / "run.json").read_text())


def run_statuses() -> dict[str, str]:
    """Each run's status as `--runs` shows it: a run still 'running' whose process is gone
    crashed."""
    return {row["run"]: row["status"] for row in collect_runs(Path("results/logs"))}


def outcome(run: str) -> tuple[dict[str, torch.Tensor], list[dict], dict]:
    """Final weights, per-epoch history and TensorBoard scalars of a run, without wall times."""
    last = load_checkpoint(CHECKPOINTS / run / "last.pt", torch.device("cpu"))
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in last["history"]]
    wall_times = ("train/samples_per_s", "time/data_wait_s", "time/compute_s", "time/data_share")
    logged = {k: v for k, v in scalars(LOGS / run).items() if k not in wall_times}
    return last["model"], history, logged


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(workdir, tiny) -> None:
    """With DataLoader workers, whose random streams must resume too (test_step.py stops and
    resumes mid-epoch without them)."""
    args = [*tiny, *EXACT, "num_workers=2"]
    assert main([*args, "run_name=straight"]) == 0

    killed = start([*args, "run_name=killed"], start_new_session=True)
    state = wait_for_checkpoint(
        CHECKPOINTS / "killed" / "last.pt",
        killed,
        lambda c: c["epoch"] >= 1 and c["batches_done"] > 0,  # inside a later epoch
    )
    # The whole group, as a crashed job loses it: DataLoader workers orphaned by a SIGKILL of the
    # main process alone can hold the output pipes open for a long time.
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    assert record("killed")["status"] == "running"  # it had no chance to say otherwise
    assert run_statuses() == {"straight": "finished", "killed": "crashed"}  # as --runs shows
    time.sleep(1)  # event files sort by their creation second, as they would for a real restart
    assert main(["--resume", "auto"]) == 0
    assert state["epoch"] < 5  # it really was interrupted

    weights, history, logged = outcome("straight")
    resumed_weights, resumed_history, resumed_logged = outcome("killed")
    for name, tensor in weights.items():
        assert torch.equal(tensor, resumed_weights[name]), name
    assert resumed_history == history
    assert resumed_logged == logged  # the same values at the same steps, in order
    for points in resumed_logged.values():
        steps = [step for step, _ in points]
        assert steps == sorted(set(steps))  # none duplicated or out of order


@pytest.mark.slow
def test_a_stop_on_the_last_step_of_an_epoch_resumes_exactly(workdir, tiny, monkeypatch) -> None:
    """The checkpoint then holds a whole epoch's batches, and the epoch is not yet validated."""
    args = [*tiny, *EXACT, "epochs=3"]
    assert main([*args, "run_name=straight"]) == 0
    cpu = torch.device("cpu")
    steps_per_epoch = load_checkpoint(CHECKPOINTS / "straight" / "last.pt", cpu)["global_step"] // 3
    stop_if_requested = train.Trainer.stop_if_requested

    def sigterm_on_the_last_step_of_epoch_1(self) -> None:
        if self.global_step == steps_per_epoch and not self.stop.requested:
            self.stop.signum = signal.SIGTERM
        stop_if_requested(self)

    monkeypatch.setattr(train.Trainer, "stop_if_requested", sigterm_on_the_last_step_of_epoch_1)
    assert main([*args, "run_name=stopped"]) == 128 + signal.SIGTERM
    monkeypatch.setattr(train.Trainer, "stop_if_requested", stop_if_requested)
    last = CHECKPOINTS / "stopped" / "last.pt"
    stopped = load_checkpoint(last, cpu)
    assert (stopped["epoch"], stopped["batches_done"]) == (0, steps_per_epoch)
    time.sleep(1)  # event files sort by their creation second, as they would for a real restart
    assert main(["--resume", str(last)]) == 0

    weights, history, logged = outcome("straight")
    resumed_weights, resumed_history, resumed_logged = outcome("stopped")
    for name, tensor in weights.items():
        assert torch.equal(tensor, resumed_weights[name]), name
    assert resumed_history == history
    assert resumed_logged == logged


def test_mid_epoch_resume_continues_with_the_next_unseen_batch() -> None:
    sampler = EpochSampler(10, seed=3)
    sampler.set_epoch(2)
    whole_epoch = list(sampler)
    sampler.set_epoch(2, start=4)
    assert list(sampler) == whole_epoch[4:]
    sampler.set_epoch(2, start=10)  # stopped after the epoch's last batch: nothing left
    assert len(sampler) == 0 and list(sampler) == []
    sampler.set_epoch(3)
    assert sorted(sampler) == list(range(10)) and list(sampler) != whole_epoch


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_process_group_saves_and_exits_cleanly(workdir, tiny, signum) -> None:
    """SLURM, Kubernetes and `docker stop` signal every process, DataLoader workers included."""
    args = [*tiny, "epochs=60", "scheduler=step", "early_stopping_patience=0", "num_workers=2"]
    process = start([*args, "run_name=s"], start_new_session=True)
    wait_for_checkpoint(CHECKPOINTS / "s" / "last.pt", process, lambda c: c["epoch"] >= 1)
    os.killpg(process.pid, signum)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err and "killed by signal" not in err
    assert record("s")["status"] == run_statuses()["s"] == "stopped"
    assert f"python src/main.py --resume {CHECKPOINTS / 's' / 'last.pt'}" in out
    saved = load_checkpoint(CHECKPOINTS / "s" / "last.pt", torch.device("cpu"))
    assert saved["epoch"] < 60
    # The writer was flushed and closed: the last logged step is in the event file.
    assert max(step for step, _ in scalars(LOGS / "s")["train/lr"]) <= saved["global_step"]

    finish = saved["epoch"] + 1  # the rest of the interrupted epoch and one more
    assert main(["--resume", "auto", f"epochs={finish}"]) == 0
    assert load_checkpoint(CHECKPOINTS / "s" / "last.pt", torch.device("cpu"))["epoch"] == finish


def test_a_second_ctrl_c_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)  # ignored, not the default, under `cmd &`
    with GracefulStop() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signum == signal.SIGINT
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_main_reports_an_immediate_stop_without_traceback(monkeypatch, capsys) -> None:
    def interrupted(*args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(modes, "fit", interrupted)
    assert main([]) == 130
    assert "stopped at once; the last saved checkpoint is intact" in capsys.readouterr().err
