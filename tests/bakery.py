"""Baking the template from tests: where it is, its choices, and a one-call bake."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text())
CHOICES = {key: value for key, value in CONTEXT.items() if isinstance(value, list)}
# Every (task, dataset) pair the template generates; the pre-gen hook refuses the others.
COMBINATIONS = [
    {"task": task, "dataset": dataset}
    for task in CHOICES["task"]
    for dataset in CONTEXT["_datasets"][task]
]
# The image-folder classifier's test that trains every default on glyphs for minutes: CI runs it
# on its own (test_own_data.py), beside that project's suite rather than inside it.
GLYPH_TEST = "tests/test_task.py::test_the_defaults_learn_small_glyphs_that_differ_by_layout"

Bake = Callable[..., Path]


def block_downloads(monkeypatch) -> None:
    """Send this process's and its children's web requests to a closed local port, so that
    nothing a test starts can download anything, whether or not this machine is online."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


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
