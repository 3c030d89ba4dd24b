"""The table of all runs (`python src/main.py --runs`, and the end of a sweep), read from what
each run leaves in its log folder: run.json, config.json and metrics.csv (see runs.py). It needs
no torch, so `--runs` answers at once.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from config import NOT_HYPERPARAMETERS, Config, ConfigError, UserError


def list_runs(cfg: Config) -> int:
    """--runs: every run recorded under log_dir with its status, the hyperparameters that differ
    between runs and its best validation score; also written to results/runs.csv."""
    if not Path(cfg.log_dir).is_dir():
        raise ConfigError(
            f"log_dir {cfg.log_dir!r} is not a folder (looked for {Path(cfg.log_dir).absolute()}), "
            "so there are no runs to list. Run from the project folder, or point log_dir= at the "
            "runs' logs."
        )
    rows = collect_runs(Path(cfg.log_dir))
    print(format_table(rows))
    path = runs_csv_path(cfg)
    save_runs_csv(rows, path)
    print(f"\n{len(rows)} runs; table saved as {path}")
    return 0


def collect_runs(log_dir: Path) -> list[dict[str, Any]]:
    """One row per run recorded under `log_dir`, oldest first."""
    rows = []
    for path in log_dir.glob("*/*/run.json"):
        record = read_json(path)
        config = read_json(path.with_name("config.json"))
        if not isinstance(record, dict) or not isinstance(config, dict):
            continue  # a record being written for the first time, or damaged: not a run yet
        history = read_metrics_csv(path.with_name("metrics.csv"))
        monitor, higher = record["monitor"], record.get("higher_is_better", False)
        scores = [row[monitor] for row in history if monitor in row]
        status = current_status(record)
        duration = record["duration_s"]
        if record["status"] == "running":  # still running, or died: count up to its last sign
            started = datetime.fromisoformat(record["sessions"][-1]["started"]).timestamp()
            signs = (path, path.with_name("metrics.csv"))
            last = max(sign.stat().st_mtime for sign in signs if sign.exists())
            duration += max(0.0, last - started) if status == "crashed" else 0.0
        rows.append(
            {
                "experiment": record["experiment"],
                "run": record["run"],
                "status": status,
                "epochs_done": len(history),
                "epochs": config.get("epochs"),
                "metric": monitor,
                "best": (max if higher else min)(scores) if scores else None,
                "higher_is_better": higher,
                "duration_s": round(duration, 1),
                "started": record["started"],
                "sweep": record.get("sweep"),
                "trial": record.get("trial"),
                "config": config,
            }
        )
    rows.sort(key=lambda row: (row["started"], row["experiment"], row["run"]))
    return rows


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    """What `save_metrics_csv` wrote; [] when the run has no finished epoch."""
    try:
        with path.open(newline="") as file:
            return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(file)]
    except (OSError, ValueError):
        return []


def current_status(record: dict[str, Any]) -> str:
    """The run's status. A "running" run whose process has died on this machine crashed without
    a chance to say so (SIGKILL, out of memory, power cut)."""
    session = record["sessions"][-1]
    if (
        record["status"] == "running"
        and session["host"] == socket.gethostname()
        and session["pid"] != os.getpid()
        and not pid_alive(session["pid"])
    ):
        return "crashed"
    return record["status"]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a zombie, ended but not yet
    collected by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    with contextlib.suppress(OSError):  # where there is /proc: its state, after its name
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    return True


def differing_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The hyperparameters whose values differ between the runs of `rows`."""
    keys = dict.fromkeys(key for row in rows for key in row["config"])
    return [
        key
        for key in keys
        if key not in NOT_HYPERPARAMETERS
        and len({json.dumps(row["config"].get(key)) for row in rows}) > 1
    ]


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best validation score first (the highest where higher is better); runs without a
    finished epoch last."""

    def key(row: dict[str, Any]) -> tuple[bool, float]:
        best = row["best"] or 0.0
        return row["best"] is None, -best if row["higher_is_better"] else best

    return sorted(rows, key=key)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The runs as an aligned text table, with the hyperparameters that differ between them."""
    if not rows:
        return "no runs recorded yet."
    varying = [key for key in differing_keys(rows) if key != "epochs"]  # in "epochs" already
    header = ["run", "status", "epochs", *varying, rows[0]["metric"] + " (best)", "duration"]
    lines = [header]
    for row in rows:
        best = "-" if row["best"] is None else f"{row['best']:.4f}"
        values = [format_value(row["config"].get(key)) for key in varying]
        lines.append(
            [
                f"{row['experiment']}/{row['run']}",
                row["status"],
                f"{row['epochs_done']}/{row['epochs']}",
                *values,
                best,
                format_duration(row["duration_s"]),
            ]
        )
    return aligned(lines)


def aligned(lines: list[list[str]]) -> str:
    """Rows of cells as text, each column as wide as its widest cell."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def save_runs_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The runs with every config key as a column, for a spreadsheet or pandas."""
    keys = list(dict.fromkeys(key for row in rows for key in row["config"]))
    fixed = ["experiment", "run", "status", "epochs_done", "metric", "best", "duration_s"]
    lines: list[list[Any]] = [[*fixed, "started", "sweep", "study", "trial", *keys]]
    for row in rows:
        config, trial = row["config"], row["trial"] or {}
        lines.append(
            [*(row[k] for k in fixed), row["started"], row["sweep"] or ""]
            + [trial.get("study", ""), trial.get("number", "")]
            + [config.get(key, "") for key in keys]
        )
    save_csv(lines, path)


def save_csv(lines: list[list[Any]], path: Path) -> None:
    """A table printed above, as CSV; replaced at once: never half a table."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(buffer.getvalue())
        os.replace(temporary, path)
    except OSError as error:
        raise UserError(
            f"cannot write {path}: {error.strerror or error}. The table above is complete; free "
            "some disk space or fix the folder's permissions to have it saved too."
        ) from None


def runs_csv_path(cfg: Config) -> Path:
    """results/runs.csv: beside the log folder."""
    return Path(cfg.log_dir).parent / "runs.csv"


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
