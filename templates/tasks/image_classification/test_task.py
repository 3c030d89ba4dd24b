"""What is special to image classification: the shapes data, its checks, softmax mistakes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from checks import SanityError, check_splits
from dataset import CLASSES, ShapesDataset, generate_shapes
from helpers import SRC
from main import main

SOFTMAX_BEFORE_THE_LOSS = """

_build_model = build_model


def build_model(cfg):
    return nn.Sequential(_build_model(cfg), nn.Softmax(dim=1))
"""


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
    model.write_text(model.read_text() + SOFTMAX_BEFORE_THE_LOSS)
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
