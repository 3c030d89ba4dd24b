{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task with context %}
"""Entry point: `python src/main.py [key=value ...] [MODE]`; `--help` lists the modes and keys.

Wiring only: it reads the command line, builds the data, model, optimizer and Trainer, and reports
where the outputs went. User errors end here as a one-paragraph message and an exit code.
"""

from __future__ import annotations

import argparse
{% if task.predicts %}
import csv
{% endif %}
import json
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

import torch

import distributed
from checks import add_hint, check_splits, doctor, model_summary
from config import (
    Config,
    ConfigError,
    UserError,
    apply_overrides,
    describe_keys,
    from_dict,
    overrides_without,
    to_dict,
)
{% if task.predicts %}
from dataset import make_dataloaders, prediction_inputs
{% else %}
from dataset import make_dataloaders
{% endif %}
{% set model_imports = task.main_model_imports.split() + (["prediction_columns"] if task.predicts else []) %}
{% if model_imports %}
from model import (
{% for name in (model_imports + ["build_loss", "build_metrics", "build_model", "describe"]) | sort %}
    {{ name }},
{% endfor %}
)
{% else %}
from model import build_loss, build_metrics, build_model, describe
{% endif %}
from runs import (
    RunRecord,
    collect_runs,
    format_table,
    load_config_file,
    ranked,
    record_context,
    runs_csv_path,
    save_runs_csv,
    sweep_grid,
)
from train import (
{% if task.trainer != "Trainer" %}
    {{ task.trainer }},
{% endif %}
    Trainer,
    TrainingStopped,
    build_optimizer,
    build_scheduler,
    load_model_weights,
    mixed_precision,
    suggest_lr,
)
from utils import (
    GracefulStop,
    RunPaths,
    find_resumable_checkpoint,
    load_checkpoint,
    load_file,
    new_run_name,
    resolve_device,
    restore_data_index,
    save_lr_plot,
    seed_everything,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: config overrides plus at most one mode flag."""
    parser = argparse.ArgumentParser(
        description="Train the model, check that it can learn, or test a checkpoint.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"config keys (override with key=value):\n{describe_keys()}".replace("%", "%%"),
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument(
        "--config",
        metavar="CONFIG_JSON",
        help="start from a run's saved config.json (a new run; key=value overrides apply on top)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        metavar="PATH|auto",
        help="continue a run from a checkpoint (auto: the experiment's newest one that loads)",
    )
    mode.add_argument(
        "--overfit-batch",
        action="store_true",
        help="check that the model can memorise one sample, then one batch; exit 0 or 1",
    )
    mode.add_argument(
        "--test", metavar="CHECKPOINT", help="evaluate a checkpoint on the test split"
    )
{% if task.predicts %}
    mode.add_argument(
        "--predict",
        nargs="+",
        metavar="PATH",
        help="{{ task.predict_help }}; saves predictions.csv in the run's logs",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="the model --predict uses (default: the newest best.pt of the experiment)",
    )
{% endif %}
    mode.add_argument(
        "--replay", metavar="DUMP", help="re-run a step saved when the loss became non-finite"
    )
    mode.add_argument(
        "--find-lr", action="store_true", help="sweep the learning rate and suggest a value"
    )
    mode.add_argument(
        "--doctor", action="store_true", help="report what this environment can do, with fixes"
    )
    mode.add_argument(
        "--sweep",
        nargs="+",
        metavar="key=v1,v2",
        help="one run per combination of the values (after the other overrides), then a table "
        "of the runs ranked by their best validation score",
    )
    mode.add_argument(
        "--runs", action="store_true", help="list every run with its status and best score"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run what the command line asks for; returns the process exit code.

    Under torchrun (several processes), each process runs this; they train together, and only
    rank 0 prints and writes.
    """
    args = parse_args(argv)
    record_context(sys.argv[1:] if argv is None else argv)
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
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if not distributed.is_main():  # one copy of the output: rank 0's
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
        warnings.simplefilter("ignore")
    try:
        exit_code = run_mode(args)
        distributed.barrier()  # leave together: a process gone early can abort the others
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
    for flag in ("runs", "test", "replay", "doctor", "find_lr", "overfit_batch"{{ ', "predict"' if task.predicts }}):
        if getattr(args, flag):
            return "--" + flag.replace("_", "-")
    return None


def run_mode(args: argparse.Namespace) -> int:
    """Run the mode that `args` ask for; user errors end as a message and an exit code."""
    try:
        if args.runs:
            return list_runs(apply_overrides(Config(), args.overrides))
        if args.config and (args.test or args.resume or args.replay{{ " or args.predict" if task.predicts }}):
            raise ConfigError(
                "--config starts a new run from a saved config; --resume, --test, --replay"
                "{{ " and --predict" if task.predicts }} read the config saved with the checkpoint instead. Drop --config."
            )
        if args.test:
            return test(Path(args.test), args.overrides)
{% if task.predicts %}
        if args.predict:
            return predict(args.predict, args.checkpoint, args.overrides)
{% endif %}
        if args.replay:
            return replay(Path(args.replay))
        if args.doctor:
            return doctor_report()
        if args.config:
            cfg = load_config_file(Path(args.config), args.overrides)
        else:
            cfg = apply_overrides(Config(), args.overrides)
        if args.find_lr:
            return find_lr(cfg)
        if args.overfit_batch:
            return overfit(cfg)
        if args.sweep:
            return sweep(cfg, args.overrides, args.sweep)
        return train(cfg, args.overrides, args.resume)
    except UserError as error:
        rank = f"rank {distributed.rank()}: " if not distributed.is_main() else ""
        print(f"error: {rank}{error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        print(
            "\ninterrupted: stopped at once; the last saved checkpoint is intact.", file=sys.stderr
        )
        return 128 + signal.SIGINT
    except Exception as error:  # a bug: keep the traceback, and add the likely cause if known
        add_hint(error)
        raise


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
        cfg = resumed_config(from_dict(checkpoint["config"]), overrides)
        restore_data_index(cfg, checkpoint)
{% include "tasks/" ~ cookiecutter.task ~ "/main_train_branch.py" ignore missing %}
    elif cfg.folds > 1 and cfg.fold == 0:
        return cross_validate(cfg, overrides)
    elif not cfg.run_name:
        cfg = apply_overrides(cfg, [f"run_name={new_run_name(cfg)}"])
    exit_code, _ = fit(cfg, checkpoint, checkpoint_path)
    return exit_code


def fit(
    cfg: Config,
    checkpoint: dict | None = None,
    checkpoint_path: Path | None = None,
    model: torch.nn.Module | None = None,
) -> tuple[int, Trainer]:
    """One run: train `cfg.run_name` (from `checkpoint` if given, or from `model`'s weights),
    then report where its outputs went. Returns the exit code and the trainer."""
    device = distributed.process_device(resolve_device(cfg.device))
    mixed_precision(cfg, device)  # an amp the device cannot do stops the run before any writing
    run = RunPaths.for_run(cfg)
    if checkpoint is None and (run.checkpoints / "last.pt").exists():
        refuse_to_replace(cfg)
        if distributed.is_main():
            run.remove()
    distributed.barrier()  # under torchrun, no process reads the folders before that

    seed_everything(cfg.seed, cfg.deterministic)
    train_loader, val_loader, test_loader = make_dataloaders(cfg)
    loaders = {"train": train_loader, "val": val_loader, "test": test_loader}
    datasets = {name: loader.dataset for name, loader in loaders.items()}
    print(check_splits(datasets, cfg.imbalance_warn_ratio))
    if model is None:
        model = build_model(cfg)
    model = model.to(device)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, len(train_loader))
    loss_fn, metrics = build_loss(cfg), build_metrics(cfg)
    with GracefulStop() as stop:
        trainer = {{ task.trainer }}(model, loss_fn, metrics, cfg, device, optimizer, scheduler, stop)
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint, checkpoint_path)
            print(
                f"resuming {checkpoint_path}: epoch {trainer.epoch + 1}, after batch "
                f"{trainer.batches_done} of it, step {trainer.global_step}"
            )
            if trainer.finished:
                print(
                    f"run {cfg.experiment}/{cfg.run_name} has already finished; to train it "
                    "longer, resume with a larger epochs= (and a larger early_stopping_patience "
                    "if it stopped early)."
                )
                return 0, trainer
        samples = len(train_loader.dataset)
        if distributed.is_active():
            device_text = f"{distributed.world_size()} processes on {device.type}"
        else:
            device_text = str(device)
        print(f"run {cfg.experiment}/{cfg.run_name} on {device_text}, {samples} training samples")
        summary = model_summary(model)
        print(summary)
        record = None
        if distributed.is_main():
            record = RunRecord.start(cfg, run, trainer)
            (run.logs / "model_summary.txt").write_text(summary + "\n")
        try:
            trainer.fit(train_loader, val_loader, run)
        except TrainingStopped as stopped:
            if record is not None:
                record.end("stopped", trainer)
            name = signal.Signals(stopped.signum).name
            print(
                f"stopped by {name} at epoch {trainer.epoch + 1}, step {trainer.global_step}; "
                f"saved {stopped.checkpoint}. Resume with:\n"
                f"    {distributed.launcher()} src/main.py --resume {run.checkpoints / 'last.pt'}"
            )
            return 128 + stopped.signum, trainer
        except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint can still be resumed
            if record is not None:
                record.end("stopped", trainer)
            raise
        except BaseException as error:
            message = str(error).strip().splitlines()
            summary = f"{type(error).__name__}: {message[0] if message else ''}"
            if record is not None:
                record.end("crashed", trainer, error=summary)
            raise
        if record is not None:
            record.end("finished", trainer)

    best = trainer.best_epoch()
    scores = ", ".join(f"{k} {v:.4f}" for k, v in best.items() if k.startswith("val_"))
    print(f"\nbest epoch {best['epoch']}: {scores}")
    print(describe(trainer.model, cfg))
    print(f"checkpoints  {run.checkpoints}/ (last.pt, best.pt)")
    print(f"logs         {run.logs}/  (view: tensorboard --logdir {cfg.log_dir})")
    print(f"record       {run.logs / 'run.json'} (config.json, metrics.csv beside it)")
    print(f"plots        {run.plots / 'curves.png'}")
    print(f"test it      python src/main.py --test {run.checkpoints / 'best.pt'}")
    return 0, trainer


