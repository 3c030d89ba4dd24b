{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task with context %}
"""What each mode of `python src/main.py` does (main.py reads the command line).

Wiring only: it builds the data and the task (model.py) with its optimizer and Trainer (`build`,
shared by every mode), runs the mode, and reports where the outputs went. User errors end here
as a one-paragraph message and an exit code.
"""

from __future__ import annotations

import argparse
import atexit
import copy
{% if task.predicts %}
import csv
{% endif %}
import dataclasses
{% if task.predicts %}
import io
{% endif %}
import json
import math
import os
import shutil
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

import distributed
from checks import (
    ADAM_LR_CEILING,
    add_hint,
    check_splits,
    doctor,
    find_lr,
    model_summary,
    overfit_batch,
    suggest_lr,
)
from config import (
    AUTO,
    RESUMABLE,
    Config,
    ConfigError,
    UserError,
    apply_overrides,
    from_dict,
{% if task.stages %}
    overrides_without,
{% endif %}
    to_dict,
)
from dataset import make_dataloaders, model_inputs{{ ", prediction_inputs" if task.predicts }}
from model import Task, build_task
{% set report_names = ["describe", "prediction_pictures", "test_report"] + task.stage_imports.split() + (["prediction_columns"] if task.predicts else []) %}
{% if ("from report import " ~ report_names | sort | join(", ")) | length <= 100 %}
from report import {{ report_names | sort | join(", ") }}
{% else %}
from report import (
{% for name in report_names | sort %}
    {{ name }},
{% endfor %}
)
{% endif %}
from runs import (
    RunLock,
    RunRecord,
    cross_validate,
    load_config_file,
    record_context,
    refuse_to_replace,
    sweep,
)
from tracking import RunLog, save_lr_plot
from train import (
    Judge,
    Trainer,
    TrainingStopped,
    build_optimizer,
    build_scheduler,
    mixed_precision,
)
from utils import (
    GracefulStop,
    RunPaths,
    atomic_save,
    check_output_folders,
    checkpoint_config,
    data_folder,
    end_stray_workers,
    find_resumable_checkpoint,
    load_checkpoint,
    load_file,
    load_weights,
    new_run_name,
    resolve_device,
    restore_data_index,
    seed_everything,
    unused_path,
)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Run the mode that the command line `argv` (read into `args`) asks for; returns the
    process exit code.

    Under torchrun (several processes), each process runs this; they train together, and only
    rank 0 prints and writes.
    """
    record_context(argv)
    atexit.unregister(end_stray_workers)  # once, however often main runs in one process
    atexit.register(end_stray_workers)
    if not distributed.requested():
        return run_mode(args)
    refused = only_one_process(args)
    if refused:
        print(
            f"error: {refused} runs in one process: start it with python "
            "src/main.py, not torchrun (which is for training: a new run, --resume, --config or "
            "--sweep).",
            file=sys.stderr,
        )
        return 2
    try:
        distributed.start()
    except (RuntimeError, ValueError) as error:
        print(
            f"error: could not join the other training processes ({error}). Start several "
            "processes with torchrun, e.g. torchrun --nproc_per_node=2 src/main.py, and check "
            "that MASTER_ADDR and MASTER_PORT name a reachable host and a free port.",
            file=sys.stderr,
        )
        return 2
    if not distributed.is_main():  # one copy of the output: rank 0's
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
        warnings.simplefilter("ignore")
    try:
        exit_code = run_mode(args)
        if exit_code == 0:  # leave together: a process gone early can abort the others
            distributed.barrier()
        # A process that failed leaves at once: the others, waiting for it in whatever they
        # do together next, see it gone and stop (a barrier here would wait for them forever).
        return exit_code
    except torch.distributed.DistError:
        print(
            f"error: rank {distributed.rank()} stopped: another training process failed or was "
            "killed (its error is above). The last checkpoint is intact; fix the cause, then "
            "--resume.",
            file=sys.stderr,
        )
        return 1
    finally:
        distributed.stop()


def only_one_process(args: argparse.Namespace) -> str | None:
    """The mode flag of `args` that torchrun cannot run, if any."""
    one = ("runs", "test", "export", "replay", "doctor", "find_lr", "overfit_batch"{{ ', "predict"' if task.predicts }})
    for flag in one:
        if getattr(args, flag):
            return "--" + flag.replace("_", "-")
    if args.tune is not None:  # its workers are separate processes, one per device
        return "--tune"
    return None


def run_mode(args: argparse.Namespace) -> int:
    """Run the mode that `args` ask for; user errors end as a message and an exit code."""
    try:
        if args.config and (args.test or args.export or args.resume or args.replay{{ " or args.predict" if task.predicts }}):
            raise ConfigError(
                "--config starts a new run from a saved config; --resume, --test, --export, "
                "--replay{{ " and --predict" if task.predicts }} read the config saved with the checkpoint instead. Drop "
                "--config."
            )
        if args.test:
            return test(Path(args.test), args.overrides)
        if args.export:
            return export(Path(args.export), args.overrides)
{% if task.predicts %}
        if args.predict:
            return predict(args.predict, args.checkpoint, args.overrides)
{% endif %}
        if args.replay:
            return replay(Path(args.replay))
        if args.doctor:
            return doctor_report()
        if args.tune is not None:
            return tune_mode(args)
        if args.config:
            cfg = load_config_file(Path(args.config), args.overrides)
        else:
            cfg = apply_overrides(Config(), args.overrides)
        if args.find_lr:
            return lr_finder(cfg)
        if args.overfit_batch:
            return overfit(cfg)
        if args.sweep:
            return sweep(cfg, args.overrides, args.sweep, {{ "train_stages" if task.stages else "train" }})
        return {{ "train_stages" if task.stages else "train" }}(cfg, args.overrides, args.resume)
    except UserError as error:
        rank = f"rank {distributed.rank()}: " if not distributed.is_main() else ""
        print(f"error: {rank}{error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        print(
            "\ninterrupted: stopped at once; the last saved checkpoint is intact.", file=sys.stderr
        )
        return 128 + signal.SIGINT
    except Exception as error:
        if not out_of_memory(error):  # a bug: keep the traceback, and add the likely cause
            add_hint(error)
            raise
        print(
            f"error: out of memory ({str(error).strip().splitlines()[-1][:200]}). The model, the "
            "batch or the data does not fit this machine: lower batch_size or the model's size "
            "settings (see --help), or use a machine with more memory. The last saved "
            "checkpoint, if any, is intact.",
            file=sys.stderr,
        )
        return 1


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` says an allocation failed (torch's CPU allocator raises RuntimeError)."""
    if isinstance(error, MemoryError | torch.OutOfMemoryError):
        return True
    return "can't allocate memory" in str(error)


