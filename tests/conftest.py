"""Fixtures for baking the template: default answers, custom answers, hooks on or off."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
CHOICES = {
    key: value
    for key, value in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()
    if isinstance(value, list)
}

Bake = Callable[..., Path]


def bake_into(output_dir: Path, template: Path = TEMPLATE, hooks: bool = False, **answers) -> Path:
    """Generate a project with `answers` (defaults for the rest); returns its folder."""
    return Path(
        cookiecutter(
            str(template),
            no_input=True,
            extra_context=answers,
            output_dir=str(output_dir),
            accept_hooks=hooks,
        )
    )


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
