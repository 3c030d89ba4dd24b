def build_loss(cfg: Config, class_weights: torch.Tensor | None = None) -> nn.Module:
    """The loss that `cfg.loss` names, with its class weights and label smoothing."""
    if cfg.loss == "focal":
        return FocalLoss(cfg.focal_gamma, class_weights, cfg.label_smoothing)
    return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=cfg.label_smoothing)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): each sample's cross-entropy scaled by (1 - p)^gamma, p the
    probability the model gives its class (or the share its target gives each class), so that
    samples the model already gets right count less; gamma=0 is cross-entropy. Class weights,
    label smoothing and mixed targets work as in nn.CrossEntropyLoss."""

    def __init__(
        self, gamma: float, weight: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.gamma, self.label_smoothing = gamma, label_smoothing
        self.register_buffer("weight", weight)  # saved with the task, as CrossEntropyLoss's

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        probabilities = logits.float().softmax(dim=1)
        shares = targets if targets.dim() == 2 else F.one_hot(targets, logits.shape[1])
        p = (probabilities * shares).sum(dim=1)  # (B,)
        kwargs = {"weight": self.weight, "label_smoothing": self.label_smoothing}
        terms = (1 - p) ** self.gamma * F.cross_entropy(logits, targets, reduction="none", **kwargs)
        if self.weight is not None and targets.dim() == 1:  # a weighted mean, as torch's
            return terms.sum() / self.weight[targets].sum()
        return terms.mean()
