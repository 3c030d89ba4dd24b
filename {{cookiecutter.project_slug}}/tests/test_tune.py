"""--tune: an Optuna study of tiny trials, which finds a better lr, prunes, survives SIGKILL, and is
shared by worker processes through its journal file or a real PostgreSQL server."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileSymlinkLock
from optuna.trial import TrialState

from config import Config, ConfigError
from helpers import CHECKPOINTS, SRC, start, wait_for_checkpoint
from main import main
from tune import (
    claim_lock,
    open_storage,
    read_dimension,
    report_saved_epochs,
    search_space,
    split_overrides,
)

JOURNAL = Path("results/studies.journal")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def study(storage: str | optuna.storages.BaseStorage = "") -> optuna.Study:
    """The experiment's study, read back from its storage (the journal file by default)."""
    if not storage:
        backend = optuna.storages.journal.JournalFileBackend(str(JOURNAL))
        storage = optuna.storages.JournalStorage(backend)
    return optuna.load_study(study_name="default", storage=storage)


def sessions(trial: int) -> int:
    """How many sessions trained the run of `trial`: more than one only if it was resumed."""
    return len(
        json.loads(Path(f"results/logs/default/trial-{trial}/run.json").read_text())["sessions"]
    )


def test_ranges_and_lists_on_the_command_line_make_the_search_space() -> None:
    plain, ranges = split_overrides(
        ["lr=1e-4:1e-1:log", "batch_size=16,32", "epochs=3", "data_dir=a,b", "seed=2"]
    )
    assert plain == ["epochs=3", "data_dir=a,b", "seed=2"]  # a path may hold commas
    assert read_dimension("lr", "1e-4:1e-1:log").distribution() == FloatDistribution(
        1e-4, 0.1, log=True
    )
    assert read_dimension("batch_size", "16,32").distribution() == CategoricalDistribution((16, 32))
    assert read_dimension("epochs", "2:8:2").distribution() == IntDistribution(2, 8, step=2)
    space = search_space(Config(), ranges, [])
    assert list(space) == ["lr", "batch_size"]
    declared = search_space(Config(), [], ["batch_size"])  # config.py's, but for a fixed key
    assert "lr" in declared and "batch_size" not in declared
    with pytest.raises(ConfigError, match="the search space is empty"):
        search_space(Config(), [], list(declared) + ["batch_size"])
    for bad in ("lr=0:1", "lr=1:0.1", "lr=1e-4:1e-1:cube", "batch_size=0,8", "lr=3", "lr=1:2:3:4"):
        with pytest.raises(ConfigError):
            search_space(Config(), [tuple(bad.split("="))], [])
    with pytest.raises(ConfigError, match=r"\(0.6 of them\): it would hold one .* a high of 12"):
        read_dimension("epochs", "2:8:10")  # Optuna would only warn, and search epochs=2 alone
    with pytest.raises(ConfigError, match="does not divide its range .* or a high of 8"):
        read_dimension("epochs", "2:9:2")
    # A value and a range for one key: the range is searched, the value is the first trial's.
    both = split_overrides(["lr=1e-4:1e-1:log", "lr=3e-4"])
    assert both == (["lr=3e-4"], [("lr", "1e-4:1e-1:log")])
    assert list(search_space(Config(), both[1], ["lr"])) == ["lr"]


