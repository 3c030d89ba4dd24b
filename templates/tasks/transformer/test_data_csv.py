CSV = Path("data/data.csv")


def write_csv(rows: list[tuple[str, ...]], header: tuple[str, ...] = ("text", "label")) -> None:
    with CSV.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def numbered_reviews(count: int) -> list[tuple[str, str]]:
    """Reviews that each end in a word of their own (w0, w1, ...), which no other text has."""
    labels = ("negative", "positive")
    return [
        (f"The food was {('bland', 'delicious')[i % 2]}, w{i}.", labels[i % 2])
        for i in range(count)
    ]


def run_index(run: str) -> dict:
    return json.loads(Path(f"models/checkpoints/default/{run}/data.json").read_text())


def test_tokenize_lowercases_and_splits_off_punctuation() -> None:
    assert tokenize("Not bad, Sam!") == ["not", "bad", ",", "sam", "!"]
    assert tokenize("  ") == []


def test_the_vocabulary_comes_from_the_training_texts_alone(workdir, tiny, capsys) -> None:
    write_csv(numbered_reviews(100))
    assert main([*tiny, "epochs=1", "min_count=1", "run_name=r"]) == 0
    index = run_index("r")
    texts = [text for text, _ in numbered_reviews(100)]
    train_words = [word for row in index["splits"]["train"] for word in tokenize(texts[row])]
    assert set(index["vocabulary"]) == set(train_words)
    assert index["vocabulary"][:4] == [",", ".", "food", "the"]  # most frequent first, then a-z
    assert index["classes"] == ["negative", "positive"]
    loaders = make_dataloaders(Config(run_name="r", min_count=1))
    train, val = loaders[0].dataset, loaders[1].dataset
    assert not (train.tokens == UNK).any()
    assert ((val.tokens == UNK).sum(dim=1) == 1).all()  # its own word, never seen in training
    out = capsys.readouterr().out
    assert "vocabulary: 77 words of the training texts, 86% of the val words" in out  # 6 of 7

    assert main([*tiny, "epochs=1", "run_name=common"]) == 0  # min_count=2 by default
    common = {",", ".", "food", "the", "was", "bland", "delicious"}
    assert set(run_index("common")["vocabulary"]) == common
    assert main([*tiny, "epochs=1", "max_vocabulary=3", "run_name=three"]) == 0
    assert run_index("three")["vocabulary"] == [",", ".", "food"]


def test_repeated_texts_are_dropped_and_long_texts_cut(workdir, tiny, capsys) -> None:
    reviews = numbered_reviews(100)
    write_csv([*reviews, reviews[3], (reviews[4][0].upper(), "positive"), reviews[5]])
    assert main([*tiny, "epochs=1", "max_length=6", "run_name=r"]) == 0  # cuts off the "."
    out = capsys.readouterr().out
    assert "100 texts in 2 classes; 3 repeated texts dropped (1 with another label)" in out
    assert "; 100 texts cut to max_length=6 tokens" in out
    index = run_index("r")
    assert sorted(sum(index["splits"].values(), [])) == list(range(100))  # the first of each
    loaders = make_dataloaders(Config(run_name="r", max_length=6))
    assert all(loader.dataset.tokens.shape[1] == 1 + 6 for loader in loaders)


def test_the_split_is_shuffled_saved_and_a_changed_file_refused(workdir, capsys) -> None:
    assert main(["epochs=1", "run_name=r"]) == 0
    index = run_index("r")
    splits = index["splits"]
    assert [len(splits[name]) for name in ("train", "val", "test")] == [280, 60, 60]
    assert sorted(sum(splits.values(), [])) == list(range(400))  # disjoint, every row once
    assert splits["test"] != list(range(340, 400))  # shuffled: a sorted CSV still splits fairly
    assert main(["epochs=1", "run_name=again"]) == 0
    assert run_index("again") == index  # the same seed, the same split and vocabulary

    assert main(["--test", "models/checkpoints/default/r/best.pt"]) == 0
    with CSV.open("a") as file:
        file.write("The view was lovely.,positive\n")
    capsys.readouterr()
    assert main(["--test", "models/checkpoints/default/r/best.pt"]) == 2
    assert "has changed since this run split it" in capsys.readouterr().err
    CSV.unlink()  # gone, then a folder in its place: both said, for --test and --resume alike
    for state in ("is missing", "is now a folder"):
        for command in (["--test", "models/checkpoints/default/r/best.pt"], ["--resume", "auto"]):
            assert main(command) == 2
            err = capsys.readouterr().err
            assert f"the file this run was split from and trained on, {state}" in err, command
            assert "Traceback" not in err
        CSV.mkdir(exist_ok=True)


