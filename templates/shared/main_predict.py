def predict(paths: list[str], checkpoint: str | None, overrides: list[str]) -> int:
    """{{ task.predict_doc }}, and save the predictions as CSV."""
    # argparse hands --predict every argument after it: the key=value ones are overrides
    settings = [path for path in paths if "=" in path and not Path(path).exists()]
    paths, overrides = [path for path in paths if path not in settings], [*overrides, *settings]
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
    cfg = apply_overrides(checkpoint_config(saved, checkpoint_path), overrides)
    restore_data_index(cfg, saved)
    trainer = build(cfg)
    load_weights(trainer.task, saved, checkpoint_path)
    names, inputs = prediction_inputs(cfg, [Path(path) for path in paths])
    model = trainer.task.eval().evaluated()
    with torch.inference_mode():
        outputs = [
            model(batch.to(trainer.device)).float().cpu() for batch in inputs.split(cfg.batch_size)
        ]
    header, values = prediction_columns(torch.cat(outputs), cfg)
    rows = [[name, *row] for name, row in zip(names, values, strict=True)]
    width = min(max(map(len, names)), 60)  # long names are cut on screen, kept in the file
    for name, *row in rows:
        shown = name if len(name) <= width else name[: width - 3] + "..."
        print("  ".join([shown.ljust(width), *row]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["{{ task.predict_column }}", *header])
    writer.writerows(rows)
    output = unused_path(RunPaths.for_run(cfg).logs / "predictions.csv")  # never an earlier one
    atomic_save(buffer.getvalue(), output, write=lambda text, file: file.write(text.encode()))
    print(f"{len(rows)} predictions by {checkpoint_path} saved to {output}")
    return 0


