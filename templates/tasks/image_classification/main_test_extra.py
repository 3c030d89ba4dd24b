    results.update(classification_report(trainer.model, test_loader, cfg, device))
    if cfg.tta:
        results["acc_tta_gain"] = results["acc_tta"] - results["acc"]
    print(per_class_table(results))
    run = RunPaths.for_run(cfg)
    save_confusion_matrix(results, run.plots / "confusion_matrix.png", run.logs)
    print(f"confusion matrix  {run.plots / 'confusion_matrix.png'} (and in TensorBoard)")
