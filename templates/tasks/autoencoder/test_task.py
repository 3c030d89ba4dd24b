"""What is special to the autoencoder: the stages, the frozen encoder, test-time training."""

from __future__ import annotations

{% if cookiecutter.dataset == "image_folder" %}
import json
import shutil
{% endif %}
import signal
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from config import Config, apply_overrides
{% if cookiecutter.dataset == "image_folder" %}
from dataset import make_dataloaders, write_example_images
{% else %}
from dataset import CLASSES, add_noise, generate_shapes, labeled_count, make_dataloaders
{% endif %}
from helpers import start, task_for, wait_for_checkpoint
from main import main
from model import Autoencoder, Classifier, ReconstructionMetrics
from report import accuracy_with_ttt
from train import build_optimizer
from utils import load_checkpoint

CPU = torch.device("cpu")
{% if cookiecutter.dataset == "image_folder" %}
DATA: list[str] = []  # the tests' data folder: 279 labelled training images (helpers.py)
# A whole pipeline in a few seconds, with the labels of all 279.
PIPELINE = ["width=8", "epochs=2", "finetune_epochs=3", "batch_size=32", "log_every=2"]
{% else %}
DATA = ["num_samples=400"]
# A whole pipeline in a few seconds: 280 training images, 56 of them labeled.
PIPELINE = [*DATA, "width=8", "epochs=2", "finetune_epochs=3", "batch_size=32"]
PIPELINE += ["labeled_fraction=0.2", "log_every=2"]
{% endif %}
RUNS = Path("models/checkpoints/default")


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path, CPU)["model"]


def test_finetuning_trains_the_head_only(workdir) -> None:
    cfg = apply_overrides(Config(), [*DATA, "stage=finetune"])
    task = task_for([*DATA, "stage=finetune"])
    model = task.model
    assert isinstance(model, Classifier) and model.decoder is not None
    optimizer = build_optimizer(cfg, task)
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.head.parameters()}
    task.train()
    assert not model.encoder.training  # frozen batch-norm statistics
    scratch = task_for([*DATA, "stage=scratch"]).model
    assert scratch.decoder is None and all(p.requires_grad for p in scratch.parameters())
    assert isinstance(task_for(DATA).model, Autoencoder)  # stage=all starts with pretrain


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_norm_chooses_the_normalisation_of_every_conv_block(workdir, norm: str) -> None:
    model = task_for([*DATA, "stage=pretrain", f"norm={norm}"]).model
    kinds = {type(m).__name__ for m in model.modules()} & {"BatchNorm2d", "GroupNorm"}
    assert kinds == {"batch": {"BatchNorm2d"}, "group": {"GroupNorm"}, "none": set()}[norm]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert [conv.bias is not None for conv in convs[:-1]] == [norm == "none"] * 5


def test_psnr_matches_its_definition() -> None:
    images = torch.zeros(2, 1, 4, 4)
    metrics = ReconstructionMetrics()
    metrics.update(images + 0.1, images)  # mse 0.01 in a range of 2: 10 log10(4 / 0.01)
    assert metrics.compute()["psnr"] == pytest.approx(26.0206, abs=1e-3)
    restored = ReconstructionMetrics()
    restored.load_state_dict(metrics.state_dict())
    assert restored.compute() == metrics.compute()


def test_the_pipeline_pretrains_finetunes_and_compares_with_scratch(workdir, capsys) -> None:
    assert main([*PIPELINE, "run_name=p"]) == 0
    out = capsys.readouterr().out
    labeled = make_dataloaders(apply_overrides(Config(), [*PIPELINE, "stage=scratch"]))[0]
    used, drawn_from = len(labeled.dataset), labeled.dataset.drawn_from
{% if cookiecutter.dataset == "image_folder" %}
    assert used == drawn_from  # labeled_fraction=1
    few = [*PIPELINE, "stage=scratch", "labeled_fraction=0.001"]
    assert len(make_dataloaders(apply_overrides(Config(), few))[0].dataset) == 3  # one a class
{% else %}
    assert used == labeled_count(drawn_from, apply_overrides(Config(), PIPELINE))
{% endif %}
    summary = f"val accuracy with the labels of {used} of the {drawn_from} training images ("
    assert summary in out
    comparison = out.split("%):\n")[1].splitlines()
    assert comparison[0].endswith("pretrained encoder (frozen), trained head")
    assert comparison[1].endswith("the same classifier from scratch")

    pretrained = weights(RUNS / "p-pretrain" / "best.pt")
    finetuned = weights(RUNS / "p-finetune" / "last.pt")
    for name, tensor in finetuned.items():  # frozen: the pretrained weights and statistics
        if not name.startswith("head."):
            assert torch.equal(tensor, pretrained[name]), name
    config = load_checkpoint(RUNS / "p-finetune" / "last.pt", CPU)["config"]
    assert config["encoder_from"] == str(RUNS / "p-pretrain" / "best.pt")
    assert config["epochs"] == 3  # finetune_epochs
    scratch = weights(RUNS / "p-scratch" / "last.pt")
    assert not torch.equal(scratch["encoder.0.weight"], pretrained["encoder.0.weight"])
    assert not any(name.startswith("decoder.") for name in scratch)

    events = EventAccumulator("results/logs/default/p-pretrain", size_guidance={"images": 0})
    events.Reload()
    pairs = events.Images("reconstructions/val")
    assert len(pairs) == 1  # a run this short draws once, at its end
    assert (pairs[0].width, pairs[0].height) == (8 * 64, 32)  # 8 pairs of input | output


