"""Refuse answers that would generate a broken project, before any file is written.

Cookiecutter runs this file with its own interpreter after rendering it with Jinja; the answers
arrive through `tojson`, so quotes or backslashes in them can never change this code.
"""

import json
import keyword
import re
import sys

ANSWERS = json.loads(
    r"""
{{ {
    "project_name": cookiecutter.project_name,
    "project_slug": cookiecutter.project_slug,
    "task": cookiecutter.task,
    "dataset": cookiecutter.dataset,
    "datasets": cookiecutter._datasets,
} | tojson }}
""".strip()
)
PROJECT_NAME, PROJECT_SLUG = ANSWERS["project_name"], ANSWERS["project_slug"]
TASK, DATASET = ANSWERS["task"], ANSWERS["dataset"]
DATASETS = ANSWERS["datasets"]  # the data sources of each task: cookiecutter.json's `_datasets`

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
# A project folder with one of these names would shadow the module on sys.path when Python runs
# from the folder above it: the standard library, what the project imports, and its own modules.
IMPORTED = {"numpy", "torch", "torchvision", "tensorboard", "tqdm", "matplotlib", "pytest", "ruff"}
OWN_MODULES = {"config", "dataset", "model", "train", "main", "utils", "conftest", "tests"}


def suggest_slug(slug: str) -> str:
    """A valid slug close to `slug`, for the error message."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", slug.lower()).strip("_") or "my_project"
    if not cleaned[0].isalpha():
        cleaned = f"project_{cleaned}"
    return f"{cleaned}_project" if slug_problem(cleaned) else cleaned


def slug_problem(slug: str) -> str | None:
    """Why `slug` cannot name the project, or None if it can."""
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


def main() -> int:
    if DATASET not in DATASETS.get(TASK, ()):
        print(
            f"ERROR: task={TASK} cannot be generated with dataset={DATASET}; it supports "
            f"{', '.join(DATASETS.get(TASK, ()))}. Choose one of those, or a task that reads "
            f"{DATASET} ({', '.join(t for t, d in DATASETS.items() if DATASET in d)})."
        )
        return 1
    if not PROJECT_NAME.strip():
        print("ERROR: project_name is empty; give the project a name, e.g. 'Shape Classifier'.")
        return 1
    problem = slug_problem(PROJECT_SLUG)
    if problem:
        suggestion = suggest_slug(PROJECT_SLUG)
        print(f"ERROR: project_slug {PROJECT_SLUG!r} {problem}; try {suggestion!r}.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
