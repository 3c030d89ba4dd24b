"""Every task of cookiecutter.json meets the written contract of CONTRIBUTING.md: its folder has
each file, and each file defines what the shared code calls. A task that lacks something fails
here with its name, the file, and what it must define."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bakery import CHOICES, CONTEXT, TEMPLATE

# What each task's defaults.jinja sets, for the shared files that import it.
DEFAULTS = {
    "epochs": "default of epochs",
    "batch_size": "default of batch_size",
    "lr": "default of lr",
    "scheduler": "default of scheduler",
    "warmup_steps": "default of warmup_steps",
    "weight_decay": "default of weight_decay",
    "early_stopping_patience": "default of early_stopping_patience",
    "overfit_steps": "default of overfit_steps",
    "tiny_overrides": "the generated tests' settings for a run of seconds",
    "reshape_override": "an override that changes the shape of the model's weights",
    "layered_overrides": "overrides that give the model several layers (or none)",
    "stages": "whether modes.py trains several runs in stages (train_stages)",
    "stage_imports": "what train_stages uses from report.py",
    "convolutional": "whether channels_last applies",
    "loss_per_sample": "whether the loss is a mean of per-sample losses",
    "predicts": "whether the project has --predict",
    "task_class": "the Task subclass of model.py, for the README",
    "step_names": "the names the training step gives inputs, targets and outputs",
    "overfit_goal": "the goal of --overfit-batch in words, for the README",
}
# What the files of a task define: (file, a pattern, what it is, in words).
DEFINITIONS = [
    ("model.py", r"^def build_model\(", "def build_model(cfg, ...): the network"),
    (
        "model.py",
        r'^\{% include "shared/task_contract.py" %\}',
        'the contract: {% include "shared/task_contract.py" %}',
    ),
    ("model.py", r"^class \w+\(Task\):", "a Task subclass"),
    ("model.py", r"^    def training_step\(self, batch", "Task.training_step(batch)"),
    ("model.py", r"^    def validation_step\(self, batch", "Task.validation_step(batch)"),
    ("model.py", r"^    def metrics\(self\)", "Task.metrics()"),
    ("model.py", r"^    def overfitted\(", "Task.overfitted(batch, start, end)"),
    ("model.py", r"^def build_task\(", "def build_task(cfg, **model_inputs)"),
    (
        "report.py",
        r"^def prediction_pictures\(",
        "def prediction_pictures(model, inputs, targets, cfg)",
    ),
    ("report.py", r"^def describe\(", "def describe(model, cfg)"),
    ("report.py", r"^def test_report\(", "def test_report(model, loader, cfg, results)"),
    ("config_fields.py", r"^class TaskSettings", "class TaskSettings (a frozen dataclass)"),
    ("README.md", r"^## ", "the task's README section"),
    ("test_task.py", r"^def test_", "tests of what is particular to the task"),
    ("explore_data.py", r"^# %%", "a notebook cell that shows the data"),
]
PER_DATASET = [
    ("dataset_{}.py", r"^def make_dataloaders\(cfg: Config\)", "def make_dataloaders(cfg)"),
    ("dataset_{}.py", r"^def model_inputs\(cfg: Config\)", "def model_inputs(cfg)"),
    ("config_data_{}.py", r"class DataSettings|^\{% include", "class DataSettings"),
]


def task_problems(folder: Path, datasets: list[str]) -> list[str]:
    """What the task in `folder`, with these data sources, lacks of the contract, in words."""
    problems = []
    defaults = (
        (folder / "defaults.jinja").read_text() if (folder / "defaults.jinja").exists() else ""
    )
    for name, meaning in DEFAULTS.items():
        if not re.search(rf"{{% set {name} = ", defaults):
            problems.append(f"defaults.jinja does not set {name} ({meaning})")
    wanted = [*DEFINITIONS, *((f.format(d), p, w) for d in datasets for f, p, w in PER_DATASET)]
    if re.search(r"{% set stages = true %}", defaults):
        wanted.append(
            ("main_stages.py", r"^def train_stages\(", "def train_stages(cfg, overrides, resume)")
        )
    if re.search(r"{% set predicts = (?!false)", defaults):
        columns = r"^def prediction_columns\(|shared/classifier_predictions.py"
        wanted.append(("report.py", columns, "def prediction_columns(outputs, cfg)"))
    for file, pattern, what in wanted:
        path = folder / file
        if not path.exists():
            problems.append(f"{file} is missing (it defines {what})")
        elif not re.search(pattern, source(path), re.MULTILINE):
            problems.append(f"{file} does not define {what}")
    return list(dict.fromkeys(problems))


def source(path: Path) -> str:
    """The text of a task's file, with the text of the task's files it includes (such as
    dataset_torchvision.py) and the notebook cells; not of shared/, whose code (the contract
    itself, say) is not the task's own."""
    text = path.read_text()
    templates = path.parents[2]  # templates/tasks/<task>/<file>
    for name in re.findall(r'{% include "((?:tasks|notebook)/[^"]+)" %}', text):
        text += "\n" + (templates / name).read_text()
    return text


@pytest.mark.parametrize("task", CHOICES["task"])
def test_every_task_meets_the_contract(task: str) -> None:
    folder = TEMPLATE / "templates" / "tasks" / task
    problems = task_problems(folder, CONTEXT["_datasets"][task])
    assert not problems, f"task {task!r} lacks what CONTRIBUTING.md asks for:\n" + "\n".join(
        f"  - {problem}" for problem in problems
    )


def test_a_new_task_that_lacks_pieces_is_told_what_they_are(template_copy: Path) -> None:
    tasks = template_copy / "templates" / "tasks"
    shutil.copytree(tasks / "regression", tasks / "forecast")
    (tasks / "forecast" / "report.py").unlink()
    model = tasks / "forecast" / "model.py"
    model.write_text(model.read_text().replace("def validation_step", "def evaluate_step"))
    context = json.loads((template_copy / "cookiecutter.json").read_text())
    problems = task_problems(tasks / "forecast", [*context["_datasets"]["regression"], "parquet"])
    assert problems == [
        "model.py does not define Task.validation_step(batch)",
        "report.py is missing (it defines def prediction_pictures(model, inputs, targets, cfg))",
        "report.py is missing (it defines def describe(model, cfg))",
        "report.py is missing (it defines def test_report(model, loader, cfg, results))",
        "dataset_parquet.py is missing (it defines def make_dataloaders(cfg))",
        "dataset_parquet.py is missing (it defines def model_inputs(cfg))",
        "config_data_parquet.py is missing (it defines class DataSettings)",
        "report.py is missing (it defines def prediction_columns(outputs, cfg))",
    ]
