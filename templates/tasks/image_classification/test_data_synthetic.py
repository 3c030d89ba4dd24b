

def test_the_shapes_are_deterministic_and_balanced() -> None:
    data = generate_shapes(50, 32, 0.4, seed=7)
    images, labels = data["images"], data["labels"]
    assert torch.equal(images, generate_shapes(50, 32, 0.4, seed=7)["images"])
    assert images.shape == (50, 1, 32, 32) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [10] * len(CLASSES)
    assert not torch.equal(images, generate_shapes(50, 32, 0.4, seed=8)["images"])


def test_splits_that_share_samples_are_refused() -> None:
    images, labels = generate_shapes(40, 16, 0.1, seed=0).values()
    train, test = ShapesDataset(images[:30], labels[:30]), ShapesDataset(images[25:], labels[25:])
    with pytest.raises(UserError, match="the train and test splits share 5 samples"):
        check_splits({"train": train, "test": test}, imbalance_ratio=3)


def test_class_counts_are_reported_and_imbalance_is_warned_about() -> None:
    images, labels = generate_shapes(60, 16, 0.1, seed=0).values()
    labels = torch.where(labels == 0, 1, labels)  # no sample of the first class left
    splits = {
        "train": ShapesDataset(images[:50], labels[:50]),
        "val": ShapesDataset(images[50:], labels[50:]),
    }
    with pytest.warns(UserWarning, match="class imbalance in the (train|val) split"):
        report = check_splits(splits, imbalance_ratio=3)
    assert report.splitlines()[0] == "data: train 50, val 10 samples; no sample is in two splits"
    assert report.splitlines()[1].split() == ["class", "train", "val"]
