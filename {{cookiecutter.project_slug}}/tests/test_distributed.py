{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task with context %}
"""Training on two CPU processes with torchrun (gloo), as on two GPUs: one model, one checkpoint."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import distributed
from config import Config, apply_overrides, from_dict
from dataset import make_dataloaders
from helpers import CHECKPOINTS, SRC, TINY, copy_tree, make_data_folder
from main import main
from modes import build
from utils import EpochSampler, data_index, load_checkpoint, load_weights

# Runs main.py like torchrun does, and also saves each rank's weights and next random draw after
# training; makes rank 1 fail at its third step (FAIL_ON_RANK_1), refuse its data with a user
# error (REFUSE_DATA_ON_RANK_1), or SIGTERM every process of the job after step
# SIGTERM_AFTER_STEP: what the tests look at from outside.
PROBE = """
import os
import signal
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.environ["PROJECT_SRC"])
import config
import main
import modes
import train

fit, step = train.Trainer.fit, train.Trainer.optimizer_step
make_dataloaders = modes.make_dataloaders


def fit_and_save(self, *args, **kwargs):
    fit(self, *args, **kwargs)
    rank = dist.get_rank()
    torch.save(self.model.state_dict(), "weights-rank%d.pt" % rank)
    torch.save(torch.rand(8), "draw-rank%d.pt" % rank)


def fail_on_rank_1(self):
    if dist.get_rank() == 1 and self.global_step == 2:
        raise RuntimeError("injected failure on rank 1")
    step(self)


def refuse_data_on_rank_1(cfg):
    if dist.get_rank() == 1:
        raise config.UserError("cannot read its data (injected)")
    return make_dataloaders(cfg)


def sigterm_the_job(self):
    step(self)
    if dist.get_rank() == 1 and self.global_step == int(os.environ["SIGTERM_AFTER_STEP"]):
        os.killpg(0, signal.SIGTERM)  # as SLURM and Kubernetes do: every process of the job


train.Trainer.fit = fit_and_save
if os.environ.get("REFUSE_DATA_ON_RANK_1"):
    modes.make_dataloaders = refuse_data_on_rank_1
if os.environ.get("FAIL_ON_RANK_1"):
    train.Trainer.optimizer_step = fail_on_rank_1
if os.environ.get("SIGTERM_AFTER_STEP"):
    train.Trainer.optimizer_step = sigterm_the_job
sys.exit(main.main(sys.argv[1:]))
"""


def torchrun(
    folder: Path, args: list[str], env: dict[str, str] | None = None, **popen
) -> subprocess.Popen:
    """`torchrun --standalone --nproc_per_node=2 src/main.py ARGS` (through the probe)."""
    return launch(folder, ["--standalone", "--nproc_per_node=2"], args, env, **popen)


def launch(
    folder: Path,
    launcher: list[str],
    args: list[str],
    env: dict[str, str] | None,
    wrapper: tuple[str, ...] = (),
    **popen,
) -> subprocess.Popen:
    """torchrun with the options `launcher` on src/main.py ARGS (through the probe), as the
    arguments of `wrapper` if given."""
    probe = folder / "probe.py"
    probe.write_text(PROBE)
    torchrun = [sys.executable, "-m", "torch.distributed.run", *launcher, str(probe), *args]
    return subprocess.Popen(
        [*wrapper, *torchrun],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {}), "PROJECT_SRC": str(SRC)},
        **popen,
    )


# Starts the same torchrun command twice and waits for both: started in a new session, this
# process and both launchers form one process group, as the processes of one job do.
TWO_LAUNCHERS = """
import subprocess
import sys

launchers = [subprocess.Popen(sys.argv[1:]) for _ in range(2)]
print("exit codes", *[launcher.wait() for launcher in launchers])
"""


def two_nodes(folder: Path, args: list[str], env: dict[str, str] | None = None) -> str:
    """Two torchrun launchers of one process each, as on two machines, meeting through a c10d
    rendezvous on 127.0.0.1, as one job; their output, ending with their exit codes."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    launcher = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", "--rdzv_id=job"]
    launcher += [f"--rdzv_endpoint=127.0.0.1:{port}", "--local_addr=127.0.0.1"]
    # One thread per process, as torchrun sets for several processes on one node: the float
    # sums of a kernel depend on how many threads share them.
    env = {**(env or {}), "OMP_NUM_THREADS": "1"}
    wrapper = (sys.executable, "-c", TWO_LAUNCHERS)
    process = launch(folder, launcher, args, env, wrapper, start_new_session=True)
    out, err = process.communicate(timeout=300)
    return out + err


# The run of two processes that the tests look at and compare with, trained once per session.
ON_TWO = [*TINY, "scheduler=step", "early_stopping_patience=0"]