def build(
    cfg: Config,
    train_batches: int | None = None,
    stop: GracefulStop | None = None,
    task: Task | None = None,
) -> Trainer:
    """What training, --overfit-batch, --find-lr and --test share: the task of `cfg` (model.py:
    its network, loss, metrics and steps; `task` if given), its optimizer, the schedule of
    `train_batches` batches an epoch (none without), and the Trainer that runs them. Make the
    data loaders first: a new run's data index, which the task's sizes come from, is theirs."""
    if task is None:
        task = build_task(cfg, **model_inputs(cfg))
    device = distributed.process_device(resolve_device(cfg.device))
    optimizer = build_optimizer(cfg, task.to(device))  # its state is made beside the weights
    scheduler = build_scheduler(cfg, optimizer, train_batches) if train_batches else None
    return Trainer(task, cfg, device, optimizer, scheduler, stop)


def train(cfg: Config, overrides: list[str], resume: str | None = None) -> int:
    """Train a new run of `cfg` (given `overrides` on the command line), or continue the one
    `resume` names."""
    checkpoint = checkpoint_path = None
    if resume == "auto":
        checkpoint_path, checkpoint = find_resumable_checkpoint(cfg, torch.device("cpu"))
    elif resume is not None:
        checkpoint_path = Path(resume)
        checkpoint = load_checkpoint(checkpoint_path, torch.device("cpu"))
    if checkpoint is not None:
        cfg = resumed_config(checkpoint_config(checkpoint, checkpoint_path), overrides)
        restore_data_index(cfg, checkpoint)
    elif cfg.folds > 1 and cfg.fold == 0:
        return cross_validate(cfg, overrides, fit)
    elif not cfg.run_name:
        cfg = apply_overrides(cfg, [f"run_name={new_run_name(cfg)}"])
    exit_code, _ = fit(cfg, checkpoint, checkpoint_path)
    return exit_code


