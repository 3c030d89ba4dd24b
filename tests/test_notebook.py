"""The sandbox notebook of every task runs top to bottom in a real Jupyter kernel, on a project
that has just trained once."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from bakery import CHOICES, Bake


def tiny_overrides(project) -> list[str]:
    """The generated tests' settings for a run of seconds (TINY in tests/helpers.py)."""
    code = "import sys; sys.path[:0] = ['src', 'tests']; from helpers import TINY; print(*TINY)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


@pytest.mark.slow
@pytest.mark.parametrize("task", CHOICES["task"])
def test_the_sandbox_notebook_runs_on_a_freshly_trained_project(bake: Bake, task: str) -> None:
    project = bake(task=task)
    train = [sys.executable, "src/main.py", *tiny_overrides(project), "run_name=first"]
    trained = subprocess.run(train, cwd=project, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-3000:]

    notebook = nbformat.read(project / "sandbox" / "explore.ipynb", as_version=4)
    nbformat.validate(notebook)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(project / "sandbox")}},  # where Jupyter starts it
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert len(pictures) >= 3  # the data, the predictions beside their targets, the curves
    assert "run default/first" in text  # the run it trained, found as the newest
