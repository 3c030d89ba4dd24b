{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task with context %}
"""Entry point: `python src/main.py [key=value ...] [MODE]`; `--help` lists the modes and keys.

It reads the command line and checks the config keys before loading torch and the rest of the
project (modes.py), which takes seconds: `--help`, `--runs` and a mistyped key answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from config import Config, UserError, apply_overrides, describe_keys
from run_table import list_runs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: config overrides plus at most one mode flag."""
    parser = argparse.ArgumentParser(
        description="Train the model, check that it can learn, or test a checkpoint.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"config keys (override with key=value):\n{describe_keys()}".replace("%", "%%"),
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides (of a key given twice, the last value wins)",
    )
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
    mode.add_argument(
        "--export",
        metavar="CHECKPOINT",
        help="write a checkpoint's network for inference without this project: model.pt2 "
        "(torch.export) and model.onnx, checked on the test split, in models/exported/",
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
        "--tune",
        type=trial_count,
        metavar="N",
        help="search the config's search space (or the ranges given, e.g. lr=1e-4:1e-1:log "
        "batch_size=32,64) with Optuna until the experiment's study holds N finished trials; "
        "the same command continues a stopped search, and 0 shows its results",
    )
    mode.add_argument(
        "--runs", action="store_true", help="list every run with its status and best score"
    )
    return parser.parse_intermixed_args(argv)  # overrides may also follow a mode flag


def trial_count(text: str) -> int:
    """The N of --tune N: a whole number, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of trials (0 or more), got {text!r}")
    return int(text)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """The project's own warnings as one line: what is wrong and what to do (Python adds the
    file, line and source of the code that warned, which tell a user nothing). Others as usual."""
    if category is UserWarning and os.path.dirname(filename) == os.path.dirname(__file__):
        print(f"warning: {message}", file=file or sys.stderr)
    else:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        print(text, end="", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run what the command line asks for; returns the process exit code."""
    args = parse_args(argv)
    # Modes that start from a saved config check the overrides against it, later; under
    # torchrun, the processes check them once they have met, so that one of them reports.
    # --tune's overrides may be ranges, which tune.py reads.
    saved = args.config or args.resume or args.test or args.export or args.replay{{ " or args.predict" if task.predicts }}
    local = os.environ.get("WORLD_SIZE", "1") == "1" and args.tune is None
    if local and (args.runs or not saved):
        try:
            cfg = apply_overrides(Config(), args.overrides)
            if args.runs:
                return list_runs(cfg)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_code
    import modes  # noqa: PLC0415 (loads torch: only now that it is needed)

    return modes.run(args, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    warnings.showwarning = show_warning
    sys.exit(main())
