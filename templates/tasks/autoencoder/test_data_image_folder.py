

def test_pretraining_adds_the_unlabeled_images_and_the_classifiers_see_labels(workdir) -> None:
    write_example_images(workdir / "data", per_class=0, unlabeled=120, seed=7)
    pretrain = apply_overrides(Config(), ["stage=pretrain", "run_name=r"])
    train, val, test = make_dataloaders(pretrain)
    images, targets = next(iter(train))
    assert torch.equal(images, targets)  # each image is its own target
    assert images.shape[1:] == (3, 32, 32) and -1 <= images.min() < images.max() <= 1
    assert [len(loader.dataset) for loader in (train, val, test)] == [279 + 120, 60, 60]
    saved = json.loads((RUNS / "r" / "data.json").read_text())
    assert saved["classes"] == ["circle", "square", "triangle"]
    assert len(saved["splits"]["unlabeled"]) == 120

    finetune = apply_overrides(pretrain, ["stage=finetune", "labeled_fraction=0.1"])
    train, val, test = make_dataloaders(finetune)  # the same split, from data.json
    assert len(val.dataset) == len(test.dataset) == 60
    assert val.dataset.class_counts() == {"circle": 20, "square": 20, "triangle": 20}
    assert train.dataset.class_counts() == {"circle": 9, "square": 9, "triangle": 9}
    images, labels = next(iter(train))
    assert labels.dtype == torch.int64 and images.shape[1:] == (3, 32, 32)
    assert main(["labeled_fraction=1.5"]) == 2


def test_folders_that_cannot_train_a_classifier_are_named(workdir, capsys) -> None:
    data = workdir / "data"
    shutil.rmtree(data / "square")
    shutil.rmtree(data / "triangle")
    assert main(["--overfit-batch"]) == 2
    err = capsys.readouterr().err
    assert "found 1 class under data (circle); a classifier needs at least two" in err
    (data / "dog").mkdir()
    assert main(["--overfit-batch"]) == 2
    assert "the class folder data/dog has no images" in capsys.readouterr().err
    shutil.rmtree(data)
    data.mkdir()
    assert main(["--overfit-batch"]) == 2
    err = capsys.readouterr().err
    assert "data holds no images" in err and "Traceback" not in err


def test_a_broken_unlabeled_file_is_named_or_skipped(workdir, capsys) -> None:
    (workdir / "data" / "unlabeled").mkdir()
    (workdir / "data" / "unlabeled" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    args = ["stage=pretrain", "width=8", "epochs=1", "color=grey", "resize=center_crop"]
    assert main(args) == 2
    assert "1 file under data cannot be read as an image: unlabeled/broken.jpg" in (
        capsys.readouterr().err
    )
    assert main([*args, "skip_bad_files=true", "run_name=r"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable file: unlabeled/broken.jpg" in out
    assert "0 unlabeled images for pretraining" in out and "center_crop to 32x32, grey" in out


def test_own_train_val_test_folders_are_used_as_they_are(workdir) -> None:
    data = workdir / "data"
    shutil.rmtree(data)
    for split, count in (("train", 20), ("val", 4), ("test", 3)):
        write_example_images(data / split, per_class=count, seed=len(split))
    write_example_images(data, per_class=0, unlabeled=30)  # beside train/, not in it
    loaders = make_dataloaders(apply_overrides(Config(), ["stage=pretrain"]))
    assert [len(loader.dataset) for loader in loaders] == [60 + 30, 12, 9]
