def overfitted(
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    start: dict[str, float],
    end: dict[str, float],
) -> tuple[bool, str]:
    """Whether --overfit-batch has memorised this batch, and that goal in words."""
    goal = 0.01 * start["loss"]
    return (
        end["loss"] <= goal and end["acc"] == 1.0,
        f"the loss down by 99% (to <= {goal:.4g}) and every sample classified correctly",
    )
