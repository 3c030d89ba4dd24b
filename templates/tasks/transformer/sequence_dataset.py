class SequenceDataset(TensorBatches, Dataset):
    """Padded token sequences and their labels, kept in memory."""

    def __init__(
        self, tokens: torch.Tensor, labels: torch.Tensor, classes: list[str], keys: list[bytes]
    ) -> None:
        self.tokens = tokens  # (N, length) int64: the first token, the sequence, then PAD
        self.labels = labels  # (N,) int64 indices into `classes`
        self.classes = classes
        self.keys = keys  # one fingerprint per sample

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokens[index], self.labels[index]

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per sample, to find samples that are in two splits."""
        return self.keys

    def class_counts(self) -> dict[str, int]:
        """How many samples of each class this split holds."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))
