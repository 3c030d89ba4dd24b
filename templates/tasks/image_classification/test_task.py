"""What is special to image classification: the shapes data, its checks, softmax mistakes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from checks import SanityError, check_splits
from config import Config, apply_overrides
from dataset import CLASSES, ShapesDataset, generate_shapes
from helpers import SRC
from main import main
from model import build_model
from train import build_optimizer, build_scheduler
from utils import load_checkpoint, seed_everything

LOGITS = "return self.head(features)  # (B, num_classes) logits"


def test_the_shapes_are_deterministic_and_balanced() -> None:
    data = generate_shapes(50, 32, 0.4, seed=7)
    images, labels = data["images"], data["labels"]
    assert torch.equal(images, generate_shapes(50, 32, 0.4, seed=7)["images"])
    assert images.shape == (50, 1, 32, 32) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [10] * len(CLASSES)
    assert not torch.equal(images, generate_shapes(50, 32, 0.4, seed=8)["images"])


def test_splits_that_share_samples_are_refused() -> None:
    images, labels = generate_shapes(40, 16, 0.1, seed=0).values()
    train, test = ShapesDataset(images[:30], labels[:30]), ShapesDataset(images[25:], labels[25:])
    with pytest.raises(SanityError, match="the train and test splits share 5 samples"):
        check_splits({"train": train, "test": test}, imbalance_ratio=3)


def test_class_counts_are_reported_and_imbalance_is_warned_about() -> None:
    images, labels = generate_shapes(60, 16, 0.1, seed=0).values()
    labels = torch.where(labels == 0, 1, labels)  # no sample of the first class left
    splits = {
        "train": ShapesDataset(images[:50], labels[:50]),
        "val": ShapesDataset(images[50:], labels[50:]),
    }
    with pytest.warns(UserWarning, match="class imbalance in the (train|val) split"):
        report = check_splits(splits, imbalance_ratio=3)
    assert report.splitlines()[0] == "data: train 50, val 10 samples; no sample is in two splits"
    assert report.splitlines()[1].split() == ["class", "train", "val"]


@pytest.mark.slow
def test_softmax_before_cross_entropy_is_warned_about(tmp_path: Path, tiny) -> None:
    project = tmp_path / "project"
    shutil.copytree(SRC, project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "data").mkdir()
    model = project / "src" / "model.py"
    source = model.read_text()
    assert source.count(LOGITS) == 1
    model.write_text(source.replace(LOGITS, "return self.head(features).softmax(dim=1)"))
    result = subprocess.run(
        [sys.executable, "src/main.py", *tiny, "epochs=1"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "outputs look like probabilities" in result.stderr


def test_a_run_logs_one_batch_of_inputs_as_images(workdir, tiny, capsys) -> None:
    assert main([*tiny, "run_name=r", "epochs=1"]) == 0
    assert "no sample is in two splits" in capsys.readouterr().out
    events = EventAccumulator("results/logs/default/r")
    events.Reload()
    assert "inputs/val" in events.Tags()["images"]


def test_freezing_the_backbone_trains_only_the_head(workdir, tiny) -> None:
    frozen = [*tiny, "freeze_backbone=true", "run_name=r", "epochs=1"]
    cfg = apply_overrides(Config(), frozen)
    seed_everything(cfg.seed)
    initial = build_model(cfg)
    optimizer = build_optimizer(cfg, initial)
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in initial.head.parameters()}

    assert main(frozen) == 0
    trained = load_checkpoint(Path("models/checkpoints/default/r/last.pt"), torch.device("cpu"))
    for name, tensor in initial.state_dict().items():  # running statistics included
        same = torch.equal(tensor, trained["model"][name])
        assert same == name.startswith("backbone."), name


def test_the_backbone_learns_at_a_lower_rate(tiny) -> None:
    cfg = apply_overrides(Config(), ["lr=0.01", "backbone_lr_factor=0.1", "scheduler=onecycle"])
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    head = {id(p) for p in model.head.parameters()}
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
    assert main(["--overfit-batch", "backbone=resnet18", "batch_size=8", "num_samples=400"]) == 0
