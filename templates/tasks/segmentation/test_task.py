"""What is special to segmentation: scenes, compound loss, Dice and IoU, flips, coarse to fine."""

from __future__ import annotations

{% if cookiecutter.dataset == "image_folder" %}
import json
import shutil
{% endif %}
from pathlib import Path

import pytest
import torch
{% if cookiecutter.dataset == "image_folder" %}
from PIL import Image
{% endif %}
from torch import nn
from torch.nn import functional as F

from config import Config, apply_overrides
{% if cookiecutter.dataset == "image_folder" %}
from dataset import image_channels, make_dataloaders, write_example_images
{% else %}
from dataset import crop_around_shapes, generate_scenes, image_channels, shrink
{% endif %}
from helpers import assert_same_run, task_for, train_stop_and_resume
from main import main
from model import CompoundLoss, SegmentationMetrics, build_model, dice_loss
{% if cookiecutter.dataset == "image_folder" %}
from report import pipeline_scores, predict_with_flips, segment_coarse_to_fine
{% else %}
from report import predict_with_flips, segment_coarse_to_fine
{% endif %}


def test_dice_and_iou_match_their_definitions() -> None:
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    masks[0, :2] = 1  # 8 true shape pixels
    predicted = torch.zeros(2, 4, 4, dtype=torch.long)
    predicted[0, 1:3] = 1  # 8 predicted, 4 of them right
    logits = F.one_hot(predicted, 2).permute(0, 3, 1, 2).float()
    metrics = SegmentationMetrics(2)
    metrics.update(logits[:1], masks[:1])
    metrics.update(logits[1:], masks[1:])
    values = metrics.compute()
    assert values["dice"] == pytest.approx(2 * 4 / (8 + 8))
    assert values["iou"] == pytest.approx(4 / 12)
    restored = SegmentationMetrics(2)
    restored.load_state_dict(metrics.state_dict())
    assert restored.compute() == values


def test_the_compound_loss_weighs_its_terms() -> None:
    torch.manual_seed(0)
    logits, masks = torch.randn(2, 2, 8, 8), torch.randint(0, 2, (2, 8, 8))
    cross_entropy = F.cross_entropy(logits, masks)
    dice = dice_loss(logits.softmax(dim=1), masks)
    assert CompoundLoss(0.0, 1.0, None)(logits, masks) == pytest.approx(cross_entropy.item())
    assert CompoundLoss(1.0, 0.0, None)(logits, masks) == pytest.approx(dice.item())
    assert CompoundLoss(0.5, 2.0, None)(logits, masks) == pytest.approx(
        0.5 * dice.item() + 2 * cross_entropy.item()
    )
    focal = CompoundLoss(0.0, 1.0, focal_gamma=2.0)(logits, masks)
    assert 0 < focal < cross_entropy  # easy pixels are discounted
    assert CompoundLoss(0.0, 1.0, focal_gamma=0.0)(logits, masks) == pytest.approx(
        cross_entropy.item()
    )
    perfect = torch.where(F.one_hot(masks, 2).permute(0, 3, 1, 2) == 1, 20.0, -20.0)
    assert dice_loss(perfect.softmax(dim=1), masks) < 1e-3


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_the_unet_keeps_the_resolution_with_each_norm(norm: str) -> None:
    cfg = apply_overrides(Config(), ["width=4", f"norm={norm}"])
    model = build_model(cfg, num_classes=2, channels=image_channels(cfg))
    channels = image_channels(Config())
    assert model(torch.randn(2, channels, 32, 24)).shape == (2, 2, 32, 24)
    kinds = {type(m).__name__ for m in model.modules()}
    norms = {"batch": {"BatchNorm2d"}, "group": {"GroupNorm"}, "none": set()}[norm]
    assert kinds & {"BatchNorm2d", "GroupNorm"} == norms
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert all((conv.bias is not None) == (norm == "none") for conv in convs)


def test_an_ema_of_the_unet_is_evaluated_and_resumes_exactly(workdir, tiny, monkeypatch) -> None:
    """The EMA setting the image classifier shares (its update is tested there) in this task."""
    task = task_for([*tiny, "ema=0.9"])
    assert task.evaluated() is task.ema.module and task_for([*tiny, "ema=0"]).ema is None
    args = [*tiny, "ema=0.9", "norm=group", "epochs=2", "accumulate_steps=2", "deterministic=true"]
    straight, resumed = train_stop_and_resume(args, monkeypatch)
    assert_same_run(straight, resumed)
    assert straight["task"]["ema.n_averaged"] == straight["global_step"]  # once a step


