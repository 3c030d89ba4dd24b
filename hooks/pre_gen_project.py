"""Refuse answers that would generate a broken project, before any file is written.

Cookiecutter runs this file with its own interpreter after rendering it with Jinja; the answers
arrive through `tojson`, so quotes or backslashes in them can never change this code. Cookiecutter
creates the project's (empty) folder before this hook runs and deletes it when the hook fails; a
slug that could not name that folder (a path, or too long) was replaced by a harmless one while
the answers were read (`__project_folder_is_safe` in cookiecutter.json) and arrives here as
`_slug_as_given`, so that it is refused here with the others.
"""

import json
import keyword
import math
import os
import re
import sys
import unicodedata

ANSWERS = json.loads(
    r"""
{{ {
    "project_name": cookiecutter.project_name,
    "project_slug": cookiecutter.get("_slug_as_given", cookiecutter.project_slug),
    "author_name": cookiecutter.author_name,
    "description": cookiecutter.description,
    "task": cookiecutter.task,
    "dataset": cookiecutter.dataset,
    "datasets": cookiecutter._datasets,
} | tojson }}
""".strip()
)
PROJECT_NAME, PROJECT_SLUG = ANSWERS["project_name"], ANSWERS["project_slug"]
TASK, DATASET = ANSWERS["task"], ANSWERS["dataset"]
# The free-text answers (README.md, pyproject.toml): how long each may be, and what to type.
TEXTS = {
    "project_name": (100, "a title, e.g. 'Shape Classifier'"),
    "author_name": (100, "a name, e.g. 'Ada Lovelace'"),
    "description": (300, "one sentence on one line"),
}
MAX_SLUG = 60  # the project's folder name, well under the file systems' 255
CHECK_SECONDS_VARIABLE = "DL_WORKFLOW_CHECK_SECONDS"  # post_gen_project.py's time limit
DATASETS = ANSWERS["datasets"]  # the data sources of each task: cookiecutter.json's `_datasets`

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
# A project folder with one of these names would shadow the module on sys.path when Python runs
# from the folder above it: the standard library, what the project imports, and its own modules.
IMPORTED = {"numpy", "torch", "torchvision", "tensorboard", "tqdm", "matplotlib", "pytest", "ruff"}
OWN_MODULES = {"config", "dataset", "model", "train", "main", "utils", "conftest", "tests"}


def suggest_slug(slug: str) -> str:
    """A valid slug close to `slug`, for the error message."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", slug.lower()).strip("_")[:MAX_SLUG].strip("_")
    cleaned = cleaned or "my_project"
    if not cleaned[0].isalpha():
        cleaned = f"project_{cleaned}"
    return f"{cleaned}_project" if slug_problem(cleaned) else cleaned


def slug_problem(slug: str) -> str | None:
    """Why `slug` cannot name the project, or None if it can."""
    if any(separator in slug for separator in "/\\") or slug.strip(".") == "":
        return "is a path, not a folder name"
    if len(slug) > MAX_SLUG:
        return f"is {len(slug)} characters long; a folder name of at most {MAX_SLUG} is needed"
    if not SLUG_PATTERN.fullmatch(slug):
        return (
            "is not a valid module name (lowercase letters, digits and underscores, "
            "starting with a letter)"
        )
    if keyword.iskeyword(slug):
        return "is a Python keyword"
    if slug in sys.stdlib_module_names or slug in IMPORTED | OWN_MODULES:
        return "would shadow the module of that name that the project imports"
    return None


def text_problem(text: str, limit: int) -> str | None:
    """Why `text` cannot stand in the project's README and pyproject.toml, or None if it can."""
    controls = sorted({repr(c) for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp")})
    if controls:
        return f"holds control characters ({', '.join(controls)}), which a one-line answer cannot"
    if len(text) > limit:
        return f"is {len(text)} characters long, more than {limit}"
    return None


def check_seconds_problem() -> str | None:
    """Why the time limit set for post_gen_project.py's check is not one, or None."""
    value = os.environ.get(CHECK_SECONDS_VARIABLE)
    try:
        if value is None or (math.isfinite(float(value)) and float(value) >= 0):
            return None
    except ValueError:
        pass
    return (
        f"{CHECK_SECONDS_VARIABLE}={value!r} is not a number of seconds; set it to e.g. 1800, or "
        "to 0 to generate without the overfit check"
    )


def main() -> int:
    if DATASET not in DATASETS.get(TASK, ()):
        print(
            f"ERROR: task={TASK} cannot be generated with dataset={DATASET}; it supports "
            f"{', '.join(DATASETS.get(TASK, ()))}. Choose one of those, or a task that reads "
            f"{DATASET} ({', '.join(t for t, d in DATASETS.items() if DATASET in d)})."
        )
        return 1
    problem = check_seconds_problem()
    if problem:
        print(f"ERROR: {problem}.")
        return 1
    if not PROJECT_NAME.strip():
        print("ERROR: project_name is empty; give the project a name, e.g. 'Shape Classifier'.")
        return 1
    for key, (limit, instead) in TEXTS.items():
        problem = text_problem(ANSWERS[key], limit)
        if problem:
            print(f"ERROR: {key} {problem}; type {instead} instead.")
            return 1
    problem = slug_problem(PROJECT_SLUG)
    if problem:
        suggestion = suggest_slug(PROJECT_SLUG)
        shown = PROJECT_SLUG if len(PROJECT_SLUG) <= MAX_SLUG else PROJECT_SLUG[:30] + "..."
        print(f"ERROR: project_slug {shown!r} {problem}; try {suggestion!r}.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
