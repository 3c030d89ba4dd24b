class Accuracy:
    """Accuracy over many batches, summed on the device so a training step never waits for it."""

    def __init__(self) -> None:
        self.correct: torch.Tensor | int = 0
        self.count = 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one batch of predictions. `labels`: class indices (B,), or class probabilities
        (B, classes) for mixed samples (MixUp, CutMix), scored by their largest class."""
        if labels.shape == logits.shape:
            labels = labels.argmax(dim=1)
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.count += labels.numel()

    def state_dict(self) -> dict[str, int]:
        """The counts so far, as plain data for mid-epoch checkpoints."""
        return {"correct": int(self.correct), "count": self.count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.correct, self.count = state["correct"], state["count"]

    def compute(self) -> dict[str, float]:
        """The metrics of everything added so far."""
        return {"acc": float(self.correct) / max(self.count, 1)}