def test_flip_tta_averages_the_flipped_predictions_back() -> None:
    torch.manual_seed(0)
    pointwise = nn.Conv2d(1, 2, kernel_size=1)  # flipping commutes with it
    images = torch.randn(3, 1, 8, 8)
    assert torch.allclose(predict_with_flips(pointwise, images), pointwise(images).softmax(1))
    shifted = nn.Conv2d(1, 2, kernel_size=3, padding=1)
    by_hand = sum(
        shifted(images.flip(dims)).softmax(1).flip(dims) for dims in ([], [3], [2], [2, 3])
    )
    assert torch.allclose(predict_with_flips(shifted, images), by_hand / 4, atol=1e-6)


class MarksTheBrightest(nn.Module):
    """A stand-in coarse model: 'shape' at the brightest pixel of each image."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.flatten(1)
        hot = F.one_hot(flat.argmax(dim=1), flat.shape[1]).view_as(images[:, 0]).float()
        return torch.stack([1 - hot, hot], dim=1)


def test_coarse_to_fine_segments_the_crop_where_the_coarse_model_points() -> None:
    cfg = apply_overrides(Config(), ["image_size=64", "coarse_factor=4", "crop_size=16"])
    images = torch.full((1, 1, 64, 64), -1.0)
    images[0, 0, 40:44, 8:12] = 1.0  # coarse pixel (10, 2)
    fine = nn.Conv2d(1, 2, kernel_size=1)
    logits, corners = segment_coarse_to_fine(MarksTheBrightest(), fine, images, cfg)
    assert corners == [(34, 2)]  # centred on (41.5, 9.5), rounded
    inside = logits[0, :, 34:50, 2:18]
    assert torch.allclose(inside, fine(images[:, :, 34:50, 2:18])[0])
    outside = logits[0].clone()
    outside[:, 34:50, 2:18] = 0
    assert (outside.argmax(dim=0) == 0).all()  # background everywhere else


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["image_size=60"], "image_size must be a multiple of 8"),
        (["stage=coarse_to_fine", "image_size=64", "coarse_factor=16"], "image_size / coarse"),
        (["stage=fine", "image_size=32", "crop_size=40"], "crop_size (40) is larger"),
        (["stage=coarse_to_fine", "folds=3"], "folds=3 cross-validates one run, not the runs"),
    ],
)
def test_sizes_the_unet_cannot_take_are_refused(workdir, capsys, overrides, message) -> None:
    assert main(overrides) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_the_coarse_to_fine_pipeline_trains_both_stages_and_tests_them(workdir, capsys) -> None:
{% if cookiecutter.dataset == "image_folder" %}
    tiny = ["width=4", "epochs=2", "batch_size=32"]
{% else %}
    tiny = ["num_samples=200", "width=4", "epochs=2", "batch_size=32"]
{% endif %}
    assert main([*tiny, "stage=coarse_to_fine", "run_name=p"]) == 0
    out = capsys.readouterr().out
    assert "coarse to fine on the full-size val images: dice" in out
    fine = Path("models/checkpoints/default/p-fine/best.pt")
    saved = torch.load(fine, weights_only=True)["config"]
    assert saved["stage"] == "fine"
    assert saved["coarse_from"] == "models/checkpoints/default/p-coarse/best.pt"
    assert main(["--test", str(fine)]) == 0
    out = capsys.readouterr().out
    for key in ("test_dice", "test_dice_tta", "test_dice_tta_gain", "test_pipeline_dice"):
        assert f"{key} " in out
{% include "tasks/segmentation/test_data_" ~ cookiecutter.dataset ~ ".py" %}


def test_tune_refuses_coarse_to_fine_which_trains_two_runs(workdir, tiny, capsys) -> None:
    assert main([*tiny, "stage=coarse_to_fine", "--tune", "1", "lr=1e-4:1e-2:log"]) == 2
    assert "stage=coarse_to_fine trains two" in capsys.readouterr().err
