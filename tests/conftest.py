"""Fixtures for baking the template: default answers, custom answers, hooks on or off."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bakery import TEMPLATE, Bake, bake_into

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel workers each run generated projects' training in subprocesses; torch's default of
    # one thread per core would oversubscribe the cores, and its spinning threads then waste most
    # of the time. One thread each keeps every core busy with useful work.
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture
def bake(tmp_path: Path) -> Bake:
    """`bake(hooks=False, **answers)`: a fresh project in this test's temporary folder."""

    def _bake(hooks: bool = False, template: Path = TEMPLATE, **answers) -> Path:
        return bake_into(tmp_path / "out", template=template, hooks=hooks, **answers)

    return _bake


@pytest.fixture
def template_copy(tmp_path: Path) -> Path:
    """A copy of the template that a test may break on purpose."""
    copy = tmp_path / "template"
    shutil.copytree(
        TEMPLATE, copy, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*cache*")
    )
    return copy


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (the order is otherwise kept): with two workers, a long test that starts
    last would run alone on one core while the other waits."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
