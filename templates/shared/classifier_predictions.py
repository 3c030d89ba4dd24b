def prediction_columns(logits: torch.Tensor, cfg: Config) -> tuple[list[str], list[list[str]]]:
    """The columns --predict prints and saves for each input: the predicted class and its
    confidence, the softmax probability the model gives it."""
    confidences, labels = logits.softmax(dim=1).max(dim=1)
    classes = class_names(cfg)
    rows = zip(labels.tolist(), confidences.tolist(), strict=True)
    return ["prediction", "confidence"], [[classes[label], f"{p:.4f}"] for label, p in rows]