@pytest.fixture(scope="session")
def trained_on_two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`torchrun --standalone --nproc_per_node=2 src/main.py ON_TWO run_name=ddp` (through the
    probe), once per session in a folder of its own: the folder, and what the run printed."""
    folder = tmp_path_factory.mktemp("ddp")
    make_data_folder(folder / "data")
    process = torchrun(folder, [*ON_TWO, "run_name=ddp"], cwd=folder)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err
    return folder, out


def unbroken(trained_on_two: tuple[Path, str]) -> dict:
    """The last checkpoint of the run on two processes, without the seconds its epochs took."""
    folder, _ = trained_on_two
    last = load_checkpoint(folder / CHECKPOINTS / "ddp" / "last.pt", torch.device("cpu"))
    for row in last["history"]:
        row.pop("seconds")
    return last


@pytest.mark.slow
def test_two_processes_train_one_model_that_loads_in_one_process(
    tmp_path, monkeypatch, trained_on_two
) -> None:
    trained, out = trained_on_two
    copy_tree(trained, tmp_path)  # a copy: the test writes into it
    monkeypatch.chdir(tmp_path)
    assert out.count("best epoch") == 1, out  # rank 0 alone prints
    assert "2 processes on cpu" in out

    ranks = [torch.load(f"weights-rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name, tensor in ranks[0].items():  # buffers too: batch-norm statistics
        assert torch.equal(tensor, ranks[1][name]), name
    # ... and each rank draws its own random numbers (dropout masks, noise).
    draws = [torch.load(f"draw-rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert not torch.equal(*draws)

    # One run, written once: no second run folder, no temporary files, the weights of rank 0.
    assert [p.name for p in CHECKPOINTS.iterdir()] == ["ddp"]
    folder = CHECKPOINTS / "ddp"
    assert not list(folder.glob("*.tmp*")), sorted(folder.iterdir())
    path = folder / "last.pt"
    checkpoint = load_checkpoint(path, torch.device("cpu"))
    for name, tensor in ranks[0].items():
        assert torch.equal(checkpoint["model"][name], tensor), name

    # In one process, the checkpoint scores the whole validation split as the two processes
    # did with half of it each: their sums, added across ranks, are exact.
    cfg = from_dict(checkpoint["config"], "the checkpoint")
    _, val_loader, _ = make_dataloaders(cfg)
    trainer = build(cfg)
    load_weights(trainer.task, checkpoint, path)
    val = trainer.evaluate(val_loader)
    last = checkpoint["history"][-1]
{% if cookiecutter.task == "gan" %}
    # Only fd is repeatable: the other values score fakes drawn from fresh noise.
    assert val["fd"] == pytest.approx(last["val_fd"], rel=1e-5)
{% elif not task.loss_per_sample %}
    # The metrics are exact. The Dice term of the loss scores each batch as a whole, so the
    # loss depends on how the split is batched: a process's half of it is batched differently.
    for key, value in val.items():
        tolerance = 1e-2 if key == "loss" else 1e-5
        assert value == pytest.approx(last[f"val_{key}"], rel=tolerance, abs=1e-6), key
{% else %}
    for key, value in val.items():
        assert value == pytest.approx(last[f"val_{key}"], rel=1e-5, abs=1e-6), key
{% endif %}
    assert main(["--test", str(path)]) == 0


@pytest.mark.slow
def test_a_failure_on_one_rank_stops_every_rank(workdir, tiny) -> None:
    started = time.monotonic()
    process = torchrun(workdir, [*tiny, "run_name=ddp"], env={"FAIL_ON_RANK_1": "1"})
    out, err = process.communicate(timeout=300)
    assert process.returncode != 0
    assert time.monotonic() - started < 120  # not the 10-minute collective timeout
    assert "injected failure on rank 1" in err
    assert "weights-rank0.pt" not in os.listdir(workdir)  # rank 0 did not finish either


@pytest.mark.slow
def test_a_user_error_on_one_rank_ends_every_rank_of_a_job_at_once(workdir, tiny) -> None:
    """Two launchers, as on two machines: rank 1 refuses its data (exit 2), and rank 0, already
    waiting for it, ends too instead of waiting out the collective timeout; the job's output
    holds rank 1's message."""
    started = time.monotonic()
    output = two_nodes(workdir, [*tiny, "run_name=ddp"], {"REFUSE_DATA_ON_RANK_1": "1"})
    assert time.monotonic() - started < 120, output  # not the 10-minute collective timeout
    assert "error: rank 1: cannot read its data (injected)" in output, output
    assert re.search(r"exit codes [1-9]\d* [1-9]\d*$", output, re.MULTILINE), output


