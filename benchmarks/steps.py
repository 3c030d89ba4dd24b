"""Time per training step of one generated project: its Trainer against a bare PyTorch loop.

    python benchmarks/steps.py PROJECT_DIR [key=value ...]

Run by `benchmarks/run.py`, once per project (each project's src/ is a package of its own), it
prints one JSON line of seconds per step. Every contender trains the same model from the same
initial weights on the same batches for the same number of steps, on the device and with the
mixed precision (`amp=`) and compilation (`compile=`) the overrides ask for; the contenders take
turns, so that a machine that slows down or speeds up affects them alike, after one round that is
not counted (it compiles, and warms up caches):

- trainer: `Trainer.train_epoch` with its progress bar drawn and TensorBoard logging as
  configured (a step log every `log_every` steps, histograms every `log_hist_every`);
- bare: zero_grad, forward, loss, backward, step over the project's own DataLoader;
- naive: the same bare loop over a DataLoader that fetches and stacks samples one by one, as
  most hand-written loops do;
- lightning: PyTorch Lightning's Trainer over the project's DataLoader, when it is installed,
  with its progress bar and TensorBoard logger on (log_every_n_steps = `log_every`); on the CPU
  in full precision only.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset


def main() -> None:
    project = Path(sys.argv[1]).resolve()
    os.chdir(project)
    sys.path.insert(0, str(project / "src"))
    import tracking
    import train
    from config import Config, apply_overrides
    from dataset import make_dataloaders, model_inputs
    from model import build_task
    from tqdm import tqdm
    from utils import RunPaths, resolve_device

    # The bar is drawn as on a terminal (tqdm turns itself off when output is not one).
    tracking.tqdm = lambda *args, **kwargs: tqdm(*args, **{**kwargs, "disable": False})
    cfg = apply_overrides(Config(), sys.argv[2:])
    torch.manual_seed(cfg.seed)
    loader, _, _ = make_dataloaders(cfg)
    initial = build_task(cfg, **model_inputs(cfg))
    loss_fn = initial.loss_fn
    device = resolve_device(cfg.device)
    precision = train.mixed_precision(cfg, device)
    rounds, results = int(os.environ.get("BENCH_ROUNDS", 7)), {"trainer": [], "bare": []}
    results["naive"] = []
    steps = len(loader)

    def fresh_task() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        task = copy.deepcopy(initial).to(device)
        return task, train.build_optimizer(cfg, task)

    def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        task, optimizer = fresh_task()
        return task.model, optimizer

    def autocast() -> contextlib.AbstractContextManager:
        if precision is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=precision)

    def finished() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def bare(batches: DataLoader) -> float:
        model, optimizer = fresh()
        model.train()
        forward = torch.compile(model) if cfg.compile else model
        scaler = torch.amp.GradScaler(device.type, enabled=precision == torch.float16)
        started = finished()
        for inputs, targets in batches:
            inputs = inputs.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(forward(inputs), targets)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return (finished() - started) / steps

    def trainer_steps(folder: str) -> float:
        task, optimizer = fresh_task()
        trainer = train.Trainer(task, cfg, device, optimizer)
        trainer.prepare()
        run = RunPaths(Path(folder), Path(folder), Path(folder))
        trainer.log = tracking.RunLog(cfg, run)
        trainer.log.open(task.model, [next(iter(loader))], 0, fresh=False)
        started = finished()
        trainer.train_epoch(loader)
        seconds = finished() - started
        trainer.log.close()
        return seconds / steps

    naive_loader = DataLoader(
        PerSample(loader.dataset), batch_size=cfg.batch_size, shuffle=True, drop_last=False
    )
    lightning = None
    if device.type == "cpu" and precision is None and not cfg.compile:
        lightning = lightning_steps(cfg, fresh, loss_fn, loader, steps)
    if lightning is not None:
        results["lightning"] = []
    with tempfile.TemporaryDirectory() as folder, redirect_output():
        for _ in range(rounds + 1):
            results["trainer"].append(trainer_steps(folder))
            results["bare"].append(bare(loader))
            results["naive"].append(bare(naive_loader))
            if lightning is not None:
                results["lightning"].append(lightning())
    medians = {name: statistics.median(times[1:]) for name, times in results.items()}
    print(json.dumps({"steps": steps, "rounds": rounds, "seconds_per_step": medians}))


class PerSample(Dataset):
    """The samples of a dataset one at a time, for the DataLoader of a hand-written loop."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]


def lightning_steps(cfg, fresh, loss_fn, loader, steps):
    """A function timing one epoch of Lightning's Trainer per step, or None without Lightning."""
    try:
        import lightning as L
        from lightning.pytorch.loggers import TensorBoardLogger
    except ImportError:
        return None

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.optimizer = fresh()

        def training_step(self, batch, index):
            inputs, targets = batch
            loss = loss_fn(self.model(inputs), targets)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return self.optimizer

    def run() -> float:
        module = Module()
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = L.Trainer(
                max_epochs=1,
                accelerator="cpu",
                devices=1,
                logger=TensorBoardLogger(folder),
                log_every_n_steps=cfg.log_every,
                enable_checkpointing=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
            )
            timer = EpochTimer()
            trainer.callbacks.append(timer)
            trainer.fit(module, train_dataloaders=loader)
        return timer.seconds / steps

    class EpochTimer(L.Callback):
        """The training epoch's own time: from its start to its end, as for the others."""

        def on_train_epoch_start(self, trainer, module) -> None:
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:
            self.seconds = time.perf_counter() - self.started

    return run


class redirect_output:
    """Progress bars and library chatter go to a buffer, not the benchmark's table."""

    def __enter__(self) -> None:
        self.saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()

    def __exit__(self, *exc_info: object) -> None:
        sys.stdout, sys.stderr = self.saved


if __name__ == "__main__":
    main()
