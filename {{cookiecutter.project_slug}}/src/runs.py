"""The record of every run, and the workflows that make several runs: cross-validation and
sweeps (tune.py: searches).

Each run's log folder, results/logs/<experiment>/<run>/, explains the run:
- `config.json`: the full resolved config. `python src/main.py --config <it>` starts from it.
- `run.json`: the command line, the code version (git commit, uncommitted changes, saved as
  `uncommitted.patch`), library versions, device, start and end times, duration and status:
  running, finished, pruned (--tune ended it early), stopped (a signal; resumable) or crashed (an
  error, or a process that died).
- `metrics.csv`: one row per epoch, appended after every epoch.
- `metrics.json`: the best and the last epoch, written when the run ends.
`python src/main.py --runs` turns them into one table and writes results/runs.csv (run_table.py).

The workflows train each of their runs with the function main.py gives them (`fit` or `train`).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

import distributed
from checks import add_hint
from config import (
    Config,
    ConfigError,
    UserError,
    apply_overrides,
    from_dict,
    overrides_without,
    to_dict,
)
from run_table import collect_runs, format_table, ranked, read_json, runs_csv_path, save_runs_csv
from utils import RunPaths, atomic_save, checkpoint_config, load_checkpoint, new_run_name

if TYPE_CHECKING:
    from train import Trainer

# Trains one run of a config (from a checkpoint and its path, if given): the exit code, the trainer
Fit = Callable[..., tuple[int, "Trainer"]]
# Trains what a config asks for, given the overrides of the command line: the exit code
Train = Callable[[Config, list[str]], int]

PROJECT = Path(__file__).resolve().parent.parent  # the folder whose git history versions the code
LIBRARIES = (
    *("torch", "torchvision", "torchmetrics", "numpy", "tensorboard", "tqdm", "matplotlib"),
    "optuna",
)

# What every run this process starts is recorded with (see `record_context`).
_context: dict[str, Any] = {"command": ["python", "src/main.py"], "sweep": None, "trial": None}


def record_context(
    argv: list[str] | None = None, sweep: str | None = None, trial: dict | None = None
) -> None:
    """Set what the records of the runs this process starts will say: the command line (`main`
    sets it), the sweep they belong to (`--sweep` sets it) or the study and trial number they
    are (`--tune` sets it)."""
    if argv is not None:
        _context["command"] = ["python", "src/main.py", *argv]
    _context["sweep"] = sweep
    _context["trial"] = trial


def save_json(data: Any, path: Path) -> None:
    """Write `data` as indented JSON, atomically: readers see the old file or the new one."""
    text = json.dumps(data, indent=2) + "\n"
    atomic_save(text, path, write=lambda obj, file: file.write(obj.encode()))


def load_config_file(path: Path, overrides: list[str]) -> Config:
    """The config saved as `path` (a run's config.json) with `overrides` on top, as a new run:
    its run_name is cleared, so it gets a fresh folder instead of replacing the old run."""
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"--config {path}: no such file. Pass a run's config.json, e.g. "
            "results/logs/<experiment>/<run>/config.json (python src/main.py --runs lists runs)."
        ) from None
    except (OSError, ValueError, RecursionError) as error:  # the last: JSON nested too deeply
        raise ConfigError(
            f"--config {path} is not a readable JSON config ({error}). Pass a config.json that a "
            "run of this project wrote."
        ) from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path} holds no config: it is not a JSON object.")
    cfg = from_dict({**values, "run_name": "", "overwrite": False}, f"--config {path}")
    return apply_overrides(cfg, overrides)


class RunLock:
    """While held, the run is this process's: a second process that trains, resumes or sweeps
    into the same run is refused, instead of mixing its checkpoints and records with the first's.

    The lock file, .<run>.lock beside the run's checkpoint folder, names its holder (pid and
    host); the lock itself is the kernel's (flock), which ends with the holder's process however
    it ends, so a file a killed process left behind is taken over with a note. Under torchrun,
    rank 0 holds it for every process.
    """

    def __init__(self, cfg: Config, run: RunPaths) -> None:
        self.name = f"{cfg.experiment}/{cfg.run_name}"
        self.path = run.checkpoints.with_name(f".{run.checkpoints.name}.lock")
        self.file: IO[str] | None = None
        # The folders the lock makes, deepest first: removed again if the run leaves them empty
        folders = (self.path.parent, *self.path.parent.parents)
        self.made = [folder for folder in folders if not folder.exists()]

    def __enter__(self) -> RunLock:
        if not distributed.is_main():
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while self.file is None:
            file = self.path.open("a+")
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                holder = file.read().strip() or "a process that is starting"
                file.close()
                raise ConfigError(
                    f"run {self.name} is being trained by {holder}: two processes in one run "
                    "would mix their checkpoints. Wait for it to end (or stop it), or choose "
                    "another run_name."
                ) from None
            if self.path.exists() and self.path.stat().st_ino == os.fstat(file.fileno()).st_ino:
                self.file = file
            else:  # its holder removed it as we opened it: lock the next one
                file.close()
        self.file.seek(0)
        left = self.file.read().strip()
        if left:
            print(f"note: took over the lock of run {self.name} from {left}, which is gone")
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self.file.flush()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.file is not None:
            self.path.unlink(missing_ok=True)
            self.file.close()
            self.file = None
            for folder in self.made:  # a refused run leaves nothing behind
                if any(folder.iterdir()):
                    break
                folder.rmdir()


class RunRecord:
    """The run.json of one run, written when it starts and again when it ends; under torchrun,
    by rank 0 alone (the other processes' records write nothing)."""

    def __init__(self, run: RunPaths, data: dict[str, Any] | None) -> None:
        self.run = run
        self.data = data
        self.session = data["sessions"][-1] if data else {}

    @classmethod
    def start(cls, cfg: Config, run: RunPaths, trainer: Trainer) -> RunRecord:
        """Record a run that starts, or a session that continues it (--resume): the earlier
        sessions' records are kept, and each session has its own command and code version."""
        if not distributed.is_main():
            return cls(run, None)
        run.logs.mkdir(parents=True, exist_ok=True)
        before = read_json(run.logs / "config.json") or {}  # a resumed run's settings until now
        save_json(to_dict(cfg), run.logs / "config.json")
        previous = read_json(run.logs / "run.json") or {}
        sessions = previous.get("sessions", [])
        number = len(sessions) + 1
        patch = run.logs / ("uncommitted.patch" if number == 1 else f"uncommitted-{number}.patch")
        now = datetime.now().astimezone()
        session = {
            "command": shlex.join(_context["command"]),
            "started": now.isoformat(timespec="seconds"),
            "ended": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "device": describe_device(trainer.device),
            "code": code_version(PROJECT, patch),
            # What this session changed (the settings that may change on --resume)
            "changed": {
                key: {"from": before[key], "to": value}
                for key, value in to_dict(cfg).items()
                if key in before and before[key] != value
            },
        }
        data = {
            "experiment": cfg.experiment,
            "run": cfg.run_name,
            "status": "running",
            "monitor": f"val_{trainer.monitor}",  # picks best.pt
            "higher_is_better": trainer.higher,
            "sweep": previous.get("sweep", _context["sweep"]),
            "trial": previous.get("trial", _context["trial"]),  # {"study": ..., "number": ...}
            "started": previous.get("started", session["started"]),
            "ended": None,
            "duration_s": previous.get("duration_s", 0.0),
            "error": None,
            "python": platform.python_version(),
            "libraries": library_versions(),
            "sessions": [*sessions, session],
        }
        record = cls(run, data)
        record.save()
        return record

    def end(self, status: str, trainer: Trainer, error: str = "") -> None:
        """Record how this session ended, and the run's final metrics (metrics.json)."""
        if self.data is None:
            return
        now = datetime.now().astimezone()
        started = datetime.fromisoformat(self.session["started"])
        self.session["ended"] = now.isoformat(timespec="seconds")
        self.data.update(
            status=status,
            ended=self.session["ended"],
            duration_s=round(self.data["duration_s"] + (now - started).total_seconds(), 1),
            error=error or None,
        )
        self.save()
        if trainer.history:
            save_json(
                {
                    "monitor": self.data["monitor"],
                    "best_epoch": trainer.best_epoch(),
                    "last_epoch": trainer.history[-1],
                },
                self.run.logs / "metrics.json",
            )

    def save(self) -> None:
        save_json(self.data, self.run.logs / "run.json")

    def save_text(self, name: str, text: str) -> None:
        """Keep `text` beside the record, as `name` (e.g. the model summary)."""
        if self.data is not None:
            (self.run.logs / name).write_text(text)


def describe_device(device: torch.device) -> str:
    """`cuda:0 (NVIDIA H100 80GB HBM3)`, or `cpu (x86_64, 16 cores)`."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.machine()}, {os.cpu_count()} cores)"


def library_versions() -> dict[str, str]:
    """The installed versions of the libraries the project uses."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_version(root: Path, patch: Path) -> dict[str, Any]:
    """The git commit of `root`'s repository and whether the tree was dirty; uncommitted changes
    to tracked files are saved as `patch`, and untracked files are listed by name."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):  # no git installed, or a hung file system
            return None
        return result.stdout if result.returncode == 0 else None

    if (git("rev-parse", "--is-inside-work-tree") or "").strip() != "true":
        return {"git": "not a git repository"}
    commit = (git("rev-parse", "HEAD") or "").strip() or None
    untracked = (git("ls-files", "--others", "--exclude-standard") or "").splitlines()
    diff = git("diff", "HEAD", "--binary") if commit else git("diff", "--cached", "--binary")
    dirty = bool(diff or untracked)
    code: dict[str, Any] = {"commit": commit or "no commits yet", "dirty": dirty}
    if diff:
        patch.write_text(diff)
        code["patch"] = patch.name
    if untracked:
        code["untracked"] = untracked
    return code


def sweep_grid(axes: list[str]) -> list[list[str]]:
    """The overrides of every run of a sweep: one per combination of the axes' values.

    `lr=1e-4,3e-4` is an axis of two values. A key whose value is itself a comma-separated list
    separates its alternatives with ';' instead: `features=a,b;a,c`.
    """
    keys: list[str] = []
    choices: list[list[str]] = []
    for axis in axes:
        key, sep, text = axis.partition("=")
        key = key.strip()
        values = [v.strip() for v in text.split(";" if ";" in text else ",")]
        if not sep or not key or not all(values):
            raise ConfigError(
                f"cannot read the sweep axis {axis!r}: each looks like key=value1,value2,... "
                "e.g. --sweep lr=1e-4,3e-4,1e-3 batch_size=32,64."
            )
        if key in keys:
            raise ConfigError(f"{key} is swept twice; give all its values in one axis.")
        if len(set(values)) < len(values):
            raise ConfigError(f"the sweep axis {axis} lists a value twice: a run would repeat.")
        if key in ("run_name", "experiment"):
            raise ConfigError(
                f"{key} cannot be swept: the sweep names its runs <run_name>-1, -2, ... in one "
                f"experiment. Give {key}= before --sweep (the values after it are its axes)."
            )
        keys.append(key)
        choices.append(values)
    return [
        [f"{key}={value}" for key, value in zip(keys, combination, strict=True)]
        for combination in itertools.product(*choices)
    ]


def cross_validate(cfg: Config, overrides: list[str], fit: Fit) -> int:
    """folds=k: one run per fold, <name>-fold1 to -fold<k>, each validating on its own k-th of the
    non-test samples; then the mean ± std of their best epochs' val metrics, saved as cv.json.

    The same command again continues an interrupted cross-validation: finished folds are kept and
    the interrupted one resumes from its last.pt (overwrite=true trains them all anew).
    """
    name = cfg.run_name or new_run_name(cfg)
    best = []
    for fold in range(1, cfg.folds + 1):
        fold_cfg = apply_overrides(cfg, [f"fold={fold}", f"run_name={name}-fold{fold}"])
        last = RunPaths.for_run(fold_cfg).checkpoints / "last.pt"
        checkpoint = None
        if last.exists() and not cfg.overwrite:
            checkpoint = load_checkpoint(last, torch.device("cpu"))
            refuse_other_settings(checkpoint_config(checkpoint, last), fold_cfg, last)
        print(f"\nfold {fold} of {cfg.folds}: run {cfg.experiment}/{fold_cfg.run_name}")
        exit_code, trainer = fit(fold_cfg, checkpoint, last if checkpoint else None)
        if exit_code:
            kept = overrides_without(overrides, ("run_name",))
            print(
                "(that finishes this fold alone); to finish the cross-validation, run instead:\n"
                f"    python src/main.py {' '.join([*kept, f'run_name={name}'])}"
            )
            return exit_code
        best.append(trainer.best_epoch())

    keys = [key for key in best[0] if key.startswith("val_")]
    values = {key: torch.tensor([row[key] for row in best], dtype=torch.float64) for key in keys}
    summary = {key: (v.mean().item(), v.std().item()) for key, v in values.items()}
    print(f"\ncross-validation, {cfg.folds} folds (each fold's best epoch):")
    for key, (mean, std) in summary.items():
        folds = ", ".join(f"{v:.4f}" for v in values[key].tolist())
        print(f"  {key:<14} {mean:.4f} ± {std:.4f}   ({folds})")
    saved = RunPaths.for_run(apply_overrides(cfg, [f"run_name={name}"])).logs / "cv.json"
    record = {
        "folds": cfg.folds,
        "runs": [f"{name}-fold{fold}" for fold in range(1, cfg.folds + 1)],
        "best_epochs": best,
        "mean": {key: mean for key, (mean, _) in summary.items()},
        "std": {key: std for key, (_, std) in summary.items()},
    }
    save_json(record, saved)
    print(f"results  {saved}")
    return 0


def sweep(cfg: Config, overrides: list[str], axes: list[str], train: Train) -> int:
    """--sweep: one training per combination of the axes' values, one after the other, as runs
    <name>-1, <name>-2, ...; a run that fails is recorded as crashed and the sweep goes on. Ends
    with the table of the sweep's runs, best first; exit code 1 if any run failed."""
    grid = sweep_grid(axes)
    configs = [apply_overrides(cfg, combination) for combination in grid]  # all checked first
    name = cfg.run_name or f"sweep-{new_run_name(cfg)}"
    configs = [apply_overrides(c, [f"run_name={name}-{i}"]) for i, c in enumerate(configs, 1)]
    for run_cfg in configs:
        refuse_to_replace(run_cfg)  # now, not after the runs before it have trained
    print(f"sweep {cfg.experiment}/{name}: {len(grid)} runs")
    failed = 0
    record_context(sweep=name)
    try:
        for i, (combination, run_cfg) in enumerate(zip(grid, configs, strict=True), 1):
            print(f"\nsweep run {i} of {len(grid)}: {' '.join(combination)}")
            try:
                exit_code = train(run_cfg, [*overrides, *combination])
            except UserError as error:
                exit_code = error.exit_code
                print(f"error: {error}", file=sys.stderr)
            except Exception as error:  # a bug in this run's settings; the others may be fine
                add_hint(error)
                traceback.print_exc()
                exit_code = 1
            if exit_code >= 128:  # stopped by a signal: the user wants the sweep to end
                print(f"sweep stopped after {i - 1} of {len(grid)} runs.")
                return exit_code
            if exit_code:
                failed += 1
                print(f"sweep run {i} failed (recorded as crashed); going on with the next.")
    finally:
        record_context(sweep=None)
    rows = collect_runs(Path(cfg.log_dir))
    ours = ranked([row for row in rows if row["sweep"] == name])
    print(f"\nsweep {cfg.experiment}/{name}, best first:\n{format_table(ours)}")
    path = runs_csv_path(cfg)
    save_runs_csv(rows, path)
    print(f"\nevery run: {path}; compare them: tensorboard --logdir {cfg.log_dir}")
    return 1 if failed else 0


def refuse_other_settings(saved: Config, cfg: Config, checkpoint_path: Path) -> None:
    """Stop a cross-validation from mixing in a fold run that was trained with other settings."""
    old, new = to_dict(saved), to_dict(cfg)
    changed = [key for key in new if old[key] != new[key] and key != "overwrite"]
    if changed:
        shown = ", ".join(f"{key} {old[key]!r} (now {new[key]!r})" for key in changed)
        raise ConfigError(
            f"{checkpoint_path} is a fold of an earlier cross-validation with other settings: "
            f"{shown}. Choose another run_name, or pass overwrite=true to train every fold anew."
        )


def refuse_to_replace(cfg: Config) -> None:
    """Stop a new run whose name already has checkpoints, unless overwrite=true."""
    run = RunPaths.for_run(cfg)
    if (run.checkpoints / "last.pt").exists() and not cfg.overwrite:
        raise ConfigError(
            f"run {cfg.experiment}/{cfg.run_name} already has checkpoints in "
            f"{run.checkpoints}. Continue it with --resume {run.checkpoints / 'last.pt'}, "
            "choose another run_name, or replace it with overwrite=true."
        )