@pytest.mark.slow
def test_sigterm_stops_every_rank_and_resume_ends_as_an_unbroken_run(
    workdir, capsys, trained_on_two
) -> None:
    # Stopped in the middle of the first epoch: the epoch's running sums of both ranks are saved.
    stop = {"SIGTERM_AFTER_STEP": "2"}
    process = torchrun(workdir, [*ON_TWO, "run_name=stopped"], env=stop, start_new_session=True)
    out, err = process.communicate(timeout=300)
    assert process.returncode != 0, out
    assert "SIGTERM received" in err
    last = CHECKPOINTS / "stopped" / "last.pt"
    assert f"torchrun --standalone --nproc_per_node=2 src/main.py --resume {last}" in out, out
    stopped = load_checkpoint(last, torch.device("cpu"))
    assert (stopped["epoch"], stopped["global_step"]) == (0, 2)
    # Each process's share of the rest of the epoch depends on their number: one cannot go on.
    assert main(["--resume", str(last)]) == 2
    assert "saved in the middle of an epoch by 2 training process(es)" in capsys.readouterr().err

    process = torchrun(workdir, ["--resume", str(last)])
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err
    assert f"resuming {last}" in out
    finished = load_checkpoint(last, torch.device("cpu"))
    straight = unbroken(trained_on_two)
    for name, tensor in straight["model"].items():
        assert torch.equal(finished["model"][name], tensor), name
    for row in finished["history"]:
        row.pop("seconds")
    assert finished["history"] == straight["history"]


@pytest.mark.slow
def test_two_nodes_stop_on_sigterm_and_resume_to_the_single_node_checkpoint(
    workdir, trained_on_two
) -> None:
    """Multi-node training, run for real on one machine: two launchers, stopped mid-epoch by a
    SIGTERM to the whole job, then resumed, end with the checkpoint of an unbroken two-process
    run on one node."""
    output = two_nodes(workdir, [*ON_TWO, "run_name=nodes"], {"SIGTERM_AFTER_STEP": "3"})
    assert re.search(r"exit codes [1-9]\d* [1-9]\d*$", output, re.MULTILINE), output
    assert "stopped by SIGTERM at epoch 1, step 3" in output, output
    assert "torchrun --nnodes=2 --nproc_per_node=1 <rendezvous options> src/main.py" in output
    last = workdir / CHECKPOINTS / "nodes" / "last.pt"
    stopped = load_checkpoint(last, torch.device("cpu"))
    assert (stopped["epoch"], stopped["global_step"], stopped["processes"]) == (0, 3, 2)

    output = two_nodes(workdir, ["--resume", str(last)])
    assert "exit codes 0 0" in output and f"resuming {last}" in output, output
    finished = load_checkpoint(last, torch.device("cpu"))
    one_node = unbroken(trained_on_two)
    assert finished["global_step"] == one_node["global_step"]
    for name, tensor in one_node["model"].items():
        assert torch.equal(finished["model"][name], tensor), name
    for row in finished["history"]:
        row.pop("seconds")
    assert finished["history"] == one_node["history"]


@pytest.mark.parametrize("mode", ["--overfit-batch", "--runs", "--doctor"])
def test_modes_of_one_process_are_refused_under_torchrun(mode, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([mode]) == 2
    assert "runs in one process" in capsys.readouterr().err


def test_only_rank_0_saves_a_new_runs_data_index(workdir, monkeypatch) -> None:
    # Rank 0 clears half-written files from the run's checkpoint folder as it builds its trainer;
    # another rank still writing data.json there would fail alone, and rank 0 would wait for it.
    cfg = apply_overrides(Config(), ["run_name=r"])
    saved = workdir / CHECKPOINTS / "r" / "data.json"
    with monkeypatch.context() as rank_1:
        rank_1.setattr(distributed, "is_main", lambda: False)
        assert data_index(cfg, lambda: {"rank": 1}, lambda _: None) == {"rank": 1}
    assert not saved.exists()
    assert data_index(cfg, lambda: {"rank": 0}, lambda _: None) == {"rank": 0}
    assert data_index(cfg, lambda: {"rank": "new scan"}, lambda _: None) == {"rank": 0}
    assert saved.is_file()


def test_each_rank_gets_an_equal_share_of_every_epoch(monkeypatch) -> None:
    orders = []
    for rank in (0, 1, 2):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        monkeypatch.setattr(distributed, "world_size", lambda: 3)
        sampler = EpochSampler(10, seed=0)
        sampler.set_epoch(4)
        orders.append(list(sampler))
        assert len(orders[-1]) == len(sampler) == 4  # 10 samples padded to 12
        sampler.set_epoch(4, start=1)  # resumed after one sample of this rank's share
        assert list(sampler) == orders[-1][1:]
    drawn = sorted(index for order in orders for index in order)
    assert set(drawn) == set(range(10)) and len(drawn) == 12
    single = EpochSampler(10, seed=0)
    single.set_epoch(4)
    monkeypatch.setattr(distributed, "world_size", lambda: 1)
    assert [index for order in zip(*orders, strict=True) for index in order][:10] == list(single)
