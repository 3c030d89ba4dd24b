{% import "tasks/image_classification/defaults.jinja" as task with context %}
{% if cookiecutter.dataset == "image_folder" %}
"""What is special to image classification: your image folder (its checks, splits, transforms and
class balance), transfer learning, softmax mistakes."""
{% elif cookiecutter.dataset in ("mnist", "cifar10") %}
"""What is special to image classification: the torchvision dataset (its download, conversion,
copies and augmentation), transfer learning, softmax mistakes."""
{% else %}
"""What is special to image classification: the shapes data, its checks, transfer learning,
softmax mistakes."""
{% endif %}

from __future__ import annotations

{% if cookiecutter.dataset == "image_folder" %}
import csv
{% endif %}
import json
{% if cookiecutter.dataset == "cifar10" %}
import pickle
{% endif %}
{% if cookiecutter.dataset == "image_folder" %}
import os
import random
import shutil
{% endif %}
{% if cookiecutter.dataset in ("mnist", "image_folder") %}
import struct
{% endif %}
{% if cookiecutter.dataset == "image_folder" %}
import subprocess
import sys
{% endif %}
{% if cookiecutter.dataset in ("mnist", "cifar10") %}
import urllib.request
{% endif %}
{% if cookiecutter.dataset == "image_folder" %}
import zlib
{% endif %}
from pathlib import Path
from urllib.error import URLError

{% if cookiecutter.dataset == "image_folder" %}
import numpy
{% endif %}
import pytest
import torch
{% if cookiecutter.dataset == "cifar10" %}
import torchvision
{% endif %}
{% if cookiecutter.dataset == "image_folder" %}
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import ExifTags, Image
{% else %}
from PIL import Image
{% endif %}
{% if cookiecutter.dataset in ("mnist", "cifar10") %}
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import modes
from config import Config, apply_overrides
{% if cookiecutter.dataset == "cifar10" %}
from dataset import CACHE, CLASSES, IMAGE_SIZE, IN_CHANNELS, class_names, make_dataloaders
{% else %}
from dataset import CACHE, IMAGE_SIZE, IN_CHANNELS, class_names, make_dataloaders
{% endif %}
from helpers import task_for
from main import main
{% elif cookiecutter.dataset == "image_folder" %}
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.transforms.v2 import functional as F

import modes
from config import Config, apply_overrides
from dataset import (
    Augment,
    DataError,
    class_names,
    make_dataloaders,
    read_image,
    write_example_images,
)
from helpers import SRC, task_for
from main import main
{% else %}
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import modes
from checks import check_splits
from config import Config, UserError, apply_overrides
from dataset import CLASSES, ShapesDataset, class_names, generate_shapes
from helpers import task_for
from main import main
{% endif %}
from model import Accuracy, Batch, Step
from train import build_optimizer, build_scheduler
from utils import load_checkpoint, seed_everything


def test_softmax_before_cross_entropy_stops_the_run(workdir, tiny, monkeypatch, capsys) -> None:
    build_task = modes.build_task

    def softmax_at_the_end(cfg, **inputs):  # the model, then a softmax: probabilities
        task = build_task(cfg, **inputs)
        task.model.register_forward_hook(lambda model, inputs, logits: logits.softmax(dim=1))
        return task

    monkeypatch.setattr(modes, "build_task", softmax_at_the_end)
    for command in (["--overfit-batch"], ["epochs=1", "run_name=r"]):
        assert main([*tiny, *command]) == 1
        err = capsys.readouterr().err
        assert err.count("outputs look like probabilities") == 1 and "Traceback" not in err
    assert main([*tiny, "epochs=1", "run_name=meant", "sanity_checks=false"]) == 0


def test_mixed_samples_train_with_soft_targets_scored_by_their_largest_class(
    workdir, tiny, monkeypatch
) -> None:
    """MixUp as a user writes it in training_step: soft targets (batch, classes) that the loss
    takes and the accuracy scores by the largest class."""
    accuracy = Accuracy()
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    accuracy.update(logits, torch.tensor([[0.7, 0.3, 0.0], [0.6, 0.0, 0.4]]))  # classes 0, 0
    assert accuracy.compute() == {"acc": 0.5}
    task_class = type(task_for(tiny))
    classes = len(class_names(apply_overrides(Config(), tiny)))

    def mixup(self, batch: Batch) -> Step:
        images, labels = batch
        share = torch.distributions.Beta(0.4, 0.4).sample()
        order = torch.randperm(len(labels), device=labels.device)
        targets = torch.nn.functional.one_hot(labels, classes).float()
        images = share * images + (1 - share) * images[order]
        targets = share * targets + (1 - share) * targets[order]
        logits = self.model(images)
        return Step(self.loss_fn(logits, targets), logits, targets)

    monkeypatch.setattr(task_class, "training_step", mixup)
    assert main([*tiny, "epochs=1", "run_name=r", "sanity_checks=true"]) == 0
    history = load_checkpoint(Path("models/checkpoints/default/r/last.pt"), torch.device("cpu"))
    assert 0 <= history["history"][0]["train_acc"] <= 1


