"""What is special to the GAN: the two networks, the alternating steps, the sample quality."""

from __future__ import annotations

{% if cookiecutter.dataset == "image_folder" %}
import json
import shutil
{% endif %}
import warnings
from pathlib import Path

import pytest
import torch
{% if cookiecutter.dataset == "image_folder" %}
from PIL import Image
{% endif %}
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from checks import FirstStepChecks, SanityError
from config import Config, apply_overrides
{% if cookiecutter.dataset == "image_folder" %}
from dataset import image_channels, make_dataloaders, write_example_images
{% else %}
from dataset import image_channels
{% endif %}
from main import main
from model import build_loss, build_metrics, build_model, frechet_distance, image_features
from train import GANTrainer, build_optimizer
from utils import seed_everything

RUN = Path("models/checkpoints/default/r")
CHANNELS = image_channels(Config())


def trainer_for(overrides: list[str]) -> GANTrainer:
    cfg = apply_overrides(Config(), overrides)
    seed_everything(cfg.seed)
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    return GANTrainer(
        model, build_loss(cfg), build_metrics(cfg), cfg, torch.device("cpu"), optimizer
    )


def test_the_networks_have_the_right_shapes() -> None:
    model = build_model(apply_overrides(Config(), ["width=8", "latent_dim=16"]))
    samples = model.sample(5)
    assert samples.shape == (5, CHANNELS, 32, 32) and samples.abs().max() <= 1
    assert model.discriminator(samples).shape == (5,)
    assert model(samples).shape == (5, 2)  # logits on real and on fake


def test_each_step_trains_both_networks_with_their_own_optimizers(tiny) -> None:
    trainer = trainer_for([*tiny, "grad_clip=0"])
    model = trainer.model
    generator = {id(p) for p in model.generator.parameters()}
    assert {id(p) for g in trainer.optimizer.param_groups for p in g["params"]} == generator
    assert all(g["betas"] == (0.5, 0.999) for g in trainer.optimizer.param_groups)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.train()
    real = torch.rand(8, CHANNELS, 32, 32) * 2 - 1
    outputs, loss = trainer.forward(real, torch.zeros(8, dtype=torch.long))
    # The discriminator has taken its step and is frozen for the generator's.
    assert not any(p.requires_grad for p in model.discriminator.parameters())
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("discriminator.") for n in changed)
    loss.backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    trainer.optimizer_step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("generator.") for n in changed)
    assert outputs.shape == (8, 2)


def test_the_discriminators_first_step_is_checked_too(tiny) -> None:
    trainer = trainer_for(tiny)
    unused = torch.nn.Parameter(torch.zeros(3))
    trainer.model.discriminator.register_parameter("unused", unused)
    trainer.d_optimizer.add_param_group({"params": [unused]})
    trainer.first_step = FirstStepChecks(trainer.model, trainer.loss_fn)
    trainer.model.train()
    missing = r"1 of \d+ trainable parameters received no gradient: discriminator \(unused\)"
    with pytest.raises(SanityError, match=missing):
        trainer.forward(torch.rand(8, CHANNELS, 32, 32) * 2 - 1, torch.zeros(8, dtype=torch.long))


def test_a_rising_generator_loss_is_no_warning(tiny) -> None:
    trainer = trainer_for(tiny)
    trainer.global_step = 20
    trainer.early_losses = [torch.tensor(value) for value in (0.7, 0.8, 1.5, 2.0, 2.1, 2.2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.warn_if_loss_did_not_move()


def test_the_frechet_distance_is_zero_for_the_same_set_and_grows_with_a_shift() -> None:
    torch.manual_seed(0)
    real = torch.randn(500, 8).double()
    assert frechet_distance(real, real) == pytest.approx(0, abs=1e-6)
    shifted = frechet_distance(real, real + 1.0)
    assert shifted == pytest.approx(8.0, rel=1e-6)  # |mean difference|^2 = 8 x 1^2
    assert frechet_distance(real, 2 * real) > frechet_distance(real, 1.1 * real) > 0
    assert image_features(torch.zeros(3, 1, 32, 32)).shape == (3, 256)


def test_a_run_logs_a_sample_grid_and_keeps_the_lowest_fd(workdir, tiny) -> None:
    assert main([*tiny, "run_name=r", "epochs=2", "log_images_every=1"]) == 0
    checkpoint = torch.load(RUN / "best.pt", weights_only=True)
    history = torch.load(RUN / "last.pt", weights_only=True)["history"]
    assert checkpoint["monitor"] == "fd"
    assert checkpoint["best_score"] == min(row["val_fd"] for row in history)
    assert {"d_optimizer", "d_scaler"} <= checkpoint.keys()
    events = EventAccumulator("results/logs/default/r")
    events.Reload()
    assert "samples/fixed_noise" in events.Tags()["images"]
    assert len(events.Images("samples/fixed_noise")) == 2  # one grid per epoch
    assert len(events.Images("discriminator_on_real/val")) == 2


def test_resume_restores_the_discriminator_optimizer(workdir, tiny) -> None:
    assert main([*tiny, "run_name=r", "epochs=1", "scheduler=none"]) == 0
    saved = torch.load(RUN / "last.pt", weights_only=True)
    trainer = trainer_for([*tiny, "run_name=r", "epochs=1", "scheduler=none"])
    trainer.load_state_dict(saved, RUN / "last.pt")
    assert trainer.d_optimizer.state_dict()["state"].keys() == saved["d_optimizer"]["state"].keys()
    step = next(iter(trainer.d_optimizer.state_dict()["state"].values()))["step"]
    assert step == saved["global_step"]  # one discriminator step per generator step
{% include "tasks/gan/test_data_" ~ cookiecutter.dataset ~ ".py" ignore missing %}
