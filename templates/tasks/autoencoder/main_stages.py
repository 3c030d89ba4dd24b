def train_stages(cfg: Config, overrides: list[str], resume: str | None = None) -> int:
    """The pipeline of stage=all, finetune and scratch, each stage a run of its own; stage=pretrain
    and --resume train one run (see `train`).

    all: pretrain the autoencoder on every training image, without labels, as run
    <name>-pretrain; then finetune. finetune: train the head of a classifier on the frozen
    pretrained encoder with the labels of `labeled_fraction` of the training images
    (<name>-finetune), then the same classifier from scratch on the same labels (<name>-scratch),
    and print both accuracies. scratch: that baseline alone. A stop prints how to finish the
    stage it hit and run the others, with the same `overrides`.
    """
    if resume is not None or cfg.stage == "pretrain":
        return train(cfg, overrides, resume)
    if cfg.folds > 1:
        raise ConfigError(
            f"folds={cfg.folds} cross-validates one run, not the runs of stage={cfg.stage}; use "
            "it with stage=pretrain."
        )
    name = cfg.run_name or new_run_name(cfg)
    stages = {"all": ("pretrain", "finetune", "scratch"), "finetune": ("finetune", "scratch")}
    runs = {}
    for stage in stages.get(cfg.stage, ("scratch",)):
        epochs = cfg.epochs if stage == "pretrain" else cfg.finetune_epochs
        changes = [f"stage={stage}", f"run_name={name}-{stage}", f"epochs={epochs}"]
        runs[stage] = apply_overrides(cfg, changes)
        refuse_to_replace(runs[stage])  # now, not after the stages before it have trained
    # the overrides to repeat in the commands below, which set these keys themselves
    same = " ".join(overrides_without(overrides, ("stage", "run_name", "encoder_from")))

    if "pretrain" in runs:
        best = RunPaths.for_run(runs["pretrain"]).checkpoints / "best.pt"
        exit_code, _ = fit(runs["pretrain"])
        if exit_code:
            print(
                "after resuming it, run the other stages with:\n"
                f"    python src/main.py {same} stage=finetune run_name={name} encoder_from={best}"
            )
            return exit_code
        runs["finetune"] = apply_overrides(runs["finetune"], [f"encoder_from={best}"])
    accuracy = {}
    if "finetune" in runs:
        encoder_from = find_pretrain_checkpoint(runs["finetune"])
        finetune = apply_overrides(runs["finetune"], [f"encoder_from={encoder_from}"])
        seed_everything(cfg.seed)  # the head starts from the same weights as in the scratch run
        task = build_task(finetune, **model_inputs(finetune))
        load_encoder(task.model, encoder_from)
        print(f"\nfinetune: the encoder of {encoder_from}, frozen")
        exit_code, trainer = fit(finetune, task=task)
        if exit_code:
            print(
                "after resuming it, train the baseline with:\n"
                f"    python src/main.py {same} stage=scratch run_name={name}"
            )
            return exit_code
        accuracy["pretrained encoder (frozen), trained head"] = trainer.best_epoch()["val_acc"]
    print("\nscratch: the same classifier, every layer trained from random weights")
    exit_code, trainer = fit(runs["scratch"])
    if exit_code:
        return exit_code
    accuracy["the same classifier from scratch"] = trainer.best_epoch()["val_acc"]
    used = make_dataloaders(runs["scratch"])[0].dataset  # the labelled share, as trained on
    share = f"{len(used)} of the {used.drawn_from} training images"
    print(f"\nval accuracy with the labels of {share} ({len(used) / used.drawn_from:.0%}):")
    for what, value in accuracy.items():
        print(f"  {value:.4f}  {what}")
    return 0


def refuse_stages_to_tune(cfg: Config) -> None:
    """--tune trains one run per trial: stage=all and finetune train several."""
    if cfg.stage in ("all", "finetune"):
        raise ConfigError(
            f"--tune trains one run per trial, and stage={cfg.stage} trains several. Tune one "
            "stage: stage=pretrain (the autoencoder's reconstruction) or stage=scratch (the "
            "classifier on the labelled images)."
        )


