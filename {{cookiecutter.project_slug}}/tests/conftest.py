"""Shared fixtures: every test runs in its own folder with a tiny, fast configuration. The run
that many tests look at is trained once per session and copied into each of their folders."""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helpers import FINISHED, TINY, copy_tree, make_data_folder
from main import main

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n N` runs N worker processes: with torch's default of one thread per core each,
    # N workers fight over the cores and their spinning threads waste most of the time. One
    # thread each, in the runs they start too, keeps every core busy with useful work.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project-like folder as the current directory: outputs land there."""
    monkeypatch.chdir(tmp_path)
    make_data_folder(tmp_path / "data")
    return tmp_path


@pytest.fixture
def tiny() -> list[str]:
    """Overrides for a run that takes seconds on a CPU."""
    return list(TINY)


@pytest.fixture(scope="session")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`python src/main.py FINISHED`, trained once per session in a folder of its own: the
    folder, and what the run printed."""
    folder = tmp_path_factory.mktemp("finished")
    make_data_folder(folder / "data")
    printed, errors = io.StringIO(), io.StringIO()
    with inside(folder), contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        code = main(FINISHED)
    assert code == 0, errors.getvalue()[-3000:]
    time.sleep(1)  # event files sort by their creation second: a resume's come after this run's
    return folder, printed.getvalue()


@pytest.fixture
def finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_once: tuple[Path, str]
) -> str:
    """A fresh folder as `workdir`, holding a copy of the run FINISHED (run_name=r), trained to
    its end: the test may resume, damage or delete it. Returns what the run printed."""
    folder, printed = trained_once
    copy_tree(folder, tmp_path)
    monkeypatch.chdir(tmp_path)
    return printed


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """The current directory is `folder` for the duration."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
