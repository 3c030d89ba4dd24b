class RegressionDataset(TensorBatches, Dataset):
    """Inputs and targets kept in memory."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs = inputs  # (N, features)
        self.targets = targets  # (N, 1)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per sample (inputs and target), to find samples that are in two splits."""
        rows = torch.cat([self.inputs, self.targets], dim=1)
        return [hashlib.blake2b(row.numpy().tobytes(), digest_size=16).digest() for row in rows]
