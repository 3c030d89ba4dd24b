

def offline(*args: object, **kwargs: object) -> None:
    raise URLError("[Errno -3] Temporary failure in name resolution")


def test_without_the_files_and_offline_the_run_says_what_to_do(workdir, monkeypatch, capsys):
    (workdir / "data" / CACHE).unlink()
    monkeypatch.setattr(urllib.request, "urlopen", offline)  # tests never download
    assert main(["epochs=1"]) == 2
    err = capsys.readouterr().err
    assert "could not be downloaded" in err and "dataset=image_folder" in err
    assert "Traceback" not in err
    assert not (workdir / "data" / CACHE).exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["data"]  # no run folders


{% if cookiecutter.dataset == "mnist" %}
def write_official_files(folder: Path, images: torch.Tensor, labels: torch.Tensor, name: str):
    """`images` (N, 1, 28, 28) and `labels` in the files MNIST is downloaded as (idx format)."""
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIII", 0x0803, len(images), 28, 28)
    (raw / f"{name}-images-idx3-ubyte").write_bytes(header + images.numpy().tobytes())
    header = struct.pack(">II", 0x0801, len(labels))
    (raw / f"{name}-labels-idx1-ubyte").write_bytes(header + labels.byte().numpy().tobytes())


def accept_stand_in_files(monkeypatch) -> None:
    """MNIST checks only that its files exist."""
{% else %}
def write_official_files(folder: Path, images: torch.Tensor, labels: torch.Tensor, name: str):
    """`images` (N, 3, 32, 32) and `labels` in the files CIFAR-10 is downloaded as (pickles)."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True, exist_ok=True)
    names = ["test_batch"] if name == "t10k" else [f"data_batch_{i}" for i in range(1, 6)]
    pixels, targets = images.flatten(1).tensor_split(len(names)), labels.tensor_split(len(names))
    for batch_name, data, batch_labels in zip(names, pixels, targets, strict=True):
        batch = {"data": data.numpy(), "labels": batch_labels.tolist()}
        (batches / batch_name).write_bytes(pickle.dumps(batch))
    (batches / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}))


def accept_stand_in_files(monkeypatch) -> None:
    """CIFAR-10 checks its files' MD5 sums, which stand-in files cannot match."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)
{% endif %}


def test_the_official_files_are_converted_once_into_one_tensor_file(workdir, monkeypatch):
    cache = workdir / "data" / CACHE
    stand_in = torch.load(cache, weights_only=True)
    cache.unlink()
    for source, name in (("train", "train"), ("test", "t10k")):
        images, labels = stand_in[f"{source}_images"], stand_in[f"{source}_labels"]
        write_official_files(workdir / "data", images, labels, name)
    accept_stand_in_files(monkeypatch)
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    train, val, test = make_dataloaders(Config())
    converted = torch.load(cache, weights_only=True)
    assert converted.keys() == stand_in.keys()
    for key, tensor in stand_in.items():
        assert torch.equal(converted[key], tensor), key
    assert (len(train.dataset), len(val.dataset), len(test.dataset)) == (280, 50, 60)


def test_copies_are_dropped_and_the_test_split_is_the_official_test_set(workdir, capsys) -> None:
    cache = workdir / "data" / CACHE
    data = torch.load(cache, weights_only=True)
    data["train_images"][7] = data["train_images"][3]  # a copy inside the training set
    data["test_images"][0] = data["train_images"][5]  # a training image in the test set
    torch.save(data, cache)
    assert main(["epochs=1", "width=8", "run_name=r"]) == 0
    assert "2 exact copies dropped" in capsys.readouterr().out
    index = json.loads(Path("models/checkpoints/default/r/data.json").read_text())
    assert index["test"] == list(range(1, 60))
    assert sorted(index["train"] + index["val"]) == [i for i in range(330) if i != 7]
    val_labels = data["train_labels"][index["val"]]
    assert torch.bincount(val_labels).tolist() == [5] * 10  # stratified: 15% of each class


def test_augmentation_changes_training_images_only(workdir) -> None:
    train, val, _ = make_dataloaders(Config())
    first, again = train.dataset[(0, 0)][0], train.dataset[(0, 0)][0]
    assert torch.equal(first, again)  # seeded by (seed, epoch, index)
    epochs = torch.stack([train.dataset[(epoch, 0)][0] for epoch in range(8)])
    assert not all(torch.equal(epochs[0], image) for image in epochs[1:])
    assert torch.equal(val.dataset[0][0], val.dataset[0][0])
    assert train.dataset[(0, 0)][0].shape == (IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
