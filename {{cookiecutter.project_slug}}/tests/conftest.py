"""Shared fixtures: every test runs in its own folder with a tiny, fast configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import TINY, make_data_folder


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
