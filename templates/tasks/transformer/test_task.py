{% if cookiecutter.dataset == "csv" %}
"""What is special to the transformer: your CSV file of texts (its checks, tokenizer, vocabulary
and split), --predict, the padding mask and the metrics."""
{% else %}
"""What is special to the transformer: the pointer sequences, the padding mask, the metrics."""
{% endif %}

from __future__ import annotations

{% if cookiecutter.dataset == "csv" %}
import csv
import json
from pathlib import Path

{% endif %}
import pytest
import torch

from config import Config, apply_overrides
{% if cookiecutter.dataset == "csv" %}
from dataset import PAD, UNK, make_dataloaders, tokenize
{% else %}
from dataset import PAD, SequenceDataset, generate_sequences, make_dataloaders
{% endif %}
from helpers import assert_same_run, task_for, train_stop_and_resume
from main import main
from model import ClassificationMetrics, FocalLoss


def test_padding_does_not_change_a_prediction(workdir, tiny) -> None:
    cfg = apply_overrides(Config(), tiny)
    tokens = next(iter(make_dataloaders(cfg)[0]))[0][:8]
    padded = torch.cat([tokens, torch.full((8, 10), PAD)], dim=1)
    model = task_for([*tiny, f"max_length={cfg.max_length + 10}"]).model.eval()  # room to pad
    with torch.no_grad():
        assert torch.allclose(model(tokens), model(padded), atol=1e-5)
        unmasked = model.encoder(model.positions(model.embed(padded)))[:, 0]
        masked = model.encoder(
            model.positions(model.embed(padded)), src_key_padding_mask=padded == PAD
        )[:, 0]
    assert not torch.allclose(unmasked, masked, atol=1e-3)  # the mask is what makes it so


def test_accuracy_and_macro_f1_match_their_definitions() -> None:
    metrics = ClassificationMetrics(num_classes=3)
    logits = torch.eye(3)[[0, 0, 1, 2, 2, 2]]  # predictions 0 0 1 2 2 2
    labels = torch.tensor([0, 1, 1, 2, 2, 0])
    metrics.update(logits[:3], labels[:3])
    metrics.update(logits[3:], labels[3:])
    values = metrics.compute()
    assert values["acc"] == pytest.approx(4 / 6)
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * 1.0 * 0.5 / 1.5, 2 * (2 / 3) * 1.0 / (5 / 3)]
    assert values["macro_f1"] == pytest.approx(sum(f1) / 3)
    restored = ClassificationMetrics(num_classes=3)
    restored.load_state_dict(metrics.state_dict())
    assert restored.compute() == values


def test_the_loss_and_ema_settings_train_and_resume_exactly(workdir, tiny, monkeypatch) -> None:
    """The settings the image classifier shares (focal loss, label smoothing, the EMA; their
    formulas are tested there) in the transformer's own task."""
    settings = ["loss=focal", "focal_gamma=1", "label_smoothing=0.1", "ema=0.9", "warmup_steps=0"]
    loss_fn = task_for([*tiny, *settings]).loss_fn
    assert isinstance(loss_fn, FocalLoss) and (loss_fn.gamma, loss_fn.label_smoothing) == (1, 0.1)
    args = [*tiny, *settings, "epochs=2", "accumulate_steps=2", "deterministic=true"]
    straight, resumed = train_stop_and_resume(args, monkeypatch)
    assert_same_run(straight, resumed)
    assert straight["task"]["ema.n_averaged"] == straight["global_step"]  # once a step


def test_a_head_count_that_does_not_divide_d_model_is_refused(workdir, capsys) -> None:
    assert main(["d_model=30", "num_heads=4"]) == 2
    err = capsys.readouterr().err
    assert "must be even and divisible by num_heads=4" in err and "Traceback" not in err


{% include "tasks/transformer/test_data_" ~ cookiecutter.dataset ~ ".py" %}
