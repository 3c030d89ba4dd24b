"""What is special to the transformer: the pointer sequences, the padding mask, the metrics."""

from __future__ import annotations

import pytest
import torch

from config import Config, apply_overrides
from dataset import PAD, SequenceDataset, generate_sequences
from main import main
from model import ClassificationMetrics, build_model


def test_the_class_is_the_symbol_the_query_points_at() -> None:
    data = generate_sequences(300, num_symbols=10, min_length=4, max_length=12, seed=3)
    tokens, labels = data["tokens"], data["labels"]
    assert tokens.shape == (300, 13) and labels.shape == (300,)
    lengths = (tokens[:, 1:] != PAD).sum(dim=1)
    assert lengths.min() >= 4 and lengths.max() <= 12
    for row, label, length in zip(tokens, labels, lengths, strict=True):
        symbols = row[1:]
        assert (symbols[:length] != PAD).all() and (symbols[length:] == PAD).all()
        position = int(row[0]) - 1 - 10  # the query @k is token 1 + num_symbols + (k - 1)
        assert 0 <= position < length
        assert symbols[position] - 1 == label
    assert len({tuple(row.tolist()) for row in tokens}) == 300  # no repeats, so no leaks
    assert torch.equal(tokens, generate_sequences(300, 10, 4, 12, seed=3)["tokens"])


def test_every_class_and_position_occurs() -> None:
    data = generate_sequences(2000, num_symbols=10, min_length=4, max_length=32, seed=0)
    counts = SequenceDataset(data["tokens"], data["labels"], num_classes=10).class_counts()
    assert counts == dict.fromkeys("ABCDEFGHIJ", 200)
    assert len(data["tokens"][:, 0].unique()) == 32


def test_padding_does_not_change_a_prediction() -> None:
    cfg = apply_overrides(Config(), ["max_length=20"])
    model = build_model(cfg).eval()
    tokens = generate_sequences(8, 10, 3, 10, seed=1)["tokens"]  # (8, 11)
    padded = torch.cat([tokens, torch.full((8, 10), PAD)], dim=1)  # (8, 21)
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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["d_model=30", "num_heads=4"], "must be even and divisible by num_heads=4"),
        (["min_length=9", "max_length=8"], "min_length (9) is above max_length (8)"),
        (["num_symbols=2", "min_length=1", "max_length=3"], "distinct sequences exist"),
    ],
)
def test_impossible_settings_are_refused(workdir, capsys, overrides, message) -> None:
    assert main(overrides) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
