"""The generated project's Slurm script, submitted to a real one-node Slurm cluster that the test
starts in a temporary folder (munged, slurmctld and slurmd from the system's packages, as root):
a job preempted, or at its time limit, in the middle of an epoch is requeued,
continues its run and ends with the very checkpoint of a job that was never stopped."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bakery import Bake

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue")
# The default project's tiny run (its tests' TINY), long enough to be stopped in the middle.
RUN = ["num_samples=400", "width=8", "epochs=6", "batch_size=32", "log_every=2"]
RUN += ["log_images_every=0", "checkpoint_every_steps=3"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A one-node Slurm cluster of this machine's cores; yields the environment its commands
    need (SLURM_CONF, and this interpreter's folder first on PATH for the jobs' torchrun)."""
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing or os.geteuid() != 0:
        why = f"{', '.join(missing)} not installed" if missing else "not root"
        pytest.skip(f"a Slurm cluster cannot start here ({why}); .ci/run installs Slurm")
    # One cluster on this machine at a time: pytest's workers may split this module's tests.
    lock = open(Path(tempfile.gettempdir()) / "template-slurm-tests.lock", "a")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, after the teardown
    root = tmp_path_factory.mktemp("slurm")
    for folder in ("state", "spool", "munge"):
        (root / folder).mkdir()
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    socket_path = root / "munge" / "munge.socket"
    munge = [f"--key-file={key}", f"--socket={socket_path}", f"--pid-file={root}/munged.pid"]
    munge += [f"--log-file={root}/munged.log", f"--seed-file={root}/munged.seed"]
    subprocess.run(["munged", "--force", *munge], check=True)
    host = socket.gethostname()
    conf = root / "slurm.conf"
    conf.write_text(
        f"ClusterName=test\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\n"
        # Job ids of their own: the script derives its rendezvous port and id from them, and a
        # second cluster (another pytest worker's) must not share them.
        f"FirstJobId={random.randint(1, 10**6)}\n"
        f"SlurmctldPort={free_port()}\nSlurmdPort={free_port()}\n"
        f"AuthType=auth/munge\nAuthInfo=socket={socket_path}\nCredType=cred/munge\n"
        f"StateSaveLocation={root}/state\nSlurmdSpoolDir={root}/spool\n"
        f"SlurmctldPidFile={root}/slurmctld.pid\nSlurmdPidFile={root}/slurmd.pid\n"
        f"SlurmctldLogFile={root}/slurmctld.log\nSlurmdLogFile={root}/slurmd.log\n"
        "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
        "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nMpiDefault=none\n"
        "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
        "ReturnToService=2\n"
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN\n"
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for daemon in ("slurmctld", "slurmd"):
        subprocess.run([daemon, "-f", str(conf)], check=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while "idle" not in run(["sinfo", "-h", "-o", "%T"], env):
            assert time.monotonic() < deadline, (root / "slurmctld.log").read_text()[-2000:]
            time.sleep(0.5)
        yield env
    finally:
        subprocess.run(["scancel", "--full", "--user=root"], env=env, capture_output=True)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = root / f"{name}.pid"
            if pid.exists():
                os.kill(int(pid.read_text()), signal.SIGTERM)
        lock.close()


def run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


def job_state(job: str, env: dict[str, str]) -> str:
    """PENDING, RUNNING, ... while the job is known to the queue, "" once it has left it."""
    return run(["squeue", "-h", "-j", job, "-o", "%T"], env).strip()


def on_this_machine(script: Path, *changes: str) -> None:
    """Change only the resource lines of a generated Slurm script: no GPU here, a core for each
    task, and the `changes` (e.g. "--array=0-1")."""
    lines = []
    for line in script.read_text().splitlines():
        option = line.removeprefix("#SBATCH ").split("=")[0].split()[0] if line else ""
        if line.startswith("#SBATCH --gpus-per-"):
            continue
        if option == "--cpus-per-task":
            line = "#SBATCH --cpus-per-task=1"
        line = next((f"#SBATCH {c}" for c in changes if c.split("=")[0] == option), line)
        lines.append(line)
    script.write_text("\n".join(lines) + "\n")


def saved_twice(run_folder: Path) -> bool:
    return len(list(run_folder.glob("step-*.pt"))) >= 2


def signalled(pid: int) -> bool:
    """Whether paused process `pid` got a SIGTERM: waiting for it, or (Slurm sends SIGCONT
    first) running again or gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return True
    fields = dict(line.split(":\t", 1) for line in status)
    waiting = int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16)
    return not fields["State"].startswith("T") or bool(waiting >> (signal.SIGTERM - 1) & 1)


def wait_for(condition, what: str, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_stopped_jobs_requeue_and_end_as_an_unbroken_one(bake: Bake, slurm) -> None:
    """Two jobs stopped in the middle of an epoch: one preempted (`scontrol requeue`: Slurm
    requeues it), one at its time limit (`--time=2 --signal=TERM@60`: Slurm sends SIGTERM a
    minute before the limit, the script requeues the job). Both continue their run and end with
    the checkpoint of a job never stopped; a job whose run fails is not started again."""
    project = bake()
    on_this_machine(project / "slurm" / "train.sbatch")

    def submit(*overrides: str, options: tuple[str, ...] = ()) -> str:  # as the README says
        command = ["sbatch", "--parsable", *options, "slurm/train.sbatch", *overrides]
        return run(command, slurm, project).strip()

    checkpoints = project / "models" / "checkpoints" / "default"
    logs = project / "results" / "logs"
    preempted = submit(*RUN)
    limited = submit(*RUN, options=("--time=2", "--signal=TERM@60"))
    # Each is stopped as soon as it has saved twice (mid-epoch: every third step). The run of
    # the limited job would end before Slurm's signal (which comes at a tick of its timer, up
    # to 30 s after the minute): it is paused (SIGSTOP) until the signal waits for it.
    unstopped = [preempted, limited]
    deadline = time.monotonic() + 240
    while unstopped:
        assert time.monotonic() < deadline, f"jobs {unstopped} never saved twice"
        for job in [job for job in unstopped if saved_twice(checkpoints / f"slurm-{job}")]:
            if job == preempted:
                run(["scontrol", "requeue", job], slurm)  # as a preemption does
            else:
                record = json.loads((logs / "default" / f"slurm-{job}" / "run.json").read_text())
                pid = record["sessions"][-1]["pid"]
                os.kill(pid, signal.SIGSTOP)
            unstopped.remove(job)
        time.sleep(0.1)
    wait_for(lambda: signalled(pid), "the time limit's SIGTERM", 150)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
    for job in (preempted, limited):
        wait_for(lambda: job_state(job, slurm) == "PENDING", f"job {job} back in the queue")  # noqa: B023
        # Slurm holds a requeued job back for two minutes; here it may start again at once.
        run(["scontrol", "update", f"JobId={job}", "StartTime=now"], slurm)
    unbroken, failing = submit(*RUN), submit(*RUN, "epochs=0")
    jobs = (preempted, limited, unbroken, failing)

    def ended() -> bool:  # squeue may list no job for a moment while one is requeued
        started_again = all(
            "start 2 of" in (logs / f"slurm-{job}.out").read_text() for job in (preempted, limited)
        )
        return started_again and not any(job_state(job, slurm) for job in jobs)

    wait_for(ended, "every job to end, the stopped ones after a second start")

    for job in (preempted, limited):
        log = (logs / f"slurm-{job}.out").read_text()
        assert f"start 2 of job {job}: python src/main.py --resume" in log, log[-3000:]
    assert "DUE TO JOB REQUEUE" in (logs / f"slurm-{preempted}.out").read_text()
    assert f"requeueing job {limited}" in (logs / f"slurm-{limited}.out").read_text()
    failed = (logs / f"slurm-{failing}.out").read_text()
    assert "error: epochs must be >= 1, got 0" in failed and "start 2 of" not in failed
    ends = {
        job: torch.load(checkpoints / f"slurm-{job}" / "last.pt", weights_only=True)
        for job in (preempted, limited, unbroken)
    }
    for job in (preempted, limited):
        assert ends[job]["global_step"] == ends[unbroken]["global_step"] == 54
        for name, weights in ends[job]["model"].items():
            assert torch.equal(weights, ends[unbroken]["model"][name]), (job, name)
        histories = [[{**row, "seconds": 0} for row in ends[j]["history"]] for j in (job, unbroken)]
        assert histories[0] == histories[1]
        # One run folder for the job, whose TensorBoard steps are each logged once.
        events = EventAccumulator(str(logs / "default" / f"slurm-{job}"))
        events.Reload()
        logged = [event.step for event in events.Scalars("train/loss_step")]
        assert logged == sorted(set(logged)) and logged
    assert sorted(path.name for path in checkpoints.iterdir()) == sorted(
        f"slurm-{job}"
        for job in (preempted, limited, unbroken)  # the failed run wrote none
    )


def test_a_job_of_two_tasks_trains_as_two_processes_on_one_machine(bake: Bake, slurm) -> None:
    """Two "machines": two tasks on the one node, one torchrun each, meeting at the c10d
    rendezvous the script sets up; the run ends with the checkpoint of a two-process torchrun run
    on one machine."""
    project = bake()
    on_this_machine(project / "slurm" / "train.sbatch", "--ntasks-per-node=2")
    env = slurm | {"OMP_NUM_THREADS": "1"}  # as torchrun sets for several processes on one node
    job = run(["sbatch", "--parsable", "slurm/train.sbatch", *RUN], env, project).strip()
    local = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run([*local, "src/main.py", *RUN, "run_name=local"], env, project)
    wait_for(lambda: not job_state(job, slurm), "the job to end")
    log = (project / "results" / "logs" / f"slurm-{job}.out").read_text()
    assert f"run default/slurm-{job} on 2 processes" in log, log[-3000:]
    checkpoints = project / "models" / "checkpoints" / "default"
    ends = [
        torch.load(checkpoints / name / "last.pt", weights_only=True)
        for name in (f"slurm-{job}", "local")
    ]
    assert ends[0]["processes"] == ends[1]["processes"] == 2
    for name, weights in ends[1]["model"].items():
        assert torch.equal(ends[0]["model"][name], weights), name
    histories = [[{**row, "seconds": 0} for row in end["history"]] for end in ends]
    assert histories[0] == histories[1]


def test_a_job_array_of_tune_workers_ends_with_exactly_n_trials(bake: Bake, slurm) -> None:
    """Two --tune workers as a job array sharing the project's journal: the one training trial
    0 is cancelled in the middle of it, the other trains that trial on from its checkpoint, and
    the study ends with exactly the trials asked for."""
    import optuna  # noqa: PLC0415 (only this test reads the study)

    project = bake()
    on_this_machine(project / "slurm" / "tune.sbatch", "--array=0-1")
    # Five trials: after the cancel, the other worker still looks for a trial more than once.
    search = ["5", *RUN[:-1], "epochs=3", "pruner=none", "lr=1e-4:1e-2:log"]
    job = run(["sbatch", "--parsable", "slurm/tune.sbatch", *search], slurm, project).strip()
    journal = project / "results" / "studies.journal"
    first = project / "models" / "checkpoints" / "default" / "trial-0" / "last.pt"
    wait_for(lambda: first.exists(), "trial 0's first checkpoint")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    study = optuna.load_study(study_name="default", storage=storage)
    pid = int(study.get_trials()[0].user_attrs["worker"].rpartition(":")[2])
    environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    task = next(v for v in environment if v.startswith(b"SLURM_ARRAY_TASK_ID=")).split(b"=")[1]
    run(["scancel", f"{job}_{task.decode()}"], slurm)  # its worker saves trial 0 and stops
    wait_for(lambda: not job_state(job, slurm), "both workers to end")

    trials = optuna.load_study(study_name="default", storage=storage).get_trials()
    assert [trial.state.name for trial in trials] == ["COMPLETE"] * 5
    record = json.loads((project / "results/logs/default/trial-0/run.json").read_text())
    assert len(record["sessions"]) == 2  # trained on from its checkpoint, not started again
    logs = project / "results" / "logs"
    taken = "trial 0 was left by its worker"
    assert any(taken in path.read_text() for path in logs.glob(f"slurm-{job}_*.out"))