def cross_validate(cfg: Config, overrides: list[str]) -> int:
    """folds=k: one run per fold, <name>-fold1 to -fold<k>, each validating on its own k-th of the
    non-test samples; then the mean ± std of their best epochs' val metrics, saved as cv.json.

    The same command again continues an interrupted cross-validation: finished folds are kept and
    the interrupted one resumes from its last.pt (overwrite=true trains them all anew).
    """
    name = cfg.run_name or new_run_name(cfg)
    best = []
    for fold in range(1, cfg.folds + 1):
        fold_cfg = apply_overrides(cfg, [f"fold={fold}", f"run_name={name}-fold{fold}"])
        last = RunPaths.for_run(fold_cfg).checkpoints / "last.pt"
        checkpoint = None
        if last.exists() and not cfg.overwrite:
            checkpoint = load_checkpoint(last, torch.device("cpu"))
            refuse_other_settings(from_dict(checkpoint["config"]), fold_cfg, last)
        print(f"\nfold {fold} of {cfg.folds}: run {cfg.experiment}/{fold_cfg.run_name}")
        exit_code, trainer = fit(fold_cfg, checkpoint, last if checkpoint else None)
        if exit_code:
            kept = overrides_without(overrides, ("run_name",))
            print(
                "(that finishes this fold alone); to finish the cross-validation, run instead:\n"
                f"    python src/main.py {' '.join([*kept, f'run_name={name}'])}"
            )
            return exit_code
        best.append(trainer.best_epoch())

    keys = [key for key in best[0] if key.startswith("val_")]
    values = {key: torch.tensor([row[key] for row in best], dtype=torch.float64) for key in keys}
    summary = {key: (v.mean().item(), v.std().item()) for key, v in values.items()}
    print(f"\ncross-validation, {cfg.folds} folds (each fold's best epoch):")
    for key, (mean, std) in summary.items():
        folds = ", ".join(f"{v:.4f}" for v in values[key].tolist())
        print(f"  {key:<14} {mean:.4f} ± {std:.4f}   ({folds})")
    saved = RunPaths.for_run(apply_overrides(cfg, [f"run_name={name}"])).logs / "cv.json"
    record = {
        "folds": cfg.folds,
        "runs": [f"{name}-fold{fold}" for fold in range(1, cfg.folds + 1)],
        "best_epochs": best,
        "mean": {key: mean for key, (mean, _) in summary.items()},
        "std": {key: std for key, (_, std) in summary.items()},
    }
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results  {saved}")
    return 0


