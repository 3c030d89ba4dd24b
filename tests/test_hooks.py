"""The hooks: slug validation before generation, the overfit verification after it."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from cookiecutter.environment import StrictEnvironment
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

from bakery import TEMPLATE, Bake, block_downloads

BAD_SLUGS = {
    "my-proj": "not a valid module name",
    "My_Proj": "not a valid module name",
    "1st_try": "not a valid module name",
    "with space": "not a valid module name",
    "_private": "not a valid module name",
    "class": "is a Python keyword",
    "import": "is a Python keyword",
    "torch": "would shadow the module",
    "random": "would shadow the module",
    "dataset": "would shadow the module",
}


def render_hook(name: str, tmp_path: Path, template: Path = TEMPLATE, **answers) -> Path:
    """The hook as cookiecutter would run it: rendered with the (default + given) answers."""
    context = generate_context(str(template / "cookiecutter.json"), extra_context=answers)
    context["cookiecutter"] = prompt_for_config(context, no_input=True)
    env = StrictEnvironment(context=context)
    source = (template / "hooks" / f"{name}.py").read_text()
    rendered = tmp_path / f"{name}.py"
    rendered.write_text(env.from_string(source).render(**context))
    return rendered


def import_hook(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("slug", "reason"), BAD_SLUGS.items())
def test_slug_problem_names_the_reason(tmp_path: Path, slug: str, reason: str) -> None:
    hook = import_hook(render_hook("pre_gen_project", tmp_path))
    assert reason in hook.slug_problem(slug)
    suggestion = hook.suggest_slug(slug)
    assert hook.slug_problem(suggestion) is None, suggestion


@pytest.mark.parametrize("slug", ["shapes", "cifar_10", "a", "unet3d"])
def test_good_slugs_pass(tmp_path: Path, slug: str) -> None:
    hook = import_hook(render_hook("pre_gen_project", tmp_path))
    assert hook.slug_problem(slug) is None


@pytest.mark.parametrize("slug", list(BAD_SLUGS))
def test_bad_slug_stops_generation_and_leaves_nothing(bake: Bake, tmp_path, capfd, slug) -> None:
    with pytest.raises(FailedHookException):
        bake(hooks=True, project_slug=slug)
    out = capfd.readouterr().out
    assert out.startswith(f"ERROR: project_slug {slug!r} ") and BAD_SLUGS[slug] in out
    assert "; try '" in out
    assert len(out.strip().splitlines()) == 1  # one line, no traceback
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("slug", ["a/b", "../escaped", "x/../../y", "back\\slash", ".", ".."])
def test_a_path_as_slug_is_refused_and_nothing_escapes(bake: Bake, tmp_path, capfd, slug) -> None:
    """Cookiecutter makes the project's folder before the pre-generation hook runs: a path must
    never become that folder (`..` or `.` would be the output folder itself, deleted when the
    hook fails)."""
    with pytest.raises(FailedHookException):
        bake(hooks=True, project_slug=slug)
    out = capfd.readouterr().out
    assert out.startswith(f"ERROR: project_slug {slug!r} is a path, not a folder name; try '")
    assert len(out.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert list((tmp_path / "out").iterdir()) == []


def test_a_slug_too_long_for_a_folder_is_refused(bake: Bake, tmp_path, capfd) -> None:
    with pytest.raises(FailedHookException):
        bake(hooks=True, project_slug="y" * 300)
    out = capfd.readouterr().out
    assert "is 300 characters long; a folder name of at most 60 is needed; try 'yyy" in out
    assert len(out.strip().splitlines()) == 1 and len(out) < 200
    assert list((tmp_path / "out").iterdir()) == []


def test_a_long_project_name_gets_a_short_default_slug(tmp_path: Path) -> None:
    name = "A Study Of " + "Very " * 20 + "Long Titles"
    context = generate_context(str(TEMPLATE / "cookiecutter.json"), extra_context={})
    context["cookiecutter"]["project_name"] = name
    slug = prompt_for_config(context, no_input=True)["project_slug"]
    assert 0 < len(slug) <= 60 and slug.startswith("a_study_of_very") and not slug.endswith("_")


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"description": "two\nlines"}, "description holds control characters ('\\n')"),
        ({"author_name": "tab\there"}, "author_name holds control characters ('\\t')"),
        ({"project_name": "x" * 300}, "project_name is 300 characters long, more than 100"),
        ({"description": "d" * 301}, "description is 301 characters long, more than 300"),
    ],
)
def test_text_that_cannot_stand_in_the_project_is_refused(
    bake: Bake, tmp_path, capfd, answers, message
) -> None:
    with pytest.raises(FailedHookException):
        bake(hooks=True, project_slug="fine", **answers)
    out = capfd.readouterr().out
    assert out.startswith(f"ERROR: {message}") and "; type " in out
    assert len(out.strip().splitlines()) == 1
    assert list((tmp_path / "out").iterdir()) == []


def test_empty_project_name_is_refused(bake: Bake, tmp_path, capfd) -> None:
    with pytest.raises(FailedHookException):
        bake(hooks=True, project_name=" ", project_slug="fine")
    assert "ERROR: project_name is empty" in capfd.readouterr().out
    assert list((tmp_path / "out").iterdir()) == []


def test_a_dataset_the_task_cannot_read_is_refused(bake: Bake, tmp_path, capfd) -> None:
    with pytest.raises(FailedHookException):
        bake(hooks=True, task="regression", dataset="image_folder")
    out = capfd.readouterr().out
    assert "ERROR: task=regression cannot be generated with dataset=image_folder" in out
    assert "it supports synthetic, csv" in out
    readers = "autoencoder, gan, image_classification, segmentation"
    assert f"a task that reads image_folder ({readers})" in out
    assert list((tmp_path / "out").iterdir()) == []


def test_answers_reach_hooks_as_data_never_as_code(bake: Bake, tmp_path, capfd) -> None:
    marker = tmp_path / "pwned"
    sneaky = f'""")\nimport pathlib; pathlib.Path({str(marker)!r}).touch()\nx = ("'
    with pytest.raises(FailedHookException):
        bake(hooks=True, project_name=sneaky, project_slug="x-y")
    assert not marker.exists()
    assert "ERROR: project_name holds control characters ('\\n')" in capfd.readouterr().out


@pytest.mark.slow
def test_post_gen_fails_generation_when_the_model_cannot_overfit(
    bake: Bake, template_copy: Path, tmp_path: Path, capfd
) -> None:
    # The regression project's linear model: its check fails within seconds (the classifier's
    # fails the same way, over a minute).
    model = template_copy / "templates" / "tasks" / "regression" / "model.py"
    source = model.read_text()
    forward = "return self.linear(inputs)"
    assert source.count(forward) == 1
    # The bug of seed 001: a forward pass that throws away what it was given.
    model.write_text(source.replace(forward, "return self.linear(inputs * 0)"))
    with pytest.raises(FailedHookException):
        bake(hooks=True, template=template_copy, task="regression")
    err = capfd.readouterr().err
    assert "overfit check FAILED" in err and "Likely causes" in err
    assert "--keep-project-on-failure" in err
    assert list((tmp_path / "out").iterdir()) == []


def processes_inside(folder: Path) -> dict[int, str]:
    """The running processes whose working directory is `folder` or below: pid, command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # ended meanwhile
            continue
    return {pid: command.decode() for pid, command in found.items()}


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="reads /proc (Linux)")
def test_a_stopped_cookiecutter_leaves_no_check_running(
    template_copy: Path, tmp_path: Path
) -> None:
    """SIGTERM to cookiecutter while the hook's overfit check runs: the hook and the check end
    with it (they ran on by themselves and printed into the terminal a minute later)."""
    main = template_copy / "{{cookiecutter.project_slug}}" / "src" / "main.py"
    future = "from __future__ import annotations\n"
    assert future in main.read_text()
    main.write_text(main.read_text().replace(future, future + "__import__('time').sleep(600)\n"))
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "cookiecutter",
        "--no-input",
        "-o",
        str(out),
        str(template_copy),
    ]
    cookiecutter = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not any("--overfit-batch" in line for line in processes_inside(out).values()):
            assert cookiecutter.poll() is None, cookiecutter.communicate()
            assert time.monotonic() < deadline, "the check never started"
            time.sleep(0.05)
        cookiecutter.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while processes_inside(out):
            assert time.monotonic() < deadline, f"still running: {processes_inside(out)}"
            time.sleep(0.1)
    finally:
        for pid in [cookiecutter.pid, *processes_inside(out)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        cookiecutter.communicate()


def test_post_gen_notes_and_succeeds_when_torch_is_missing(bake: Bake, tmp_path: Path) -> None:
    project = bake(hooks=False)
    hook = render_hook("post_gen_project", tmp_path)
    bare = tmp_path / "bare-venv"  # an interpreter like cookiecutter's isolated one: no torch
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("the base interpreter has torch installed")
    result = subprocess.run([python, hook], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "NOTE: image_classification was generated but not verified" in result.stdout
    assert "pip install -r requirements.txt" in result.stdout
    assert "python src/main.py --overfit-batch" in result.stdout
    assert [p.name for p in (project / "data").iterdir()] == [".gitkeep"]  # nothing ran


def test_a_check_out_of_time_keeps_the_project_unverified(bake: Bake, monkeypatch, capfd) -> None:
    """Running out of time says nothing about the model: the project stays, with the commands
    that verify it."""
    monkeypatch.setenv("DL_WORKFLOW_CHECK_SECONDS", "0.5")
    project = bake(hooks=True, task="regression", dataset="csv")
    out = capfd.readouterr().out
    assert f"NOTE: {project.name} was generated but not verified: the check had no verdict " in out
    assert "within 0.5 s (set DL_WORKFLOW_CHECK_SECONDS to give it longer" in out
    assert f"cd {project}\n    python src/dataset.py " in out
    assert "    python src/main.py --overfit-batch " in out
    assert (project / "src" / "main.py").is_file()


def test_a_check_time_of_zero_skips_the_check(bake: Bake, monkeypatch, capfd) -> None:
    monkeypatch.setenv("DL_WORKFLOW_CHECK_SECONDS", "0")
    project = bake(hooks=True)
    out = capfd.readouterr().out
    assert "not verified: DL_WORKFLOW_CHECK_SECONDS=0 skips the check" in out
    assert [p.name for p in (project / "data").iterdir()] == [".gitkeep"]  # nothing ran


@pytest.mark.parametrize("value", ["soon", "-5", "nan", "inf"])
def test_a_check_time_that_is_not_one_is_refused_first(
    bake: Bake, tmp_path, monkeypatch, capfd, value
) -> None:
    monkeypatch.setenv("DL_WORKFLOW_CHECK_SECONDS", value)
    with pytest.raises(FailedHookException):
        bake(hooks=True)
    out = capfd.readouterr().out
    assert out.startswith(f"ERROR: DL_WORKFLOW_CHECK_SECONDS={value!r} is not a number of seconds")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_offline_a_downloaded_dataset_leaves_the_project_unverified_with_a_note(
    bake: Bake, monkeypatch, capfd, dataset: str
) -> None:
    block_downloads(monkeypatch)
    project = bake(hooks=True, dataset=dataset)
    out = capfd.readouterr().out
    assert "could not be downloaded" in out and "dataset=image_folder" in out
    assert f"NOTE: {project.name} was generated but not verified" in out
    assert (project / "src" / "main.py").is_file()
    assert {p.name for p in (project / "data").iterdir()} <= {".gitkeep", "MNIST"}  # no data
