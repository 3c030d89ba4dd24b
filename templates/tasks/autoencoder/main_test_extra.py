    if cfg.ttt_steps:
        results["acc_ttt"] = accuracy_with_ttt(model, test_loader, cfg, device)
