{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task %}
"""Shared fixtures: every test runs in its own folder with a tiny, fast configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

# Small enough for a CPU test to train in a second or two, big enough to learn something.
TINY = [{{ task.tiny_overrides }}, "epochs=2", "batch_size=32", "log_every=2"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project-like folder as the current directory: outputs land there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    return tmp_path


@pytest.fixture
def tiny() -> list[str]:
    """Overrides for a run that takes seconds on a CPU."""
    return list(TINY)
