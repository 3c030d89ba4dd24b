"""Fixtures for baking the template: default answers, custom answers, hooks on or off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bakery import TEMPLATE, Bake, bake_into


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