def test_a_run_logs_one_batch_of_inputs_as_images(finished) -> None:
    assert "no sample is in two splits" in finished
    events = EventAccumulator("results/logs/default/r")
    events.Reload()
    assert "inputs/val" in events.Tags()["images"]


def test_test_reports_per_class_scores_a_confusion_matrix_and_tta(finished, tiny, capsys) -> None:
    assert main(["--test", "models/checkpoints/default/r/best.pt", "tta=true"]) == 0
    out = capsys.readouterr().out
    assert "test_acc_tta " in out and "test_acc_tta_gain " in out and "precision" in out
    record = json.loads(Path("results/logs/default/r/test.json").read_text())
    classes = list(record["per_class"])
    assert classes == list(class_names(apply_overrides(Config(), tiny)))
    matrix = torch.tensor(record["confusion_matrix"])
    assert matrix.shape == (len(classes), len(classes)) and matrix.sum() == record["samples"]
    assert record["acc"] == pytest.approx(matrix.diag().sum().item() / record["samples"])
    recalls = matrix.diag() / matrix.sum(dim=1).clamp_min(1)
    for name, recall in zip(classes, recalls.tolist(), strict=True):
        assert record["per_class"][name]["recall"] == pytest.approx(recall, abs=1e-6)
    with Image.open("results/visualizations/default/r/confusion_matrix.png") as image:
        assert image.size[0] > 100
    events = EventAccumulator("results/logs/default/r")
    events.Reload()
    assert "test/confusion_matrix" in events.Tags()["images"]


def test_freezing_the_backbone_trains_only_the_head(workdir, tiny) -> None:
    frozen = [*tiny, "freeze_backbone=true", "run_name=r", "epochs=1"]
    cfg = apply_overrides(Config(), frozen)
    seed_everything(cfg.seed)
    task = task_for(frozen)
    initial = task.model
    optimizer = build_optimizer(cfg, task)
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in initial.head.parameters()}

    assert main(frozen) == 0
    trained = load_checkpoint(Path("models/checkpoints/default/r/last.pt"), torch.device("cpu"))
    for name, tensor in initial.state_dict().items():  # running statistics included
        same = torch.equal(tensor, trained["model"][name])
        assert same == name.startswith("backbone."), name


def test_the_backbone_learns_at_a_lower_rate(workdir, tiny) -> None:
    overrides = [*tiny, "lr=0.01", "backbone_lr_factor=0.1", "scheduler=onecycle"]
    cfg = apply_overrides(Config(), overrides)
    task = task_for(overrides)
    optimizer = build_optimizer(cfg, task)
    head = {id(p) for p in task.model.head.parameters()}
    for group in optimizer.param_groups:
        in_head = id(group["params"][0]) in head
        assert group["lr"] == pytest.approx(0.01 if in_head else 0.001)
    build_scheduler(cfg, optimizer, batches_per_epoch=10)  # onecycle keeps the ratio
    peaks = [group["max_lr"] for group in optimizer.param_groups]
    assert max(peaks) == pytest.approx(10 * min(peaks))


def test_pretrained_weights_fail_clearly_offline(workdir, monkeypatch, capsys) -> None:
    from torchvision.models import WeightsEnum

    def offline(self, *args: object, **kwargs: object) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    assert main(["backbone=resnet18", "pretrained=true"]) == 2
    err = capsys.readouterr().err
    assert "could not download the pretrained weights" in err and "pretrained=false" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_resnet18_backbone_climbs_the_overfit_ladder(workdir) -> None:
    assert main(["--overfit-batch", "backbone=resnet18", "batch_size=8", {{ task.tiny_overrides.split(", ")[0] }}]) == 0
{% include "tasks/image_classification/test_data_" ~ cookiecutter.dataset ~ ".py" %}
