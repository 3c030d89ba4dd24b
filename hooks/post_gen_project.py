"""Verify the new project: its model must memorise one batch, or generation fails.

Cookiecutter runs this file with its own interpreter, in the new project's folder. When that
interpreter can import torch, the project's own check (`python src/main.py --overfit-batch`) runs
in a subprocess; when it cannot (cookiecutter often lives in an isolated environment), a note says
how to run the check later, and generation succeeds.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROJECT_SLUG = json.loads(
    r"""
{{ cookiecutter.project_slug | tojson }}
""".strip()
)

CHECK = ["src/main.py", "--overfit-batch"]
TIMEOUT_SECONDS = 180  # cookiecutter gives hooks no timeout of their own


def torch_importable() -> bool:
    """Whether this interpreter has torch, found without paying for importing it."""
    return importlib.util.find_spec("torch") is not None


def unverified_note(project_dir: Path) -> str:
    """What to do when the check cannot run here."""
    return (
        f"NOTE: {PROJECT_SLUG} was generated but not verified: the Python running cookiecutter "
        f"({sys.executable}) cannot import torch. Verify it in the project's own environment:\n"
        f"    cd {project_dir}\n"
        "    python -m venv .venv && . .venv/bin/activate\n"
        "    pip install -r requirements.txt\n"
        "    python src/main.py --overfit-batch   # the same check also runs as part of `pytest`\n"
        "    python src/main.py --doctor          # what this environment can do, with fixes"
    )


def failure_message(output: str, reason: str) -> str:
    """Why generation fails, with the check's own diagnosis and how to keep the project."""
    return (
        f"{output.rstrip()}\n\n"
        f"ERROR: the generated project {PROJECT_SLUG} failed its one-batch overfit check "
        f"({reason}), so this template is broken for these answers. Cookiecutter deletes a "
        "project whose post-generation hook fails; to keep it for inspection, generate it again "
        "with `cookiecutter --keep-project-on-failure ...` and run `python src/main.py "
        "--overfit-batch` inside it."
    )


def run_check() -> tuple[bool, str]:
    """Run the overfit check in a subprocess; returns (passed, what it printed)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # leave no __pycache__ in the new project
    try:
        result = subprocess.run(
            [sys.executable, *CHECK],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            env=env,
        )
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode() + (error.stderr or b"").decode()
        return False, failure_message(output, f"no verdict within {TIMEOUT_SECONDS}s")
    output = result.stdout + result.stderr
    if result.returncode != 0:
        return False, failure_message(output, f"exit code {result.returncode}")
    return True, output


def main() -> int:
    if not torch_importable():
        print(unverified_note(Path.cwd()))
        return 0
    started = time.perf_counter()
    passed, output = run_check()
    if not passed:
        print(output, file=sys.stderr)
        return 1
    verdict = output.strip().splitlines()[-1]
    print(f"{PROJECT_SLUG}: {verdict} ({time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
