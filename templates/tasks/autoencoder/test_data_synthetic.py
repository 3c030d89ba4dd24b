

def test_pretraining_sees_images_only_and_the_classifiers_few_labels(workdir) -> None:
    pretrain = apply_overrides(Config(), ["num_samples=400", "stage=pretrain"])
    train, val, _ = make_dataloaders(pretrain)
    images, targets = next(iter(train))
    assert torch.equal(images, targets)  # each image is its own target
    assert len(train.dataset) == 280 and len(val.dataset) == 60

    finetune = apply_overrides(pretrain, ["stage=finetune", "labeled_fraction=0.1"])
    train, val, test = make_dataloaders(finetune)
    images, labels = next(iter(train))
    assert labels.dtype == torch.int64 and images.shape[1:] == (1, 32, 32)
    assert len(train.dataset) == 28 and len(val.dataset) == 60 and len(test.dataset) == 60
    assert sum(train.dataset.class_counts().values()) == 28
    assert set(train.dataset.class_counts()) == set(CLASSES)


def test_test_noise_shifts_the_test_split_only(workdir) -> None:
    plain = apply_overrides(Config(), ["num_samples=400", "stage=scratch"])
    shifted = apply_overrides(plain, ["test_noise=0.3"])
    for split, (a, b) in enumerate(
        zip(make_dataloaders(plain), make_dataloaders(shifted), strict=True)
    ):
        same = torch.equal(a.dataset.images, b.dataset.images)
        assert same == (split < 2), split  # train and val untouched, test shifted
    images = generate_shapes(20, 16, 0.1, seed=0)["images"]
    assert torch.equal(add_noise(images, 0.3, seed=1), add_noise(images, 0.3, seed=1))
    assert add_noise(images, 0.0, seed=1) is images
