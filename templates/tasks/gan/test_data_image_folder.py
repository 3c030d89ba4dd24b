

def write_image(path: Path, size: tuple[int, int] = (40, 40), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.effect_noise(size, 60).convert(mode).save(path)  # noise: no two files are the same


def test_a_messy_folder_trains_and_tests_with_its_problems_named(workdir, tiny, capsys) -> None:
    data = workdir / "data"
    write_image(data / "holiday" / "2019" / "big.jpg", (300, 120))  # any depth, any size
    write_image(data / "grey.png", mode="L")  # and any mode: converted to rgb
    write_image(data / "alpha.png", mode="RGBA")
    (data / "notes.txt").write_text("not an image, ignored")
    (data / "holiday" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    assert main([*tiny, "run_name=r"]) == 2
    err = capsys.readouterr().err
    assert "1 file under data cannot be read as an image: holiday/broken.png" in err
    assert "skip_bad_files=true" in err and "Traceback" not in err
    assert not (RUN / "last.pt").exists()

    assert main([*tiny, "run_name=r", "skip_bad_files=true"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable file: holiday/broken.png" in out
    assert "resize to 32x32, rgb" in out
    assert main(["--test", str(RUN / "best.pt")]) == 0
    assert "test_fd" in capsys.readouterr().out


def test_an_empty_data_folder_says_what_to_put_there(workdir, tiny, capsys) -> None:
    shutil.rmtree(workdir / "data")
    (workdir / "data" / "train").mkdir(parents=True)
    assert main(["--overfit-batch"]) == 2
    err = capsys.readouterr().err
    assert "data/train holds no images" in err and "Traceback" not in err


def test_the_split_is_disjoint_reproducible_and_saved(workdir, tiny, capsys) -> None:
    cfg = apply_overrides(Config(), [*tiny, "run_name=r"])
    loaders = make_dataloaders(cfg)
    assert [len(loader.dataset) for loader in loaders] == [279, 60, 60]
    splits = json.loads((RUN / "data.json").read_text())["splits"]
    files = [{path for (path,) in splits[name]} for name in ("train", "val", "test")]
    assert not (files[0] & files[1] or files[0] & files[2] or files[1] & files[2])
    again = make_dataloaders(apply_overrides(cfg, ["run_name=other"]))
    for loader, same in zip(loaders, again, strict=True):  # same seed, same split
        assert torch.equal(loader.dataset.images, same.dataset.images)
    reseeded = make_dataloaders(apply_overrides(cfg, ["run_name=third", "seed=1"]))
    assert not torch.equal(reseeded[2].dataset.images, loaders[2].dataset.images)

    # --test reads the saved split, whatever arrives in data/ later; a lost file is named.
    assert main([*tiny, "run_name=r", "epochs=1", "overwrite=true"]) == 0
    capsys.readouterr()
    for number in range(30):
        write_image(workdir / "data" / f"new_{number}.png")
    assert main(["--test", str(RUN / "best.pt")]) == 0
    assert "on 60 test samples" in capsys.readouterr().out
    gone = splits["test"][0][0]
    (workdir / "data" / gone).unlink()
    assert main(["--test", str(RUN / "best.pt")]) == 2
    assert f"1 file of this run's split is gone from data: {gone}" in capsys.readouterr().err


def test_own_train_val_test_folders_are_used_as_they_are(workdir, tiny) -> None:
    data = workdir / "data"
    shutil.rmtree(data)
    for split, count in (("train", 20), ("val", 4), ("test", 3)):
        write_example_images(data / split, per_class=count, seed=len(split))
    loaders = make_dataloaders(apply_overrides(Config(), tiny))
    assert [len(loader.dataset) for loader in loaders] == [60, 12, 9]


def test_only_training_images_are_mirrored_and_grey_makes_a_grey_gan(workdir, tiny) -> None:
    cfg = apply_overrides(Config(), [*tiny, "hflip=true"])  # off by default
    train, val, _ = (loader.dataset for loader in make_dataloaders(cfg))
    plain = train.images[0].float().div(255).sub(0.5).div(0.5)
    views = [train[epoch, 0][0] for epoch in range(20)]
    assert torch.equal(train[3, 0][0], views[3])  # the same view for the same (epoch, index)
    mirrored = [torch.equal(view, plain.flip(-1)) for view in views]
    assert 0 < sum(mirrored) < 20  # each epoch draws anew, about half the time
    assert all(torch.equal(view, plain) for view, m in zip(views, mirrored, strict=True) if not m)
    assert torch.equal(val[0][0], val.images[0].float().div(255).sub(0.5).div(0.5))

    grey = apply_overrides(cfg, ["color=grey", "resize=center_crop"])
    assert make_dataloaders(grey)[1].dataset[0][0].shape == (1, 32, 32)
    assert build_model(grey, image_channels(grey)).sample(2).shape == (2, 1, 32, 32)
