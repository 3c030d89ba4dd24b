"""The bare script of the whole-run benchmark: what a user would write by hand to train a
generated project's model on its data, without the project's Trainer.

    python benchmarks/bare_run.py PROJECT_DIR [key=value ...]

It imports torch and the project's config, data, model and optimizer code, then trains and
validates for `epochs` epochs with the same task step, optimizer, schedule, gradient clipping,
mixed precision and compilation as `python src/main.py` with the same overrides, and prints the
validation loss of each epoch. No logging, checkpoints, checks or pictures: the difference in
wall time between the two is what the project's run costs on top of training.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import torch


def main() -> None:
    project = Path(sys.argv[1]).resolve()
    os.chdir(project)
    sys.path.insert(0, str(project / "src"))
    from config import Config, apply_overrides
    from dataset import make_dataloaders, model_inputs
    from model import build_task
    from train import build_optimizer, build_scheduler, mixed_precision
    from utils import resolve_device

    cfg = apply_overrides(Config(), sys.argv[2:])
    torch.manual_seed(cfg.seed)
    train_loader, val_loader, _ = make_dataloaders(cfg)
    task = build_task(cfg, **model_inputs(cfg))
    device = resolve_device(cfg.device)
    optimizer = build_optimizer(cfg, task.to(device))
    scheduler = build_scheduler(cfg, optimizer, len(train_loader))
    precision = mixed_precision(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == torch.float16)
    training_step = torch.compile(task.training_step) if cfg.compile else task.training_step

    def autocast() -> contextlib.AbstractContextManager:
        if precision is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=precision)

    for epoch in range(cfg.epochs):
        task.train()
        train_loader.sampler.set_epoch(epoch)
        for batch in train_loader:
            batch = [tensor.to(device, non_blocking=True) for tensor in batch]
            with autocast():
                loss = training_step(batch).loss
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(task.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None and cfg.scheduler != "plateau":
                scheduler.step()
        task.eval()
        total = torch.zeros((), device=device)
        with torch.inference_mode():
            for batch in val_loader:
                batch = [tensor.to(device, non_blocking=True) for tensor in batch]
                with autocast():
                    total += task.validation_step(batch).loss.float()
        val_loss = total.item() / len(val_loader)
        if cfg.scheduler == "plateau":
            scheduler.step(val_loss)
        print(f"epoch {epoch + 1}/{cfg.epochs} val_loss {val_loss:.4f}", flush=True)


if __name__ == "__main__":
    main()
