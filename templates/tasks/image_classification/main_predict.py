def predict(paths: list[str], checkpoint: str | None, overrides: list[str]) -> int:
    """Classify image files (or the images in folders) and save the predictions as CSV."""
    cfg = apply_overrides(Config(), overrides)
    if checkpoint is None:  # the newest trained model of the experiment
        found = sorted(
            Path(cfg.checkpoint_dir, cfg.experiment).glob("*/best.pt"),
            key=lambda path: path.stat().st_mtime_ns,
        )
        if not found:
            raise ConfigError(
                f"--predict found no trained model (best.pt) under {cfg.checkpoint_dir}/"
                f"{cfg.experiment}; train one first, or name it with --checkpoint PATH."
            )
        checkpoint = str(found[-1])
    checkpoint_path = Path(checkpoint)
    saved = load_checkpoint(checkpoint_path, torch.device("cpu"))
    cfg = apply_overrides(from_dict(saved["config"]), overrides)
    device = resolve_device(cfg.device)
    model = build_model(cfg)
    load_model_weights(model, saved, checkpoint_path)
    model.to(device).eval()
    files, images = prediction_inputs(cfg, [Path(path) for path in paths])
    with torch.inference_mode():
        logits = [model(batch.to(device)).float().cpu() for batch in images.split(cfg.batch_size)]
    confidences, labels = torch.cat(logits).softmax(dim=1).max(dim=1)
    classes = class_names(cfg)
    predictions = zip(files, labels.tolist(), confidences.tolist(), strict=True)
    rows = [(str(path), classes[label], confidence) for path, label, confidence in predictions]
    width = max(len(row[0]) for row in rows)
    for file, name, confidence in rows:
        print(f"{file.ljust(width)}  {name}  {confidence:.3f}")
    output = RunPaths.for_run(cfg).logs / "predictions.csv"
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "prediction", "confidence"])
        writer.writerows((file, name, f"{confidence:.4f}") for file, name, confidence in rows)
    print(f"{len(rows)} predictions by {checkpoint_path} saved to {output}")
    return 0


