def labelled_grid(
    images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, names: list[str]
) -> Figure:
    """Images titled with their predicted class: green when right, red with the true class
    when wrong."""
    predicted, true = logits.argmax(1).tolist(), labels.tolist()
    right = [p == t for p, t in zip(predicted, true, strict=True)]
    titles = [
        names[p] if ok else f"{names[p]}\n(true {names[t]})"
        for p, t, ok in zip(predicted, true, right, strict=True)
    ]
    return titled_grid(images, titles, ["tab:green" if ok else "tab:red" for ok in right])