def test_a_study_finds_a_better_lr_than_a_bad_start(workdir, tiny, capsys) -> None:
    command = [*tiny, "lr=1e-6", "pruner=none", "--tune", "4", "lr=1e-6:1e-2:log"]
    assert main(command) == 0
    trials = study().get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 4
    assert trials[0].params == {"lr": 1e-6}  # the first trial trains the config as it is
    best = min(trials, key=lambda trial: trial.value)
    assert best.number != 0 and best.value < trials[0].value
    out = capsys.readouterr().out
    assert f"best: trial {best.number}" in out and "importance: lr" in out
    assert f"--config results/logs/default/trial-{best.number}/config.json" in out
    rows = Path("results/study-default.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[1].startswith(f"{best.number},complete,")
    record = json.loads(Path(f"results/logs/default/trial-{best.number}/run.json").read_text())
    assert record["trial"] == {"study": "default", "number": best.number}
    # The same command again: the study already holds 4 trials, so nothing trains.
    assert main(command) == 0
    assert len(study().get_trials()) == 4
    assert main(["--tune", "0", *tiny]) == 0  # the report alone, with any space
    assert "4 completed, 0 pruned" in capsys.readouterr().out


def test_a_trial_far_behind_after_one_epoch_is_pruned(workdir, tiny, capsys) -> None:
    JOURNAL.parent.mkdir(parents=True)
    queued = study_of_new_storage()
    for lr in (3e-3, 3e-3, 3e-3, 1e-9):  # an lr of 1e-9 leaves the first epoch's score as it was
        queued.enqueue_trial({"lr": lr})
    # (no first-step check: at lr=1e-9 the weights barely move, which it reports)
    assert main([*tiny, "sanity_checks=false", "--tune", "4", "lr=1e-9:1e-2:log"]) == 0
    trials = study().get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    assert len(trials[3].intermediate_values) == 1
    record = json.loads(Path("results/logs/default/trial-3/run.json").read_text())
    assert record["status"] == "pruned"
    out = capsys.readouterr().out
    assert "pruned after epoch 1" in out and "3 completed, 1 pruned" in out
    assert main(["--runs"]) == 0
    assert "default/trial-3  pruned" in capsys.readouterr().out


def study_of_new_storage() -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(JOURNAL))
    storage = optuna.storages.JournalStorage(backend)
    return optuna.create_study(study_name="default", storage=storage, direction="minimize")


