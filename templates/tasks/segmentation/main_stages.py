def train_stages(cfg: Config, overrides: list[str], resume: str | None = None) -> int:
    """stage=coarse_to_fine: two runs, then the pipeline's score on the validation split; the
    other stages and --resume train one run (see `train`).

    <name>-coarse learns to segment images shrunk by `coarse_factor`, which is cheap and enough
    to find where the shape is; <name>-fine learns to segment `crop_size` crops around the shape
    at full resolution. Together (see `segment_coarse_to_fine`) they segment full images while
    the expensive model only ever sees a crop. A stop prints how to finish the stage it hit and
    run the other, with the same `overrides`.
    """
    if resume is not None or cfg.stage != "coarse_to_fine":
        return train(cfg, overrides, resume)
    if cfg.folds > 1:
        raise ConfigError(
            f"folds={cfg.folds} cross-validates one run, not the runs of stage={cfg.stage}; use "
            "it with stage=full, coarse or fine."
        )
    name = cfg.run_name or new_run_name(cfg)
    runs = {
        stage: apply_overrides(cfg, [f"stage={stage}", f"run_name={name}-{stage}"])
        for stage in ("coarse", "fine")
    }
    for run in runs.values():
        refuse_to_replace(run)  # now, not after the coarse stage has trained
    # the overrides to repeat in the commands below, which set these keys themselves
    same = " ".join(overrides_without(overrides, ("stage", "run_name", "coarse_from")))
    coarse_best = RunPaths.for_run(runs["coarse"]).checkpoints / "best.pt"
    fine = apply_overrides(runs["fine"], [f"coarse_from={coarse_best}"])

    print(f"coarse: images shrunk {cfg.coarse_factor}x, to find the region of the shape")
    exit_code, _ = fit(runs["coarse"])
    if exit_code:
        print(
            "after resuming it, train the fine stage with:\n"
            f"    python src/main.py {same} stage=fine run_name={name}-fine "
            f"coarse_from={coarse_best}"
        )
        return exit_code
    print(f"\nfine: {cfg.crop_size}x{cfg.crop_size} crops around the shape, at full resolution")
    exit_code, trainer = fit(fine)
    if exit_code:
        return exit_code

    fine_best = RunPaths.for_run(fine).checkpoints / "best.pt"
    device = trainer.device
    _, full_val_loader, _ = make_dataloaders(apply_overrides(cfg, ["stage=full"]))
    coarse_model, fine_model = load_trained(coarse_best, device), load_trained(fine_best, device)
    scores = pipeline_scores(coarse_model, fine_model, full_val_loader, fine)
    print(
        f"\ncoarse to fine on the full-size val images: dice {scores['pipeline_dice']:.4f}, "
        f"iou {scores['pipeline_iou']:.4f}; the crops hold {scores['roi_recall']:.1%} of the "
        f"shape pixels\ntest the pipeline: python src/main.py --test {fine_best}"
    )
    return 0


def refuse_stages_to_tune(cfg: Config) -> None:
    """--tune trains one run per trial: stage=coarse_to_fine trains two."""
    if cfg.stage == "coarse_to_fine":
        raise ConfigError(
            "--tune trains one run per trial, and stage=coarse_to_fine trains two. Tune one "
            "stage: stage=full (the default), coarse or fine."
        )


