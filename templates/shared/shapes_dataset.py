class ShapesDataset(TensorBatches, Dataset):
    """Images kept in memory as uint8 and turned into float tensors in [-1, 1] on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images  # (N, 1, H, W) uint8
        self.labels = labels  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].float().div_(255).sub_(0.5).div_(0.5)  # to [-1, 1]
        return image, self.labels[index]

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per sample, to find samples that are in two splits."""
        return [
            hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest()
            for image in self.images
        ]

    def class_counts(self) -> dict[str, int]:
        """How many samples of each class this split holds."""
        counts = torch.bincount(self.labels, minlength=len(CLASSES)).tolist()
        return dict(zip(CLASSES, counts, strict=True))
