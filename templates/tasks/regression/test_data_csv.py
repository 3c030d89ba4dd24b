TRUTH = {"area_m2": 2.5, "rooms": 15.0, "age_years": -0.8, "distance_km": -4.0}  # see dataset.py
CSV = Path("data/data.csv")


def test_training_recovers_the_example_equation_in_the_columns_own_units(workdir, tiny, capsys):
    assert main([*tiny, "model=linear", "epochs=10", "run_name=r"]) == 0
    out = capsys.readouterr().out
    equation = out.split("learned  price_k = ")[1].splitlines()[0]
    terms = dict(reversed(term.split()) for term in equation.replace("- ", "+ -").split(" + ")[:-1])
    for column, weight in TRUTH.items():
        assert float(terms[column]) == pytest.approx(weight, rel=0.15), equation
    assert "predicting price_k from 4 columns: area_m2, rooms, age_years, distance_km" in out


def test_the_training_statistics_travel_inside_the_checkpoint(workdir) -> None:
    assert main(["epochs=1", "run_name=r"]) == 0
    saved = load_checkpoint(Path("models/checkpoints/default/r/best.pt"), torch.device("cpu"))
    train = make_dataloaders(Config(run_name="r"))[0].dataset
    standardized = train.inputs * saved["model"]["0.scale"] + saved["model"]["0.shift"]
    assert torch.allclose(standardized.mean(dim=0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(standardized.std(dim=0), torch.ones(4), atol=1e-5)
    y_mean, y_std = train.targets.mean(dim=0), train.targets.std(dim=0)
    assert torch.allclose(saved["model"]["2.shift"], y_mean)
    assert torch.allclose(saved["model"]["2.scale"], y_std)


def test_a_column_of_large_values_is_standardised_exactly(workdir) -> None:
    rows = CSV.read_text().splitlines()  # area_m2 far from 0, constant in float32: input 0
    rows[1:] = [f"{1e30 + i},{row.split(',', 1)[1]}" for i, row in enumerate(rows[1:])]
    CSV.write_text("\n".join(rows))
    statistics = training_statistics(Config())
    train = make_dataloaders(Config())[0].dataset
    standardized = (train.inputs - statistics["x_mean"]) / statistics["x_std"]
    assert standardized[:, 0].abs().max() == 0 and standardized[:, 1:].abs().max() < 10


def test_the_rows_are_shuffled_split_saved_and_a_changed_file_refused(workdir, capsys) -> None:
    assert main(["epochs=1", "run_name=r"]) == 0
    index = json.loads(Path("models/checkpoints/default/r/data.json").read_text())
    splits = index["splits"]
    assert [len(splits[name]) for name in ("train", "val", "test")] == [280, 60, 60]
    assert sorted(sum(splits.values(), [])) == list(range(400))  # disjoint, every row once
    assert splits["test"] != list(range(340, 400))  # shuffled: a sorted CSV still splits fairly
    assert main(["epochs=1", "run_name=again"]) == 0
    again = json.loads(Path("models/checkpoints/default/again/data.json").read_text())
    assert again["splits"] == splits  # the same seed, the same split

    assert main(["--test", "models/checkpoints/default/r/best.pt"]) == 0
    with CSV.open("a") as file:
        file.write("80.0,3,10,5.0,300.0\n")
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


def replace_line_4(text: str) -> Callable[[str], str]:
    """An edit of data.csv that puts `text` in place of its fourth line (the third data row)."""
    return lambda csv: "\n".join([*csv.splitlines()[:3], text, *csv.splitlines()[4:]]) + "\n"


def test_the_columns_of_a_run_cannot_change_when_it_resumes(workdir, capsys) -> None:
    assert main(["epochs=1", "scheduler=step", "run_name=r"]) == 0
    last = "models/checkpoints/default/r/last.pt"
    assert main(["--resume", last, "epochs=2", "features=area_m2,rooms"]) == 2
    err = capsys.readouterr().err
    assert "features='' (given 'area_m2,rooms') cannot change on --resume" in err
    assert main(["--resume", last, "epochs=2"]) == 0
    # Its data index still guards the columns of a run where the config says nothing of them.
    capsys.readouterr()
    assert main(["--test", last, "features=area_m2,rooms"]) == 2
    assert "predicts price_k from area_m2, rooms, age_years, distance_km" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "overrides", "message"),
    [
        (lambda csv: "", [], "needs a header row and at least one row of data"),
        (replace_line_4("80.0,3,10,5.0"), [], "the header has 5 columns but line 4 does not"),
        (replace_line_4("80.0,three,10,5.0,300"), [], "non-numeric or infinite value in the "),
        (replace_line_4("80.0,,10,5.0,300.0"), [], "1 row has an empty, non-numeric"),
        (replace_line_4("80.0,3,inf,5.0,300.0"), [], "line 4; the first is 'inf' in column age"),
        (replace_line_4("80.0,3,1_0,5.0,300.0"), [], "the first is '1_0' in column age_years."),
        (str, ["target=price"], "has no column 'price'; its columns are area_m2, rooms"),
        (str, ["features=rooms,price_k"], "cannot also be a feature"),
        (str, ["csv_file=houses.csv"], "houses.csv does not exist"),
        (lambda csv: csv.split("\n", 1)[1], [], "starts with a row of numbers ("),
        (lambda csv: csv.replace("rooms", "area_m2", 1), [], "'area_m2' name more than one"),
        (lambda csv: csv.replace(",", ";"), [], "holds ';' but no comma, so its values are"),
        (replace_line_4("80.0,3,10,5.0,1e39"), [], "(or one beyond ±3.4e+38, float32's largest)"),
        (lambda csv: re.sub(r",[^,\n]+$", ",7", csv, flags=re.M), [], "holds one value, 7, in"),
    ],
)
def test_bad_csv_files_are_named_with_what_to_do(workdir, capsys, edit, overrides, message):
    CSV.write_text(edit(CSV.read_text()))
    assert main([*overrides, "epochs=1"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert [p.name for p in workdir.iterdir()] == ["data"]  # nothing written


@settings(max_examples=150, deadline=None)
@example(text='a\r"\r')  # a quoted value holding a line end, as written
@given(st.text(alphabet=',;"\n\r\t .-0123456789abé\ufeff', max_size=80))
def test_any_csv_text_is_read_as_written_or_refused(tmp_path_factory, text) -> None:
    """Whatever the text, a header of distinct names and rows of one value per column, each
    value as the csv module reads it; or a DataError, never another exception."""
    path = tmp_path_factory.mktemp("csv") / "any.csv"
    path.write_bytes(text.encode())
    try:
        header, rows = read_csv(path)
    except DataError:
        return
    assert all(header) and len(set(header)) == len(header)
    lines = [row for row in csv.reader(text.removeprefix("\ufeff").splitlines(True)) if row]
    assert [name.strip() for name in lines[0][: len(header)]] == header
    assert [row for _, row in rows] == [line[: len(header)] for line in lines[1:]]


def test_a_comma_at_the_end_of_every_line_is_no_column(workdir) -> None:
    rows = CSV.read_text().splitlines()
    expected = [len(loader.dataset) for loader in make_dataloaders(Config())]
    for lines in ([row + "," for row in rows], [rows[0]] + [row + "," for row in rows[1:]]):
        CSV.write_text("\n".join(lines) + "\n")
        loaders = make_dataloaders(Config())
        assert [len(loader.dataset) for loader in loaders] == expected
        assert loaders[0].dataset[0][0].shape == (4,)


def test_predict_gives_each_row_its_target_in_the_columns_units(workdir, tiny, capsys) -> None:
    # The columns in another order, and one the model does not use.
    Path("new.csv").write_text(
        "rooms,area_m2,owner,age_years,distance_km\n3,100.0,ann,10,5.0\n5,180.0,bob,2,1.0\n"
    )
    assert main([*tiny, "model=linear", "epochs=10", "run_name=r"]) == 0
    capsys.readouterr()
    assert main(["--predict", "new.csv"]) == 0
    saved = Path("results/logs/default/r/predictions.csv")
    assert f"2 predictions by models/checkpoints/default/r/best.pt saved to {saved}" in (
        capsys.readouterr().out
    )
    with saved.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["row"] for row in rows] == ["new.csv:2", "new.csv:3"]
    truth = [2.5 * 100 + 15 * 3 - 0.8 * 10 - 4 * 5 + 60, 2.5 * 180 + 15 * 5 - 0.8 * 2 - 4 + 60]
    predicted = [float(row["predicted_price_k"]) for row in rows]
    assert predicted == pytest.approx(truth, rel=0.05)
    first = saved.read_text()
    assert main(["--predict", "new.csv", "new.csv"]) == 0  # a second command: a file of its own
    assert saved.read_text() == first
    assert len(saved.with_name("predictions-2.csv").read_text().splitlines()) == 5

    Path("new.csv").write_text("rooms,area_m2\n3,100.0\n")
    assert main(["--predict", "new.csv"]) == 2
    assert "new.csv has no column 'age_years', 'distance_km'" in capsys.readouterr().err
    Path("new.csv").write_text("rooms,area_m2,age_years,distance_km\n3,100.0,,5.0\n")
    assert main(["--predict", "new.csv"]) == 2
    assert "1 row has an empty, non-numeric or infinite value in the" in capsys.readouterr().err
