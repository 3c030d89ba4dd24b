    results.update(flip_tta_scores(trainer.model, test_loader, cfg, device))
    results["dice_tta_gain"] = results["dice_tta"] - results["dice"]
    if cfg.stage == "fine" and cfg.coarse_from:  # the whole pipeline, on full-size test images
        _, _, full_test_loader = make_dataloaders(apply_overrides(cfg, ["stage=full"]))
        coarse = load_trained(Path(cfg.coarse_from), device)
        results.update(pipeline_scores(coarse, trainer.model, full_test_loader, cfg, device))
