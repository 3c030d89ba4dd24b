"""The generated projects' dependencies: pyproject.toml declares what requirements.txt lists,
and requirements.lock pins every one inside its range, with hashes, at the versions this
template's tests run (constraints.txt). `make lock` rewrites the lock."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bakery import TEMPLATE, Bake

PINNED = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)")
REDO = "; run `make lock` after changing requirements.txt or constraints.txt"


def pins(text: str) -> dict[str, str]:
    """{package: version} of a requirements file's `name==version` lines."""
    found = (PINNED.match(line) for line in text.splitlines())
    return {canonicalize_name(m[1]): m[2] for m in found if m}


@pytest.mark.parametrize("task", ["image_classification", "regression", "transformer"])
def test_the_lock_pins_every_requirement_as_tested(bake: Bake, task: str) -> None:
    project = bake(task=task)
    lock = (project / "requirements.lock").read_text()
    locked = pins(lock)
    lines = (project / "requirements.txt").read_text().splitlines()
    listed = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    declared = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert [*declared["dependencies"], *declared["optional-dependencies"]["dev"]] == listed
    for text in listed:
        wanted = Requirement(text)
        name = canonicalize_name(wanted.name)
        assert name in locked, f"{wanted.name} is not in the lock{REDO}"
        assert wanted.specifier.contains(locked[name], prereleases=True), (name, locked[name])
    tested = pins((TEMPLATE / "constraints.txt").read_text())
    for name in tested.keys() & locked.keys():
        assert locked[name] == tested[name], (
            f"{name}: locked {locked[name]}, tested {tested[name]}{REDO}"
        )
    entries = re.split(r"\n(?=\S)", lock.split("\n", 5)[-1].strip())  # one per package
    assert all("--hash=sha256:" in entry for entry in entries if not entry.startswith("#"))


def test_the_template_tests_run_in_the_locked_environment(bake: Bake) -> None:
    """Every locked package that this environment holds (those of other platforms aside) is at
    its locked version: the generated suites that this template runs ran on the lock."""
    for task in ("image_classification", "regression"):
        locked = pins((bake(task=task) / "requirements.lock").read_text())
        for name, version in locked.items():
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue  # a package of another platform (colorama on Windows, say)
            assert installed == version, f"{name}: installed {installed}, locked {version}{REDO}"