def test_a_killed_search_continues_to_exactly_n_trials(workdir, tiny) -> None:
    command = [*tiny, "epochs=3", "pruner=none", "--tune", "3", "lr=1e-4:1e-2:log"]
    process = start(command)
    wait_for_checkpoint(
        CHECKPOINTS.with_name("default") / "trial-1" / "last.pt",
        process,
        lambda checkpoint: checkpoint["epoch"] >= 1,
    )
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert study().get_trials()[1].state == TrialState.RUNNING  # its worker is gone
    rerun = subprocess.run(
        [sys.executable, SRC / "main.py", *command], capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "trial 1 was left by its worker" in rerun.stdout
    trials = study().get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 3
    assert len(trials[1].intermediate_values) == 3 and sessions(1) == 2  # resumed, not restarted
    assert sessions(0) == sessions(2) == 1


def test_a_trial_whose_worker_fell_silent_on_another_machine_is_trained_on(
    workdir, tiny, capsys
) -> None:
    """A worker's pid can be checked on its own machine only: elsewhere, a trial whose worker
    stopped marking it alive for STALE_AFTER seconds is taken over; one still marked is not."""
    JOURNAL.parent.mkdir(parents=True)
    shared = study_of_new_storage()
    for worker, last_beat in (("elsewhere:123", time.time() - 301), ("elsewhere:124", time.time())):
        trial = shared.ask()
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("heartbeat", last_beat)
    assert main([*tiny, "epochs=1", "pruner=none", "--tune", "3", "lr=1e-4:1e-2:log"]) == 0
    out = capsys.readouterr().out
    assert "trial 0 was left by its worker (elsewhere, silent for over 300 s)" in out
    assert "the 1 trials that other workers run will finish the study" in out
    states = [trial.state for trial in study().get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.COMPLETE]


def test_a_resumed_trial_reports_the_epochs_its_dead_worker_saved_but_did_not() -> None:
    """A worker killed after an epoch's checkpoint and before its report: the run resumes from
    the checkpoint, and the study gets that epoch's score all the same."""
    in_memory = optuna.create_study(direction="minimize")
    trial = in_memory.ask()
    trial.report(0.9, step=1)
    saved = {
        "monitor": "loss",
        "history": [{"epoch": 1, "val_loss": 0.9}, {"epoch": 2, "val_loss": 0.7}],
    }
    report_saved_epochs(in_memory, trial, saved)
    assert in_memory.trials[0].intermediate_values == {1: 0.9, 2: 0.7}


def test_a_journal_lock_left_by_a_killed_worker_is_taken_over(workdir, tiny, monkeypatch) -> None:
    """A worker killed while it writes to the journal leaves Optuna's lock behind; the next
    command takes it over once the lock has been left alone for its grace period (30 s, here 1 s)
    instead of waiting for ever."""
    monkeypatch.setattr(JournalFileSymlinkLock.__init__, "__defaults__", (1,))
    command = [*tiny, "epochs=1", "--tune", "1", "lr=1e-4:1e-2:log"]
    assert main(command) == 0
    written = optuna.load_study(study_name="default", storage=open_storage(Config()))
    with monkeypatch.context() as dying:  # the project's storage, by a worker that dies in a write
        dying.setattr(JournalFileSymlinkLock, "release", lambda lock: None)
        written.set_user_attr("last words", "killed before it released the lock")
    command[command.index("1")] = "2"  # one more trial

    def waited_for_ever(signum: int, frame: object) -> None:
        raise TimeoutError("the search still waits for the lock")

    previous = signal.signal(signal.SIGALRM, waited_for_ever)
    signal.alarm(120)
    try:
        assert main(command) == 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert len(study().get_trials()) == 2


def test_two_workers_share_one_journal_study_and_never_run_a_trial_twice(workdir, tiny) -> None:
    command = [*tiny, "epochs=1", "pruner=none", "--tune", "6", "lr=1e-4:1e-2:log"]
    workers = [start(command) for _ in range(2)]
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
    trials = study().get_trials()
    assert sum(trial.state in FINISHED for trial in trials) == 6 and len(trials) == 6
    assert all(sessions(trial.number) == 1 for trial in trials)
    assert {trial.user_attrs["worker"] for trial in trials} == {
        f"{socket.gethostname()}:{worker.pid}" for worker in workers
    }


def test_storage_space_and_other_searches_are_refused_with_exit_2(workdir, tiny, capsys) -> None:
    port = free_port()
    bad = [
        ([f"storage=postgresql://nobody@127.0.0.1:{port}/none", "lr=1e-4:1e-2:log"], "cannot open"),
        (["lr=0:1"], "the search space lr=0:1 includes lr=0"),
        (["folds=3", "lr=1e-4:1e-2:log"], "folds=3 cross-validates"),
        (["--tune", "0", "experiment=elsewhere"], "holds no study named elsewhere"),
        (["storage=notes.txt", "lr=1e-4:1e-2:log"], "notes.txt is a file that is not a journal"),
        (["storage=data", "lr=1e-4:1e-2:log"], "storage=data is a folder; --tune's storage is"),
        (["storage=mysql://me@dbhost/studies"], "which this project takes in PostgreSQL and"),
    ]
    Path("notes.txt").write_text("my notes\n")
    for extra, message in bad:
        assert main([*tiny, "--tune", "1", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert Path("notes.txt").read_text() == "my notes\n"  # never written to
    assert main([*tiny, "epochs=1", "--tune", "1", "lr=1e-4:1e-2:log"]) == 0
    for extra, message in [
        (["lr=1e-4:1e-1:log"], "its search space is lr=1e-4:1e-2:log"),
        (["epochs=2", "lr=1e-4:1e-2:log"], "epochs=1 (here 2)"),
    ]:
        assert main([*tiny, "--tune", "2", *extra]) == 2
        assert message in capsys.readouterr().err
    assert main([*tiny, "epochs=1", "--tune", "1", "lr=0.0001:0.01:log"]) == 0  # the same space


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres() -> Iterator[str]:
    """A real PostgreSQL server in a temporary folder, for this test only; yields its URL."""
    found = shutil.which("initdb") or next(
        iter(glob.glob("/usr/lib/postgresql/*/bin/initdb")), None
    )
    if found is None:
        pytest.skip("PostgreSQL is not installed (no initdb); .ci/run installs it from apt")
    bin_dir = Path(found).parent
    user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="postgres-"))
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and there is no postgres user to run the server as")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        user = ["runuser", "-u", "postgres", "--"]
    port, data = free_port(), f"{folder}/data"

    def run(program: str, *args: str, check: bool = True) -> None:
        subprocess.run([*user, str(bin_dir / program), *args], check=check, capture_output=True)

    try:
        run("initdb", "-D", data, "-A", "trust", "-U", "tuner")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        run("pg_ctl", "-D", data, "-o", options, "-l", f"{folder}/log", "-w", "start")
        yield f"postgresql://tuner@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", data, "-m", "immediate", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_study_on_a_real_postgresql_server(workdir, tiny, postgres) -> None:
    command = [*tiny, "epochs=1", "pruner=none", f"storage={postgres}", "--tune", "4"]
    command.append("lr=1e-4:1e-2:log")
    workers = [start(command) for _ in range(2)]
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
    trials = study(postgres).get_trials()
    assert sum(trial.state in FINISHED for trial in trials) == 4 and len(trials) == 4
    assert all(sessions(trial.number) == 1 for trial in trials)
    assert len({trial.user_attrs["worker"] for trial in trials}) == 2
    assert not JOURNAL.exists()  # the study lives in the database alone


def test_trials_are_claimed_under_the_databases_lock(workdir, tiny, postgres) -> None:
    """Machines share no lock file: a worker whose logs are elsewhere still waits while another
    machine holds the study's lock in the database, then sees the trial that one claimed and
    leaves the study at N trials."""
    storage = open_storage(Config(storage=postgres))
    command = [*tiny, "epochs=1", "pruner=none", f"storage={postgres}", "--tune", "1"]
    command += ["lr=1e-4:1e-2:log", "log_dir=elsewhere/logs", "checkpoint_dir=elsewhere/models"]
    waiting = sqlalchemy.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
    with claim_lock(Config(storage=postgres), storage):  # another machine claims a trial
        worker = start(command)
        deadline = time.monotonic() + 120
        with storage.engine.connect() as connection:
            while not connection.execute(waiting).scalar():
                assert worker.poll() is None and time.monotonic() < deadline, "it did not wait"
                time.sleep(0.2)
        trial = optuna.create_study(storage=storage, study_name="default").ask()
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.set_user_attr("worker", "elsewhere:123")
        trial.set_user_attr("heartbeat", time.time())
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err[-3000:]
    assert "the 1 trials that other workers run will finish the study" in out
    assert [trial.state for trial in study(postgres).get_trials()] == [TrialState.RUNNING]


OPEN_STORAGE = "import sys; from config import Config; from tune import open_storage; "
OPEN_STORAGE += "open_storage(Config(storage=sys.argv[1]))"


def test_workers_starting_together_on_a_new_database_all_open_it(workdir, postgres) -> None:
    """Each worker creates Optuna's tables in a new database; those that collide try again."""
    server = sqlalchemy.create_engine(postgres, isolation_level="AUTOCOMMIT")
    for number in range(3):
        with server.connect() as connection:
            connection.execute(sqlalchemy.text(f"CREATE DATABASE new{number}"))
        url = f"{postgres.rsplit('/', 1)[0]}/new{number}"
        command = [sys.executable, "-c", OPEN_STORAGE, url]
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        workers = [
            subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)
        ]
        for worker in workers:
            assert worker.wait(timeout=120) == 0, worker.stderr.read()[-2000:]
    server.dispose()