def test_finetune_finds_the_newest_pretrain_run(workdir, capsys) -> None:
    assert main([*PIPELINE, "stage=pretrain", "run_name=a"]) == 0
    assert main([*PIPELINE, "stage=finetune", "run_name=b"]) == 0
    out = capsys.readouterr().out
    assert f"the encoder of {RUNS / 'a' / 'best.pt'}, frozen" in out
    assert (RUNS / "b-finetune" / "best.pt").is_file() and (RUNS / "b-scratch").is_dir()


def test_finetune_without_a_pretrained_encoder_says_what_to_do(workdir, capsys) -> None:
    assert main([*PIPELINE, "stage=finetune"]) == 2
    err = capsys.readouterr().err
    assert "needs a pretrained encoder" in err and "stage=all" in err
    assert not RUNS.exists()  # nothing half-written


def test_the_pipeline_refuses_to_replace_a_run_before_training_anything(workdir, capsys) -> None:
    assert main([*PIPELINE, "stage=scratch", "run_name=p"]) == 0
    assert main([*PIPELINE, "run_name=p"]) == 2  # p-scratch exists
    assert "run default/p-scratch already has checkpoints" in capsys.readouterr().err
    assert not (RUNS / "p-pretrain").exists()


@pytest.mark.parametrize("stage", ["all", "finetune", "scratch"])
def test_the_pipeline_stages_refuse_cross_validation(workdir, capsys, stage) -> None:
    assert main([*PIPELINE, f"stage={stage}", "folds=3"]) == 2
    err = capsys.readouterr().err
    assert f"folds=3 cross-validates one run, not the runs of stage={stage}" in err
    assert not RUNS.exists()  # nothing written


def test_an_encoder_from_a_classifier_checkpoint_is_refused(workdir, capsys) -> None:
    assert main([*PIPELINE, "stage=scratch", "run_name=s"]) == 0
    encoder_from = RUNS / "s-scratch" / "best.pt"
    assert main([*PIPELINE, "stage=finetune", f"encoder_from={encoder_from}"]) == 2
    assert "not of a pretrain run" in capsys.readouterr().err


def test_test_time_training_adapts_per_batch_and_restores_the_weights(workdir, capsys) -> None:
    assert main([*PIPELINE, "run_name=p"]) == 0
    best = RUNS / "p-finetune" / "best.pt"
    cfg = apply_overrides(Config(), [*PIPELINE, "stage=finetune", "ttt_steps=3"])
    model = task_for([*PIPELINE, "stage=finetune", "ttt_steps=3"]).model
    model.load_state_dict(weights(best))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _, _, test_loader = make_dataloaders(cfg)
    accuracy = accuracy_with_ttt(model, test_loader, cfg)
    assert 0 <= accuracy <= 1
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name

    capsys.readouterr()
    assert main(["--test", str(best), "ttt_steps=3", "test_noise=0.2"]) == 0
    out = capsys.readouterr().out
    assert "test_acc " in out and "test_acc_ttt " in out


def test_test_time_training_needs_a_finetuned_model(workdir, capsys) -> None:
    assert main([*PIPELINE, "stage=scratch", "run_name=s"]) == 0
    assert main(["--test", str(RUNS / "s-scratch" / "best.pt"), "ttt_steps=2"]) == 2
    assert "only a stage=finetune checkpoint has" in capsys.readouterr().err


def test_image_sizes_that_the_encoder_cannot_halve_are_refused(workdir, capsys) -> None:
    assert main(["--overfit-batch", "image_size=36"]) == 2
    assert "image_size must be a multiple of 8" in capsys.readouterr().err


@pytest.mark.slow
def test_the_classifier_climbs_the_overfit_ladder(workdir) -> None:
    assert main(["--overfit-batch", "stage=scratch", *DATA]) == 0


@pytest.mark.slow
def test_a_pipeline_stopped_while_pretraining_can_be_finished(workdir, capsys) -> None:
    args = [*PIPELINE, "epochs=60", "scheduler=step", "early_stopping_patience=0", "run_name=p"]
    process = start(args)
    wait_for_checkpoint(RUNS / "p-pretrain" / "last.pt", process, lambda c: c["epoch"] >= 1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert not (RUNS / "p-finetune").exists() and not (RUNS / "p-scratch").exists()

    saved = load_checkpoint(RUNS / "p-pretrain" / "last.pt", CPU)
    resume = ["--resume", str(RUNS / "p-pretrain" / "last.pt"), f"epochs={saved['epoch'] + 1}"]
    assert main(resume) == 0
    rest = out.split("run the other stages with:\n")[1].split()
    assert rest[:2] == ["python", "src/main.py"] and set(PIPELINE) <= set(rest)
    assert main(rest[2:]) == 0
    assert "pretrained encoder (frozen), trained head" in capsys.readouterr().out
{% include "tasks/autoencoder/test_data_" ~ cookiecutter.dataset ~ ".py" %}


def test_tune_refuses_the_stages_that_train_several_runs(workdir, tiny, capsys) -> None:
    for stage in ("all", "finetune"):
        assert main([*tiny, f"stage={stage}", "--tune", "1", "lr=1e-4:1e-2:log"]) == 2
        assert f"stage={stage} trains several" in capsys.readouterr().err
