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
    classes = list("ABCDEFGHIJ")
    counts = SequenceDataset(data["tokens"], data["labels"], classes, []).class_counts()
    assert counts == dict.fromkeys(classes, 200)
    assert len(data["tokens"][:, 0].unique()) == 32


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["min_length=9", "max_length=8"], "min_length (9) is above max_length (8)"),
        (["num_symbols=2", "min_length=1", "max_length=3"], "distinct sequences exist"),
    ],
)
def test_impossible_settings_are_refused(workdir, capsys, overrides, message) -> None:
    assert main(overrides) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