def test_the_tokenizer_of_a_run_cannot_change_when_it_resumes(workdir, capsys) -> None:
    assert main(["epochs=1", "scheduler=step", "run_name=r"]) == 0
    last = "models/checkpoints/default/r/last.pt"
    assert main(["--resume", last, "epochs=2", "min_count=1"]) == 2
    assert "min_count=2 (given 1) cannot change on --resume" in capsys.readouterr().err
    assert main(["--test", last, "min_count=1"]) == 2  # its data index guards --test too
    assert "were made with min_count=2, and its model learned them" in capsys.readouterr().err
    assert main(["--resume", last, "epochs=2"]) == 0


def test_predict_classifies_lines_and_csv_rows_and_saves_a_csv(finished, capsys) -> None:
    Path("new.txt").write_text("The food was delicious!\n\n  The staff was rude.\n")
    Path("new.csv").write_text('id,text\n7,"The view was dull, the bed was hard."\n')
    # key=value after --predict is an override, not a path: an experiment without a model
    assert main(["--predict", "new.txt", "experiment=untrained"]) == 2
    assert "--predict found no trained model (best.pt)" in capsys.readouterr().err
    assert main(["--predict", "new.txt", "new.csv"]) == 0
    out = capsys.readouterr().out
    saved = Path("results/logs/default/r/predictions.csv")
    assert f"3 predictions by models/checkpoints/default/r/best.pt saved to {saved}" in out
    with saved.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["text"] for row in rows] == [
        "The food was delicious!",
        "The staff was rude.",
        "The view was dull, the bed was hard.",
    ]
    assert all(row["prediction"] in ("negative", "positive") for row in rows)
    assert all(0.5 <= float(row["confidence"]) <= 1 for row in rows)

    assert main(["--predict", "nowhere.txt"]) == 2
    assert "nowhere.txt is not a file" in capsys.readouterr().err
    Path("latin1.txt").write_bytes("Caf\u00e9 was cold.\n".encode("latin-1"))
    assert main(["--predict", "latin1.txt"]) == 2
    assert "latin1.txt is not UTF-8 text (byte 3 cannot be decoded)" in capsys.readouterr().err
    Path("new.csv").write_text("review\nThe food was bland.\n")
    assert main(["--predict", "new.csv"]) == 2
    assert "new.csv has no column 'text', the column of the texts" in capsys.readouterr().err


REPEATED_ONE_LABEL = "has the label 'positive' once its 17 repeated texts are dropped (9 of"
SINGLETONS = b"text,label\n" + b"".join(b"The food was w%d.,c%d\n" % (i, i) for i in range(60))


@pytest.mark.parametrize(
    ("content", "overrides", "message"),
    [
        (b"", [], "needs a header row and at least one row of data"),
        (b"text,label\n", [], "needs a header row and at least one row of data"),
        (b"review,label\nGood.,positive\n", [], "has no column 'text'; its columns are review"),
        (b"text,label\nGood.,positive\n", ["label_column=stars"], "has no column 'stars'"),
        (b"text,label\nGood.,positive\nBad.\n", [], "the header has 2 columns but line 3 does"),
        (b"text,label\nGood.,positive\n ,negative\n", [], "1 row has an empty text or label, on"),
        (b"text,label\nGood.,positive\nBad.,\n", [], "empty text or label, on line 3. Fill in"),
        (b"text,label\nGood.,positive\nFine.,positive\n", [], "a classifier needs at least two"),
        (b"text,label\n\xff\xfeGood.,positive\n", [], "is not UTF-8 text"),
        (None, ["csv_file=reviews.csv"], "reviews.csv does not exist"),
        (None, ["text_column=label"], "text_column and label_column both name the column"),
        (None, ["max_length=1"], "max_length=1 cuts the texts of data/data.csv so short that"),
        (None, ["min_count=100000"], "no word of the training texts appears min_count=100000"),
        (b"text;label\nGood.;positive\n", [], "holds ';' but no comma"),
        (b"text,label\n" + b"Good.,positive\nGood.,negative\n" * 9, [], REPEATED_ONE_LABEL),
        (b"text,label\n" + b"Good.,a\nBad.,b\nFine.,c\n" * 9, [], "holds 3 different texts once"),
        (SINGLETONS, [], "of the 60 classes of data/data.csv have no text in the training split"),
    ],
)
def test_bad_csv_files_are_named_with_what_to_do(workdir, capsys, content, overrides, message):
    if content is not None:
        CSV.write_bytes(content)
    assert main([*overrides, "epochs=1"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert [p.name for p in workdir.iterdir()] == ["data"]  # nothing written
