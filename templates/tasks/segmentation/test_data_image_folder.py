

def write_pair(data: Path, name: str, values: list[int], mode: str = "L") -> None:
    """A 40x40 noise image and a mask of `mode` whose four 20x20 quarters hold `values`."""
    for kind in ("images", "masks"):
        (data / kind).mkdir(parents=True, exist_ok=True)
    Image.effect_noise((40, 40), 60).convert("RGB").save(data / "images" / f"{name}.png")
    mask = Image.new("L", (40, 40))
    for number, value in enumerate(values):
        x, y = 20 * (number % 2), 20 * (number // 2)
        mask.paste(value, (x, y, x + 20, y + 20))
    if mode == "P":
        mask = mask.convert("P")
        mask.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] * 85)  # colours, not the values
    mask.save(data / "masks" / f"{name}.png")


def test_broken_pairs_and_masks_are_named_before_training(workdir, tiny, capsys) -> None:
    data = workdir / "data"
    write_pair(data, "three", [0, 1, 2, 0])
    (data / "images" / "alone.jpg").write_bytes((data / "images" / "three.png").read_bytes())
    assert main(tiny) == 2
    err = capsys.readouterr().err
    assert "1 file under data has no partner: data/images/alone.jpg" in err
    (data / "images" / "alone.jpg").unlink()

    Image.new("RGB", (40, 40)).save(data / "masks" / "circle_000.png")
    Image.new("L", (30, 40)).save(data / "masks" / "circle_001.png")
    assert main(tiny) == 2
    err = capsys.readouterr().err
    assert "3 masks cannot be used: masks/circle_000.png is RGB, not one value per pixel" in err
    assert "masks/circle_001.png is 30x40, its image" in err
    assert "masks/three.png holds the value 2" in err and "Traceback" not in err
    for name in ("circle_000", "circle_001"):
        (data / "masks" / f"{name}.png").unlink()
        (data / "images" / f"{name}.jpg").unlink()

    (data / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (data / "masks" / "broken.png").write_bytes((data / "masks" / "three.png").read_bytes())
    assert main([*tiny, "classes=background,shape,edge"]) == 2
    assert "images/broken.png" in capsys.readouterr().err
    args = [*tiny, "classes=background,shape,edge", "skip_bad_files=true", "run_name=r"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable file: images/broken.png" in out
    assert "pixels per class: background" in out and "edge 0.0%" in out
    assert main(["--test", "models/checkpoints/default/r/best.pt"]) == 0
    assert "test_dice " in capsys.readouterr().out
    assert main([*tiny, "classes=background"]) == 2
    assert "must name at least two distinct classes" in capsys.readouterr().err
    assert main([*tiny, "classes=background,shape,edge,rim", "skip_bad_files=true"]) == 2
    assert "no mask under data holds a pixel of rim (value 3)" in capsys.readouterr().err


def test_masks_keep_their_values_and_stay_on_their_images(workdir, tiny) -> None:
    data = workdir / "data"
    write_pair(data, "palette", [0, 1, 2, 1], mode="P")  # indices, whatever the colours
    overrides = ["classes=background,shape,edge", "hflip=true", "run_name=r"]
    cfg = apply_overrides(Config(), [*tiny, *overrides])
    datasets = [loader.dataset for loader in make_dataloaders(cfg)]
    every = torch.cat([dataset.masks for dataset in datasets])
    assert set(every.unique().tolist()) == {0, 1, 2}  # nearest sampling: no values between
    palette = next(d for d in datasets if any((m == 2).any() for m in d.masks))
    index = next(i for i, m in enumerate(palette.masks) if (m == 2).any())
    assert palette.masks[index][0, 0] == 0 and palette.masks[index][-1, 0] == 2

    # The example scenes: bright shapes on dark backgrounds, mirrored with their masks.
    train = datasets[0]
    for epoch in range(4):
        image, mask = train[epoch, 0]
        brightness = image.mean(dim=0)
        assert brightness[mask == 1].mean() > brightness[mask == 0].mean() + 0.5
    views = {train[epoch, 0][1].flip(-1).equal(train.masks[0].long()) for epoch in range(12)}
    assert views == {True, False}  # mirrored in some epochs, not in others


def test_the_crops_recall_labelled_pixels_of_any_class() -> None:
    cfg = apply_overrides(Config(), ["classes=background,shape,edge", "crop_size=16"])
    images = torch.full((1, 1, 64, 64), -1.0)
    images[0, 0, 40:44, 8:12] = 1.0  # the coarse model's crop: rows 34-49, columns 2-17
    masks = torch.zeros(1, 64, 64, dtype=torch.long)
    masks[0, 40:44, 8:12] = 2  # 16 pixels of class 2 inside the crop
    masks[0, 0:2, 60:62] = 1  # 4 pixels of class 1 outside it
    fine = nn.Conv2d(1, 3, kernel_size=1)
    scores = pipeline_scores(MarksTheBrightest(), fine, [(images, masks)], cfg)
    assert scores["roi_recall"] == pytest.approx(16 / 20)  # pixels, not the sum of their values


def test_the_split_is_disjoint_reproducible_and_saved(workdir, tiny) -> None:
    cfg = apply_overrides(Config(), [*tiny, "run_name=r"])
    assert [len(loader.dataset) for loader in make_dataloaders(cfg)] == [279, 60, 60]
    splits = json.loads(Path("models/checkpoints/default/r/data.json").read_text())["splits"]
    files = [{image for image, _ in splits[name]} for name in ("train", "val", "test")]
    assert not (files[0] & files[1] or files[0] & files[2] or files[1] & files[2])
    assert all(Path(image).stem == Path(mask).stem for image, mask in splits["train"])
    make_dataloaders(apply_overrides(cfg, ["run_name=other"]))
    again = json.loads(Path("models/checkpoints/default/other/data.json").read_text())
    assert again["splits"] == splits


def test_own_train_val_test_folders_are_used_as_they_are(workdir, tiny) -> None:
    data = workdir / "data"
    shutil.rmtree(data)
    for split, count in (("train", 20), ("val", 4), ("test", 3)):
        write_example_images(data / split, per_class=count, seed=len(split))
    loaders = make_dataloaders(apply_overrides(Config(), tiny))
    assert [len(loader.dataset) for loader in loaders] == [60, 12, 9]
