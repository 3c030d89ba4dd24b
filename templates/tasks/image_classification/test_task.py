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
{% endif %}
import random
{% if cookiecutter.dataset == "image_folder" %}
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
from torch import nn

import modes
from config import Config, apply_overrides
{% if cookiecutter.dataset == "cifar10" %}
from dataset import CACHE, CLASSES, IMAGE_SIZE, IN_CHANNELS, class_names, make_dataloaders
{% else %}
from dataset import CACHE, IMAGE_SIZE, IN_CHANNELS, class_names, make_dataloaders
{% endif %}
from helpers import assert_same_run, task_for, train_stop_and_resume
from main import main
{% elif cookiecutter.dataset == "image_folder" %}
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
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
from helpers import SRC, assert_same_run, task_for, train_stop_and_resume
from main import main
{% else %}
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

import modes
from checks import check_splits
from config import Config, UserError, apply_overrides
from dataset import CLASSES, ShapesDataset, class_names, generate_shapes
from helpers import assert_same_run, task_for, train_stop_and_resume
from main import main
{% endif %}
from model import Accuracy, FocalLoss, build_model, mixed
from train import build_optimizer, build_scheduler
from tune import search_space
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


def test_the_focal_loss_is_its_formula_and_cross_entropy_at_gamma_0() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 5), torch.randint(5, (8,))
    p = logits.softmax(dim=1)[torch.arange(8), labels]  # the probability of the true class
    assert torch.allclose(FocalLoss(2.0)(logits, labels), (-((1 - p) ** 2) * p.log()).mean())
    weight, soft = torch.rand(5) + 0.5, torch.randn(8, 5).softmax(dim=1)  # soft: mixed targets
    for targets in (labels, soft):
        for smoothing in (0.0, 0.1):  # class weights and label smoothing as in torch's loss
            cross_entropy = nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)
            focal = FocalLoss(0.0, weight, smoothing)
            assert torch.allclose(focal(logits, targets), cross_entropy(logits, targets))


def test_norm_chooses_the_cnns_normalisation_and_group_norm_ignores_the_batch() -> None:
    images = torch.randn(6, 1, 32, 32)
    for norm, kind in (("batch", nn.BatchNorm2d), ("group", nn.GroupNorm), ("none", nn.Identity)):
        cfg = apply_overrides(Config(), [f"norm={norm}", "width=4", "dropout=0"])
        model = build_model(cfg, 5, 1, 32)
        blocks = list(model.backbone)[:3]
        assert all(isinstance(block[1], kind) for block in blocks)
        assert all((block[0].bias is None) == (norm != "none") for block in blocks)
        if norm == "group":  # 8 groups where the channels allow: 4, 8, 16 channels
            assert [block[1].num_groups for block in blocks] == [4, 8, 8]
        alone = model(images[:1])  # in training mode: batch norm would see another batch
        assert torch.allclose(alone, model(images)[:1], atol=1e-6) == (norm != "batch")


def test_a_mixed_batch_has_targets_in_the_shares_of_its_pixels(tiny) -> None:
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 16, 16)  # image i: all pixels i
    for mix in ("mixup", "cutmix"):
        random.seed(0)
        mixed_images, targets = mixed(images, torch.arange(4), 4, mix, alpha=1.0)
        assert targets.shape == (4, 4) and torch.allclose(targets.sum(dim=1), torch.ones(4))
        assert (targets > 0).sum(dim=1).le(2).all()  # each image and one partner
        # Each image's pixels hold its value and its partner's, in the targets' shares.
        assert torch.allclose(mixed_images.mean(dim=(1, 2, 3)), targets @ torch.arange(4.0))
    accuracy = Accuracy()  # soft targets are scored by their largest class: 0 and 0
    accuracy.update(torch.eye(2, 3), torch.tensor([[0.7, 0.3, 0], [0.6, 0, 0.4]]))
    assert accuracy.compute() == {"acc": 0.5}


def test_the_ema_is_the_hand_computed_average_after_every_optimizer_step(tiny) -> None:
    task = task_for([*tiny, "ema=0.75"])
    weights = [p for p in task.model.parameters()]
    expected = [w.detach().clone() for w in weights]  # the first update copies the weights
    task.after_optimizer_step()
    for step in range(3):
        with torch.no_grad():
            for w in weights:
                w.add_(step + 1.0)  # as an optimizer step would change them
        task.after_optimizer_step()
        expected = [0.75 * e + 0.25 * w.detach() for e, w in zip(expected, weights, strict=True)]
    averaged = list(task.evaluated().parameters())
    assert all(torch.allclose(a, e) for a, e in zip(averaged, expected, strict=True))
    plain = task_for([*tiny, "ema=0"])  # no average: the model itself is evaluated
    assert plain.ema is None and plain.evaluated() is plain.model


SETTINGS = ["loss=focal", "label_smoothing=0.1", "norm=group", "mix=cutmix", "ema=0.9"]


def test_every_training_setting_on_trains_and_resumes_exactly(workdir, tiny, monkeypatch) -> None:
    args = [*tiny, *SETTINGS, "epochs=2", "accumulate_steps=2", "deterministic=true"]
    straight, resumed = train_stop_and_resume(args, monkeypatch)
    assert_same_run(straight, resumed)
    assert straight["task"]["ema.n_averaged"] == straight["global_step"]  # once a step
    assert 0 <= straight["history"][-1]["train_acc"] <= 1  # scored on the mixed targets


def test_the_settings_are_searchable_and_refused_where_they_do_nothing(workdir, tiny, capsys):
    space = search_space(Config(), [("mix", "none,mixup,cutmix"), ("ema", "0:0.99")], [])
    assert list(space) == ["mix", "ema"]
    for bad, message in [
        (["loss=cross_entropy", "focal_gamma=3"], "focal_gamma=3 applies only with loss=focal"),
        (["mix=none", "mix_alpha=0.4"], "mix_alpha=0.4 applies only with mix=mixup or cutmix"),
        (["backbone=resnet18", "width=auto", "norm=group"], "norm=group applies only with"),
        (["ema=1"], "ema must be < 1"),
    ]:
        assert main([*tiny, *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


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
    assert {id(p) for p in initial.head.parameters()} <= optimized  # (and any group you add)
    assert not optimized & {id(p) for p in initial.backbone.parameters()}

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
    parts = {"head": task.model.head, "backbone": task.model.backbone}
    groups = {  # the group of each part (other groups, such as one you add, are not looked at)
        name: next(g for g in optimizer.param_groups if any(p is q for q in g["params"]))
        for name, part in parts.items()
        for p in [next(part.parameters())]
    }
    assert (groups["head"]["lr"], groups["backbone"]["lr"]) == pytest.approx((0.01, 0.001))
    build_scheduler(cfg, optimizer, batches_per_epoch=10)  # onecycle keeps the ratio
    assert groups["head"]["max_lr"] == pytest.approx(10 * groups["backbone"]["max_lr"])


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
{% set small = task.tiny_overrides.split(", ") | reject("in", ['"width=8"']) | list %}
    assert main(["--overfit-batch", "backbone=resnet18", "batch_size=8"{{ (", " ~ small[0]) if small }}]) == 0
{% include "tasks/image_classification/test_data_" ~ cookiecutter.dataset ~ ".py" %}
