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

from checks import SanityError, train_on
from config import Config, apply_overrides
{% if cookiecutter.dataset == "image_folder" %}
from dataset import image_channels, make_dataloaders, write_example_images
{% else %}
from dataset import image_channels
{% endif %}
from helpers import FINISHED, task_for
from main import main
from model import build_model, frechet_distance, image_features
from train import Trainer, build_optimizer
from utils import seed_everything

RUN = Path("models/checkpoints/default/r")
CHANNELS = image_channels(Config())


def trainer_for(overrides: list[str]) -> Trainer:
    cfg = apply_overrides(Config(), overrides)
    seed_everything(cfg.seed)
    task = task_for(overrides)
    return Trainer(task, cfg, torch.device("cpu"), build_optimizer(cfg, task))


def a_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(8, CHANNELS, 32, 32) * 2 - 1, torch.zeros(8, dtype=torch.long)


def test_the_networks_have_the_right_shapes() -> None:
    model = build_model(apply_overrides(Config(), ["width=8", "latent_dim=16"]), CHANNELS)
    samples = model.sample(5)
    assert samples.shape == (5, CHANNELS, 32, 32) and samples.abs().max() <= 1
    assert model.discriminator(samples).shape == (5,)
    assert model(samples).shape == (5, 2)  # logits on real and on fake


def test_each_step_trains_both_networks_with_their_own_optimizers(workdir, tiny) -> None:
    trainer = trainer_for([*tiny, "grad_clip=0"])
    task, model = trainer.task, trainer.model
    generator = {id(p) for p in model.generator.parameters()}
    assert {id(p) for g in trainer.optimizer.param_groups for p in g["params"]} == generator
    assert all(g["betas"] == (0.5, 0.999) for g in trainer.optimizer.param_groups)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    task.train()
    step = task.training_step(a_batch())
    # The discriminator has taken its step in the training step; the generator has not yet.
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("discriminator.") for n in changed)
    after_discriminator = {name: p.detach().clone() for name, p in model.named_parameters()}
    step.loss.backward()
    trainer.optimizer_step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, after_discriminator[n])}
    assert changed and all(n.startswith("generator.") for n in changed)
    assert step.outputs.shape == (8, CHANNELS, 32, 32)  # the fakes the generator's loss scored
    assert {"d_loss", "d_real", "d_fake"} == step.logs.keys()


def test_the_discriminators_first_step_is_checked_too(workdir, tiny) -> None:
    trainer = trainer_for(tiny)
    unused = torch.nn.Parameter(torch.zeros(3))
    trainer.model.discriminator.register_parameter("unused", unused)
    trainer.task.d_optimizer.add_param_group({"params": [unused]})
    trainer.check_first_step()
    missing = r"1 of \d+ trainable parameters received no gradient: discriminator \(unused\)"
    with pytest.raises(SanityError, match=missing):
        train_on(trainer, a_batch())


def test_a_rising_generator_loss_is_no_warning(workdir, tiny) -> None:
    assert not task_for(tiny).loss_falls  # it rises as the discriminator learns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*tiny, "run_name=r", "epochs=1", "loss_check_steps=5"]) == 0
    assert not [w for w in caught if "has not decreased" in str(w.message)]


def moments(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return features.mean(dim=0), torch.cov(features.T, correction=0)


def test_the_frechet_distance_is_zero_for_the_same_set_and_grows_with_a_shift() -> None:
    torch.manual_seed(0)
    real = torch.randn(500, 8).double()
    assert frechet_distance(*moments(real), *moments(real)) == pytest.approx(0, abs=1e-6)
    shifted = frechet_distance(*moments(real), *moments(real + 1.0))
    assert shifted == pytest.approx(8.0, rel=1e-6)  # |mean difference|^2 = 8 x 1^2
    doubled = frechet_distance(*moments(real), *moments(2 * real))
    assert doubled > frechet_distance(*moments(real), *moments(1.1 * real)) > 0
    assert image_features(torch.zeros(3, 1, 32, 32)).shape == (3, 256)


def test_a_run_logs_a_sample_grid_and_keeps_the_lowest_fd(finished) -> None:
    checkpoint = torch.load(RUN / "best.pt", weights_only=True)
    history = torch.load(RUN / "last.pt", weights_only=True)["history"]
    assert checkpoint["monitor"] == "fd"
    assert checkpoint["best_score"] == min(row["val_fd"] for row in history)
    assert {"d_optimizer", "d_scaler"} <= checkpoint["task"]["_extra_state"].keys()
    events = EventAccumulator("results/logs/default/r")
    events.Reload()
    assert "samples/fixed_noise" in events.Tags()["images"]
    assert len(events.Images("samples/fixed_noise")) == 1  # a short run's: at its end
    assert len(events.Images("discriminator_on_real/val")) == 1


def test_resume_restores_the_discriminator_optimizer(finished) -> None:
    saved = torch.load(RUN / "last.pt", weights_only=True)
    trainer = trainer_for(FINISHED)
    trainer.load_state_dict(saved, RUN / "last.pt")
    d_optimizer = trainer.task.d_optimizer.state_dict()
    saved_state = saved["task"]["_extra_state"]["d_optimizer"]["state"]
    assert d_optimizer["state"].keys() == saved_state.keys()
    step = next(iter(d_optimizer["state"].values()))["step"]
    assert step == saved["global_step"]  # one discriminator step per generator step
{% include "tasks/gan/test_data_" ~ cookiecutter.dataset ~ ".py" ignore missing %}
