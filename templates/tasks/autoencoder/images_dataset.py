class Images(Dataset):
    """Images without labels, kept in memory as uint8: each image is its own target."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images  # (N, C, H, W) uint8

    def __len__(self) -> int:
        return len(self.images)

    def image(self, index: int) -> torch.Tensor:
        return self.images[index].float().div_(255).sub_(0.5).div_(0.5)  # to [-1, 1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.image(index)
        return image, image

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per sample, to find samples that are in two splits."""
        return [
            hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest()
            for image in self.images
        ]


class LabeledImages(Images):
    """Images with their class indices, for the classifier stages; a training split that is a
    share of the labelled training images (`labeled_fraction`) knows how many it was drawn from."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: tuple[str, ...],
        drawn_from: int | None = None,
    ) -> None:
        super().__init__(images)
        self.labels = labels  # (N,) int64
        self.classes = classes
        self.drawn_from = drawn_from or len(labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(index), self.labels[index]

    def class_counts(self) -> dict[str, int]:
        """How many samples of each class this split holds."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))


def labeled_count(num_train: int, cfg: Config) -> int:
    """How many training images the classifier stages may use the labels of."""
    return max(1, round(cfg.labeled_fraction * num_train))


def add_noise(images: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """`images` (uint8) with extra Gaussian noise of `std` (intensities 0-1): a distribution
    shift between training and test, the setting test-time training is meant for."""
    if std == 0:
        return images
    generator = torch.Generator().manual_seed(seed + 1)
    noise = std * 255 * torch.randn(images.shape, generator=generator)
    return (images.float() + noise).clamp(0, 255).round().to(torch.uint8)