def sweep(cfg: Config, overrides: list[str], axes: list[str]) -> int:
    """--sweep: one training per combination of the axes' values, one after the other, as runs
    <name>-1, <name>-2, ...; a run that fails is recorded as crashed and the sweep goes on. Ends
    with the table of the sweep's runs, best first; exit code 1 if any run failed."""
    grid = sweep_grid(axes)
    configs = [apply_overrides(cfg, combination) for combination in grid]  # all checked first
    name = cfg.run_name or f"sweep-{new_run_name(cfg)}"
    configs = [apply_overrides(c, [f"run_name={name}-{i}"]) for i, c in enumerate(configs, 1)]
    for run_cfg in configs:
        refuse_to_replace(run_cfg)  # now, not after the runs before it have trained
    print(f"sweep {cfg.experiment}/{name}: {len(grid)} runs")
    failed = 0
    record_context(sweep=name)
    try:
        for i, (combination, run_cfg) in enumerate(zip(grid, configs, strict=True), 1):
            print(f"\nsweep run {i} of {len(grid)}: {' '.join(combination)}")
            try:
                exit_code = train(run_cfg, [*overrides, *combination])
            except UserError as error:
                exit_code = error.exit_code
                print(f"error: {error}", file=sys.stderr)
            except Exception as error:  # a bug in this run's settings; the others may be fine
                add_hint(error)
                traceback.print_exc()
                exit_code = 1
            if exit_code >= 128:  # stopped by a signal: the user wants the sweep to end
                print(f"sweep stopped after {i - 1} of {len(grid)} runs.")
                return exit_code
            if exit_code:
                failed += 1
                print(f"sweep run {i} failed (recorded as crashed); going on with the next.")
    finally:
        record_context(sweep=None)
    rows = collect_runs(Path(cfg.log_dir))
    ours = ranked([row for row in rows if row["sweep"] == name])
    print(f"\nsweep {cfg.experiment}/{name}, best first:\n{format_table(ours)}")
    path = runs_csv_path(cfg)
    save_runs_csv(rows, path)
    print(f"\nevery run: {path}; compare them: tensorboard --logdir {cfg.log_dir}")
    return 1 if failed else 0


