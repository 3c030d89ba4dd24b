def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of `model`'s weights and batch-norm statistics, each
    update keeping `decay` of the average (the first copies the model), or None for decay 0.
    The task updates it in after_optimizer_step and evaluates it; no optimizer trains it."""
    if not decay:
        return None
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    return average.requires_grad_(False)