def fit(
    cfg: Config,
    checkpoint: dict | None = None,
    checkpoint_path: Path | None = None,
    task: Task | None = None,
    judge: Judge | None = None,
) -> tuple[int, Trainer]:
    """One run: train `cfg.run_name` (from `checkpoint` if given, or from `task`'s weights),
    then report where its outputs went. Returns the exit code and the trainer. `judge` may end
    the run early, as pruned (see `Trainer.fit`)."""
    mixed_precision(cfg, resolve_device(cfg.device))  # refused before anything is written
    if cfg.lr == AUTO and checkpoint is None and distributed.is_active():
        raise ConfigError(
            "lr=auto runs the learning-rate range test in one process, not under torchrun. "
            "Find the rate once with python src/main.py --find-lr (without torchrun), then "
            "launch torchrun with lr=<the suggested value>."
        )
    check_output_folders(cfg)
    data_folder(cfg)  # a missing data_dir is refused before the lock makes any folder
    run = RunPaths.for_run(cfg)
    with RunLock(cfg, run):  # no other process trains this run meanwhile
        if checkpoint is None and (run.checkpoints / "last.pt").exists():
            refuse_to_replace(cfg)
            if distributed.is_main():
                run.remove()
        distributed.barrier()  # under torchrun, no process reads the folders before that
        try:
            return fit_locked(cfg, run, checkpoint, checkpoint_path, task, judge)
        except UserError:
            # A new run refused before its first save (its data, say) keeps no split: the next
            # try, with the data corrected, would be held to the split of the refused data.
            kept = [p.name for p in run.checkpoints.iterdir()] if run.checkpoints.is_dir() else []
            if checkpoint is None and kept == ["data.json"] and distributed.is_main():
                shutil.rmtree(run.checkpoints)
            raise


def fit_locked(
    cfg: Config,
    run: RunPaths,
    checkpoint: dict | None,
    checkpoint_path: Path | None,
    task: Task | None,
    judge: Judge | None,
) -> tuple[int, Trainer]:
    """`fit`, once the run is this process's alone."""
    seed_everything(cfg.seed, cfg.deterministic)
    train_loader, val_loader, test_loader = make_dataloaders(cfg)
    if checkpoint is None:
        cfg = settle(cfg, train_loader, run.plots / "lr_finder.png", task)
    datasets = {"train": train_loader.dataset, "val": val_loader.dataset}
    print(check_splits({**datasets, "test": test_loader.dataset}, cfg.imbalance_warn_ratio))
    with GracefulStop() as stop:
        trainer = build(cfg, len(train_loader), stop, task)
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint, checkpoint_path)
            print(
                f"resuming {checkpoint_path}: epoch {trainer.epoch + 1}, after batch "
                f"{trainer.batches_done} of it, step {trainer.global_step}"
            )
            if trainer.finished:
                RunRecord.start(cfg, run, trainer).end("finished", trainer)
                print(
                    f"run {cfg.experiment}/{cfg.run_name} has already finished; to train it "
                    "longer, resume with a larger epochs= (and a larger early_stopping_patience "
                    "if it stopped early)."
                )
                return 0, trainer
        exit_code = recorded_fit(trainer, train_loader, val_loader, run, judge)
    if exit_code == 0:
        report_outputs(trainer, run)
    return exit_code, trainer


def settle(
    cfg: Config, train_loader: DataLoader, lr_plot: Path | None, task: Task | None = None
) -> Config:
    """A new run's `auto` values as numbers: the epochs of its step budget and the learning rate
    of the range test (on a copy of `task`, if given). The run records them (config.json,
    checkpoints), so a resume keeps them."""
    if cfg.epochs == AUTO:
        cfg = dataclasses.replace(cfg, epochs=auto_epochs(cfg, len(train_loader)))
    if cfg.lr == AUTO:
        cfg = dataclasses.replace(cfg, lr=auto_lr(cfg, train_loader, lr_plot, task))
    return cfg