def list_runs(cfg: Config) -> int:
    """--runs: every run recorded under log_dir with its status, the hyperparameters that differ
    between runs and its best validation score; also written to results/runs.csv."""
    rows = collect_runs(Path(cfg.log_dir))
    print(format_table(rows))
    path = runs_csv_path(cfg)
    save_runs_csv(rows, path)
    print(f"\n{len(rows)} runs; table saved as {path}")
    return 0


def refuse_other_settings(saved: Config, cfg: Config, checkpoint_path: Path) -> None:
    """Stop a cross-validation from mixing in a fold run that was trained with other settings."""
    old, new = to_dict(saved), to_dict(cfg)
    changed = [key for key in new if old[key] != new[key] and key != "overwrite"]
    if changed:
        shown = ", ".join(f"{key} {old[key]!r} (now {new[key]!r})" for key in changed)
        raise ConfigError(
            f"{checkpoint_path} is a fold of an earlier cross-validation with other settings: "
            f"{shown}. Choose another run_name, or pass overwrite=true to train every fold anew."
        )


def refuse_to_replace(cfg: Config) -> None:
    """Stop a new run whose name already has checkpoints, unless overwrite=true."""
    run = RunPaths.for_run(cfg)
    if (run.checkpoints / "last.pt").exists() and not cfg.overwrite:
        raise ConfigError(
            f"run {cfg.experiment}/{cfg.run_name} already has checkpoints in "
            f"{run.checkpoints}. Continue it with --resume {run.checkpoints / 'last.pt'}, "
            "choose another run_name, or replace it with overwrite=true."
        )


