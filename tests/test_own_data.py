"""The defaults on data the template has never seen: the image-folder project's own test that
trains every default on small glyphs (see its tests/test_task.py), which CI runs here, beside the
rest of that project's suite, as it takes minutes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bakery import GLYPH_TEST, Bake


@pytest.mark.slow
def test_the_defaults_learn_small_glyphs_of_the_users_own(bake: Bake) -> None:
    project = bake(task="image_classification", dataset="image_folder")
    command = [sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", GLYPH_TEST]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout.strip().splitlines()[-1], result.stdout[-2000:]