def auto_epochs(cfg: Config, batches: int) -> int:
    """epochs=auto: `min_epochs`, or as many more as `min_steps` optimizer steps take when the
    training split is small; early stopping may end the run sooner."""
    steps = -(-batches // cfg.accumulate_steps)  # optimizer steps per epoch
    epochs = max(cfg.min_epochs, -(-cfg.min_steps // steps))
    why = f"min_steps={cfg.min_steps}" if epochs > cfg.min_epochs else "min_epochs"
    print(f"budget: {epochs} epochs of {steps} steps, {epochs * steps} in all (epochs=auto, {why})")
    return epochs


def auto_lr(
    cfg: Config, train_loader: DataLoader, plot: Path | None, task: Task | None = None
) -> float:
    """lr=auto: the learning rate that the range test (--find-lr) suggests, measured on a
    throw-away model (a fresh one, or a copy of `task`) with the random numbers restored
    afterwards, so that the run starts exactly as it would with that lr given."""
    with torch.random.fork_rng():
        trial = None if task is None else copy.deepcopy(task)
        lrs, losses, suggestion = range_test(cfg, train_loader, trial)
    where = ""
    if plot is not None and distributed.is_main():
        save_lr_plot(lrs, losses, suggestion, plot)
        where = f"; plot: {plot}"
    print(
        f"lr=auto: {suggestion:.2e}, suggested by a range test of {len(lrs)} steps from "
        f"{lrs[0]:.0e} to {lrs[-1]:.1e} (see --find-lr){where}"
    )
    return float(f"{suggestion:.2e}")


def range_test(
    cfg: Config, train_loader: DataLoader, task: Task | None = None
) -> tuple[list[float], list[float], float]:
    """The learning-rate range test on `task` (default: a fresh model of `cfg`): the rates, the
    smoothed losses and the suggested rate."""
    if cfg.lr == AUTO:  # a placeholder: the sweep sets the rate of every step
        cfg = dataclasses.replace(cfg, lr=1e-7)
    trainer = build(cfg, task=task)
    lrs, losses = find_lr(trainer, train_loader, cfg.lr_finder_steps)
    if len(lrs) < 3:
        raise ConfigError("the loss diverged at once, even at lr=1e-7; check the data and model.")
    lowest_at_start = losses.index(min(losses)) < len(losses) // 10
    if lowest_at_start and trainer.task.loss_falls:  # no rate helped a loss that should fall
        raise ConfigError(
            f"the learning-rate range test saw the training loss fall at no rate from "
            f"{lrs[0]:.0e} to {lrs[-1]:.1e} in {len(lrs)} steps, so it has no rate to suggest. "
            f"Give it more steps (lr_finder_steps={2 * cfg.lr_finder_steps}), or set lr= yourself."
        )
    ceiling = ADAM_LR_CEILING if cfg.optimizer in ("adam", "adamw") else math.inf
    return lrs, losses, suggest_lr(lrs, losses, ceiling)


def recorded_fit(
    trainer: Trainer,
    train_loader: DataLoader,
    val_loader: DataLoader,
    run: RunPaths,
    judge: Judge | None,
) -> int:
    """`trainer.fit`, recorded in the run's run.json (running, then finished, pruned, stopped
    or crashed); a stop prints the command that resumes. Returns the exit code."""
    cfg = trainer.cfg
    where = str(trainer.device)
    if distributed.is_active():
        where = f"{distributed.world_size()} processes on {trainer.device.type}"
    samples = len(train_loader.dataset)
    print(f"run {cfg.experiment}/{cfg.run_name} on {where}, {samples} training samples")
    summary = model_summary(trainer.model)
    print(summary)
    record = RunRecord.start(cfg, run, trainer)
    record.save_text("model_summary.txt", summary + "\n")
    try:
        log = RunLog(cfg, run, prediction_pictures)
        finished = trainer.fit(train_loader, val_loader, run, log, judge)
    except TrainingStopped as stopped:
        record.end("stopped", trainer)
        name = signal.Signals(stopped.signum).name
        print(
            f"stopped by {name} at epoch {trainer.epoch + 1}, step {trainer.global_step}; "
            f"saved {stopped.checkpoint}. Resume with:\n"
            f"    {distributed.launcher()} src/main.py --resume {run.checkpoints / 'last.pt'}"
        )
        return 128 + stopped.signum
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint can still be resumed
        record.end("stopped", trainer)
        raise
    except BaseException as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        record.end("crashed", trainer, error=f"{type(error).__name__}: {first_line}")
        raise
    record.end("finished" if finished else "pruned", trainer)
    return 0


def report_outputs(trainer: Trainer, run: RunPaths) -> None:
    """The best epoch's scores, what the model learned, and where the run's outputs are."""
    cfg = trainer.cfg
    best = trainer.best_epoch()
    scores = ", ".join(f"{k} {v:.4f}" for k, v in best.items() if k.startswith("val_"))
    print(f"\nbest epoch {best['epoch']}: {scores}")
    print(describe(trainer.task.evaluated(), cfg))
    print(f"checkpoints  {run.checkpoints}/ (last.pt, best.pt)")
    print(f"logs         {run.logs}/  (view: tensorboard --logdir {cfg.log_dir})")
    print(f"record       {run.logs / 'run.json'} (config.json, metrics.csv beside it)")
    print(f"plots        {run.plots / 'curves.png'}")
    print(f"test it      python src/main.py --test {run.checkpoints / 'best.pt'}")


def resumed_config(saved: Config, overrides: list[str]) -> Config:
    """The saved config of the run being resumed, with the overrides given now on top."""
    cfg = apply_overrides(saved, overrides)
    kept = {key: getattr(saved, key) for key in ("epochs", "lr") if getattr(cfg, key) == AUTO}
    cfg = dataclasses.replace(cfg, **kept)  # auto: the value the run settled on when it began
    if (cfg.experiment, cfg.run_name) != (saved.experiment, saved.run_name):
        raise ConfigError(
            "experiment and run_name cannot change on --resume: the run continues in its own "
            f"folders ({saved.experiment}/{saved.run_name}). Drop those overrides."
        )
    old, new = to_dict(saved), to_dict(cfg)
    fixed = [key for key in new if new[key] != old[key] and key not in RESUMABLE]
    if fixed:
        shown = ", ".join(f"{key}={old[key]!r} (given {new[key]!r})" for key in fixed)
        config = RunPaths.for_run(saved).logs / "config.json"
        raise ConfigError(
            f"{shown} cannot change on --resume: the run's model, optimizer, schedule and data "
            "were set up with the saved values, so new ones would be recorded but not used. "
            f"Train with them in a new run (python src/main.py --config {config} "
            f"{' '.join(f'{key}=...' for key in fixed)}). What can change on --resume: "
            f"{', '.join(key for key in new if key in RESUMABLE)}."
        )
    if cfg.epochs != saved.epochs and cfg.scheduler in ("cosine", "onecycle"):
        raise ConfigError(
            f"epochs cannot change on --resume with scheduler={cfg.scheduler}: its schedule was "
            f"laid out for {saved.epochs} epochs. Start a new run with epochs={cfg.epochs}, or "
            "train with scheduler=step, plateau or none to be able to extend runs."
        )
    return cfg


{% include "tasks/" ~ cookiecutter.task ~ "/main_stages.py" ignore missing %}
{% if task.predicts %}
{% include "shared/main_predict.py" %}
{% endif %}
def tune_mode(args: argparse.Namespace) -> int:
    """--tune N: trials of the search space until the study holds N finished (tune.py)."""
    import tune  # noqa: PLC0415 (Optuna loads for --tune only)

    fixed, _ = tune.split_overrides(args.overrides)
    if args.config:
        cfg = load_config_file(Path(args.config), fixed)
    else:
        cfg = apply_overrides(Config(), fixed)
    if cfg.folds > 1 and cfg.fold == 0:
        raise ConfigError(
            f"--tune trains one run per trial, and folds={cfg.folds} cross-validates with "
            f"{cfg.folds} runs. Tune with folds=1, or on one fold (fold=1)."
        )
{% if task.stages %}
    refuse_stages_to_tune(cfg)
{% endif %}
    return tune.tune(cfg, args.overrides, args.tune, fit)


def overfit(cfg: Config) -> int:
    """The overfit ladder: memorise one sample, then one batch; exit code 0 if both work."""
    seed_everything(cfg.seed)
    train_loader, _, _ = make_dataloaders(cfg)
    if cfg.lr == AUTO:  # the learning rate the run would train with
        cfg = dataclasses.replace(cfg, lr=auto_lr(cfg, train_loader, None))
    inputs, targets = next(iter(train_loader))
    for size in (1, len(targets)):
        seed_everything(cfg.seed)  # each stage starts from the same fresh model
        # No schedule: the question is whether the model can learn at all, at the configured lr.
        result = overfit_batch(build(cfg), (inputs[:size], targets[:size]), cfg.overfit_steps)
        print(result.report(cfg))
        if not result.fitted:
            return 1
    return 0


def lr_finder(cfg: Config) -> int:
    """The learning-rate range test: plot loss against lr and suggest an lr= override."""
    seed_everything(cfg.seed)
    train_loader, _, _ = make_dataloaders(cfg)
    lrs, losses, suggestion = range_test(cfg, train_loader)
    plot = unused_path(Path(cfg.plot_dir, cfg.experiment, "lr_finder.png"))
    save_lr_plot(lrs, losses, suggestion, plot)
    print(
        f"swept lr from {lrs[0]:.1e} to {lrs[-1]:.1e} in {len(lrs)} steps; the loss was lowest at "
        f"lr={lrs[losses.index(min(losses))]:.1e}: a tenth of it is suggested (for adam and "
        f"adamw, at most {ADAM_LR_CEILING:g}).\nplot: {plot}\n"
        f"train with: python src/main.py lr={suggestion:.1e} (or lr=auto)"
    )
    return 0


def doctor_report() -> int:
    """Print what this environment can do; exit code 1 when something needs fixing."""
    report = doctor()
    for ok, line in report:
        print(f"{'ok ' if ok else 'FIX'}  {line}")
    return 0 if all(ok for ok, _ in report) else 1


def test(checkpoint_path: Path, overrides: list[str]) -> int:
    """Evaluate a checkpoint on the test split of the data it was trained with."""
    checkpoint = load_checkpoint(checkpoint_path, torch.device("cpu"))
    cfg = apply_overrides(checkpoint_config(checkpoint, checkpoint_path), overrides)
    restore_data_index(cfg, checkpoint)
    _, _, test_loader = make_dataloaders(cfg)
    trainer = build(cfg)
    load_weights(trainer.task, checkpoint, checkpoint_path)
    results = trainer.evaluate(test_loader, desc="test")
    results.update(test_report(trainer.task.evaluated(), test_loader, cfg, results))
    scores = " | ".join(f"test_{k} {v:.4f}" for k, v in results.items() if isinstance(v, float))
    print(f"{checkpoint_path} on {len(test_loader.dataset)} test samples: {scores}")
    saved = unused_path(RunPaths.for_run(cfg).logs / "test.json")  # never an earlier --test's
    record = {"checkpoint": str(checkpoint_path), "samples": len(test_loader.dataset), **results}
    text = json.dumps(record, indent=2) + "\n"
    atomic_save(text, saved, write=lambda text, file: file.write(text.encode()))
    print(f"results           {saved}")
    return 0


def export(checkpoint_path: Path, overrides: list[str]) -> int:
    """Write the network of a checkpoint for inference without this project: model.pt2
    (torch.export) and model.onnx, with model.json (their input and output, and what the data
    source did to the inputs: the classes, the normalisation, the config), after checking both
    against the checkpoint's network on every test batch."""
    try:
        import onnxscript  # noqa: F401, PLC0415 (what torch.onnx.export writes with)
        from onnxruntime import InferenceSession  # noqa: PLC0415 (only --export needs it)
    except ImportError as error:
        raise ConfigError(
            f"--export writes ONNX too, with packages this environment lacks ({error.name}): "
            "pip install onnx onnxscript onnxruntime, then run it again."
        ) from None
    checkpoint = load_checkpoint(checkpoint_path, torch.device("cpu"))
    cfg = checkpoint_config(checkpoint, checkpoint_path)
    cfg = apply_overrides(cfg, [*overrides, "device=cpu"])  # exported from the CPU
    restore_data_index(cfg, checkpoint)
    _, _, test_loader = make_dataloaders(cfg)
    trainer = build(cfg)
    load_weights(trainer.task, checkpoint, checkpoint_path)
    batches = [trainer.task.eval().exported(batch) for batch in test_loader]
    exported = Path(cfg.checkpoint_dir).parent / "exported" / cfg.experiment
    folder = unused_path(exported / f"{cfg.run_name}-{checkpoint_path.stem}")  # never replaced
    partial = folder.with_name(f".{folder.name}.partial")  # renamed once complete
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        program = export_network(*batches[0], partial, checkpoint_path)
        session = InferenceSession(str(partial / "model.onnx"))
        worst = largest_difference(program, session, batches, checkpoint_path)
    except BaseException:
        shutil.rmtree(partial)
        raise
    (given,), (made,) = session.get_inputs(), session.get_outputs()
    spec = {
        "checkpoint": str(checkpoint_path),
        "input": {
            "name": given.name,
            "shape": shape_of(given.shape),  # null: any size
            "example": list(batches[0][1].shape),
            "dtype": str(batches[0][1].dtype).removeprefix("torch."),
        },
        "output": {"name": made.name, "shape": shape_of(made.shape)},
        "checked": {"test_samples": len(test_loader.dataset), "difference": worst},
        "data": {k: v for k, v in (checkpoint.get("data") or {}).items() if k != "splits"},
        "config": to_dict(cfg),
    }
    (partial / "model.json").write_text(json.dumps(spec, indent=2) + "\n")
    partial.rename(folder)
    print(f"{checkpoint_path} exported to {folder}: model.pt2, model.onnx and model.json")
    print(f"checked on {len(test_loader.dataset)} test samples: outputs within {worst:.1e}")
    return 0


def export_network(
    network: torch.nn.Module, example: torch.Tensor, folder: Path, checkpoint_path: Path
) -> torch.export.ExportedProgram:
    """`network` traced on `example` with torch.export (every size but those of 1 free), saved
    in `folder` as model.pt2 and model.onnx; refused with the cause when it cannot be traced."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sizes = enumerate(example.shape)  # those of 1 stay fixed (a grey image's channel)
            dims = ({axis: torch.export.Dim.AUTO for axis, size in sizes if size > 1},)
            program = torch.export.export(network, (example,), dynamic_shapes=dims)
            onnx_program = torch.onnx.export(
                program, (example,), dynamo=True, verbose=False, output_names=["output"]
            )
            onnx_program.save(str(folder / "model.onnx"))
            torch.export.save(program, folder / "model.pt2")
    except Exception as error:  # torch.export's own errors name the line that stops it
        cause = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise UserError(
            f"the network of {checkpoint_path} cannot be exported: {cause}. torch.export traces "
            "forward() with symbolic shapes: Python that branches on a tensor's values (an "
            "`if` on x.sum(), .item(), a loop over a tensor) must become tensor code (torch."
            "where, torch.cond). Nothing was written."
        ) from None
    return program


def largest_difference(
    program: torch.export.ExportedProgram,
    session: Any,
    batches: list[tuple[torch.nn.Module, torch.Tensor]],
    checkpoint_path: Path,
) -> float:
    """The largest difference between the outputs of `program` or the ONNX `session` and the
    network's, over `batches`, as a fraction of the outputs' scale; refused beyond 1e-3."""
    worst = 0.0
    name = session.get_inputs()[0].name
    with torch.no_grad():
        for network, inputs in batches:
            expected = network(inputs).float()
            onnx_outputs = torch.from_numpy(session.run(None, {name: inputs.numpy()})[0])
            for outputs in (program.module()(inputs).float(), onnx_outputs.float()):
                difference = (outputs - expected).abs().max() / (1 + expected.abs().max())
                worst = max(worst, difference.item())
    if worst > 1e-3:
        raise UserError(
            f"the exported network of {checkpoint_path} computes other outputs than the "
            f"checkpoint's on the test split (differences up to {worst:.2g} of their scale): "
            "an operation that torch.export or ONNX translate differently. Nothing was written."
        )
    return worst


def shape_of(dims: list) -> list[int | None]:
    """An ONNX shape for model.json: a whole number per fixed dimension, null for any size."""
    return [dim if isinstance(dim, int) else None for dim in dims]


def replay(dump_path: Path) -> int:
    """Re-run the step that produced a non-finite loss: exit 1 if it is non-finite again."""
    dump = load_file(dump_path, torch.device("cpu"))
    cfg = from_dict(dump["config"], f"the dump {dump_path}")
    task = build_task(cfg, **model_inputs(cfg))
    load_weights(task, dump, dump_path)
    first_bad: list[str] = []

    def find_first_bad(module: torch.nn.Module, _: object, output: object) -> None:
        if not first_bad and isinstance(output, torch.Tensor) and not output.isfinite().all():
            first_bad.append(names[module])

    names = {module: name or "model" for name, module in task.model.named_modules()}
    for module in names:
        module.register_forward_hook(find_first_bad)
    task.train()  # the mode the failing step ran in
    loss = task.training_step(tuple(dump["batch"])).loss
    if torch.isfinite(loss):
        print(f"replayed {dump_path}: loss {loss.item():.4g} is finite this time.")
        return 0
    where = f"; the first module with a non-finite output is {first_bad[0]}" if first_bad else ""
    print(f"replayed {dump_path}: loss {loss.item()}{where}.")
    return 1