def resumed_config(saved: Config, overrides: list[str]) -> Config:
    """The saved config of the run being resumed, with the overrides given now on top."""
    cfg = apply_overrides(saved, overrides)
    if (cfg.experiment, cfg.run_name) != (saved.experiment, saved.run_name):
        raise ConfigError(
            "experiment and run_name cannot change on --resume: the run continues in its own "
            f"folders ({saved.experiment}/{saved.run_name}). Drop those overrides."
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
def overfit(cfg: Config) -> int:
    """The overfit ladder: memorise one sample, then one batch; exit code 0 if both work."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    train_loader, _, _ = make_dataloaders(cfg)
    inputs, targets = next(iter(train_loader))
    for size in (1, len(targets)):
        seed_everything(cfg.seed)  # each stage starts from the same fresh model
        model = build_model(cfg).to(device)
        # No schedule: the question is whether the model can learn at all, at the configured lr.
        optimizer = build_optimizer(cfg, model)
        trainer = {{ task.trainer }}(model, build_loss(cfg), build_metrics(cfg), cfg, device, optimizer)
        result = trainer.overfit_batch(inputs[:size], targets[:size], cfg.overfit_steps)
        print(result.report(cfg))
        if not result.fitted:
            return 1
    return 0


def find_lr(cfg: Config) -> int:
    """The learning-rate range test: plot loss against lr and suggest an lr= override."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    train_loader, _, _ = make_dataloaders(cfg)
    model = build_model(cfg).to(device)
    optimizer = build_optimizer(cfg, model)
    trainer = {{ task.trainer }}(model, build_loss(cfg), build_metrics(cfg), cfg, device, optimizer)
    lrs, losses = trainer.find_lr(train_loader, cfg.lr_finder_steps)
    if len(lrs) < 3:
        raise ConfigError("the loss diverged at once, even at lr=1e-7; check the data and model.")
    suggestion = suggest_lr(lrs, losses)
    plot = Path(cfg.plot_dir, cfg.experiment, "lr_finder.png")
    save_lr_plot(lrs, losses, suggestion, plot)
    print(
        f"swept lr from {lrs[0]:.1e} to {lrs[-1]:.1e} in {len(lrs)} steps; the loss falls fastest "
        f"at {suggestion:.1e}.\nplot: {plot}\ntrain with: python src/main.py lr={suggestion:.1e}"
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
    cfg = apply_overrides(from_dict(checkpoint["config"]), overrides)
    restore_data_index(cfg, checkpoint)
    device = resolve_device(cfg.device)
    _, _, test_loader = make_dataloaders(cfg)
    model = build_model(cfg)
    load_model_weights(model, checkpoint, checkpoint_path)
    trainer = {{ task.trainer }}(model.to(device), build_loss(cfg), build_metrics(cfg), cfg, device)
    results = trainer.evaluate(test_loader, desc="test")
{% include "tasks/" ~ cookiecutter.task ~ "/main_test_extra.py" ignore missing %}
    scores = " | ".join(f"test_{k} {v:.4f}" for k, v in results.items() if isinstance(v, float))
    print(f"{checkpoint_path} on {len(test_loader.dataset)} test samples: {scores}")
    saved = RunPaths.for_run(cfg).logs / "test.json"
    record = {"checkpoint": str(checkpoint_path), "samples": len(test_loader.dataset), **results}
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results           {saved}")
    return 0


def replay(dump_path: Path) -> int:
    """Re-run the step that produced a non-finite loss: exit 1 if it is non-finite again."""
    dump = load_file(dump_path, torch.device("cpu"))
    cfg = from_dict(dump["config"])
    model = build_model(cfg)
    load_model_weights(model, dump, dump_path)
    first_bad: list[str] = []

    def find_first_bad(module: torch.nn.Module, _: object, output: object) -> None:
        if not first_bad and isinstance(output, torch.Tensor) and not output.isfinite().all():
            first_bad.append(names[module])

    names = {module: name or "model" for name, module in model.named_modules()}
    for module in names:
        module.register_forward_hook(find_first_bad)
    model.train()  # the mode the failing step ran in
    loss = build_loss(cfg)(model(dump["inputs"]), dump["targets"])
    if torch.isfinite(loss):
        print(f"replayed {dump_path}: loss {loss.item():.4g} is finite this time.")
        return 0
    where = f"; the first module with a non-finite output is {first_bad[0]}" if first_bad else ""
    print(f"replayed {dump_path}: loss {loss.item()}{where}.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
