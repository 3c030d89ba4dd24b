{% import "tasks/" ~ cookiecutter.task ~ "/defaults.jinja" as task with context %}
"""The experiment's settings: the one file to edit when you want to try something different.

Every field can also be overridden for one run from the command line, without editing this file:

    python src/main.py lr=3e-4 epochs=20 scheduler=cosine

Values are typed from the field (`lr=1` is the float 1.0; booleans take true/false) and checked by
`validate` before anything runs. `python src/main.py --help` lists every key with its default.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, get_type_hints


class UserError(Exception):
    """A mistake the user can fix: `main` prints the message without a traceback and exits."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Raised in a DataLoader worker, the error reaches the main process rebuilt from the
        # worker's traceback as text ("Caught DataError in DataLoader worker process 0. Original
        # Traceback ..."); its message is the end of that text.
        if message.startswith("Caught ") and "\nOriginal Traceback" in message:
            message = message.rstrip().splitlines()[-1].partition(": ")[2]
        super().__init__(message)


class ConfigError(UserError):
    """A bad key, value or combination of values in the configuration."""


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    search: str | None = None,
    auto: bool = False,
    only: tuple[str, str | tuple[str, ...]] | None = None,
) -> Any:
    """A config field with its documentation and the range that `validate` enforces.

    `search` puts the field in the search space of `--tune N`: a range `low:high` (`:log` for a
    log scale, `:step` for a grid) or a list `a,b,c` of values to choose from. `auto` lets the
    number field take the value "auto": a new run then chooses the number from its data (see
    `settle` in modes.py) and records it, so a resumed run keeps it.
    `only=(key, value)` (or a tuple of values): the field matters only where `key` has that
    value; elsewhere a value other than its default is refused, and `--tune` does not search it.
    """
    limits = {"choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt}
    extra = {"search": search, "auto": auto, "only": only}
    return field(default=default, metadata={"help": help, **extra, **limits})


AUTO = "auto"
LARGEST_INT = 2**31 - 1
# Validation scores where higher is better; any other (a loss, an error, a distance): lower.
HIGHER_IS_BETTER = frozenset({"acc", "acc_tta", "f1", "macro_f1", "r2", "dice", "iou", "psnr"})


OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "cosine", "onecycle", "plateau")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("auto", "off", "bf16", "fp16")
PRUNERS = ("median", "halving", "none")
{% include "tasks/" ~ cookiecutter.task ~ "/config_choices.py" ignore missing %}


{% include "tasks/" ~ cookiecutter.task ~ "/config_data_" ~ cookiecutter.dataset ~ ".py" %}


{% include "tasks/" ~ cookiecutter.task ~ "/config_fields.py" %}


@dataclass(frozen=True)
class Config(TaskSettings, DataSettings):
    """Everything that defines an experiment: the data's and the task's settings above, and the
    training's below. Each field says what it does and its valid values."""

    # Splits, drawn deterministically from `seed`
    val_fraction: float = option(0.15, "share held out for validation, unless folds>1", gt=0, lt=1)
{% if cookiecutter.dataset in ("mnist", "cifar10") %}
    # (the test split is the official test set)
{% else %}
    test_fraction: float = option(0.15, "share of the samples held out for --test", gt=0, lt=1)
{% endif %}
    folds: int = option(1, "k > 1: cross-validation; each k-th of the rest validates once", ge=1)
    fold: int = option(0, "with folds=k: train fold 1..k alone; 0: all, then mean ± std", ge=0)

    # Optimisation
    epochs: int = option(
        AUTO,
        "passes over the training split; auto: min_epochs, or more for min_steps",
        ge=1,
        auto=True,
    )
    min_epochs: int = option({{ task.epochs }}, "epochs=auto: train at least this many epochs", ge=1)
    min_steps: int = option(
        {{ task.min_steps }}, "epochs=auto: and at least this many optimizer steps (small data)", ge=1
    )
    batch_size: int = option(
        {{ task.batch_size }}, "samples per batch (per process under torchrun)", ge=1, search="{{ task.batch_size_search }}"
    )
    lr: float = option(
        {{ task.default_lr }},
        "learning rate (the peak rate for onecycle); auto: the range test's choice (--find-lr)",
        gt=0,
        search="{{ task.lr_search }}",
        auto=True,
    )
    optimizer: str = option("adamw", "adam, adamw, or sgd with momentum", choices=OPTIMIZERS)
{% if task.weight_decay_search %}
    weight_decay: float = option(
        {{ task.weight_decay }}, "L2 penalty (decoupled for adamw)", ge=0, search="{{ task.weight_decay_search }}"
    )
{% else %}
    weight_decay: float = option({{ task.weight_decay }}, "L2 penalty (decoupled for adamw)", ge=0)
{% endif %}
    scheduler: str = option("{{ task.scheduler }}", "lr schedule: " + ", ".join(SCHEDULERS), choices=SCHEDULERS)
    lr_decay: float = option(0.1, "lr factor of the step and plateau schedules", gt=0, lt=1)
    lr_step_epochs: int = option(5, "epochs per decay (step), or to wait for one (plateau)", ge=1)
    warmup_steps: int = option(
        {{ task.warmup_steps }}, "steps of linear lr warmup before none, step or cosine; 0: none", ge=0
    )
    grad_clip: float = option(1.0, "largest gradient norm before each step; 0 disables", ge=0)
    accumulate_steps: int = option(1, "batches whose gradients add up to one step", ge=1)
    amp: str = option(
        "auto",
        "mixed precision: auto (bf16, else fp16 on CUDA; off on CPU), off, bf16, fp16",
        choices=AMP_MODES,
    )
    early_stopping_patience: int = option(
        {{ task.early_stopping_patience }}, "epochs without a new best monitor score before stopping; 0 disables", ge=0
    )
    monitor: str = option(
        "{{ task.monitor }}",
        "the val_ score that picks best.pt, early stopping and --tune: loss, or a metric (acc, r2, "
        "dice... higher wins); name:max or name:min says the direction of one of your own",
    )

    # Machine and reproducibility
    device: str = option("auto", "auto picks cuda, then mps, then cpu", choices=DEVICES)
{% if cookiecutter.task == "image_classification" and cookiecutter.dataset == "image_folder" %}
    num_workers: int = option(
        AUTO,
        "DataLoader worker processes; auto: none for images decoded into memory, a core each "
        "(at most 8) for images read from their files",
        ge=0,
        auto=True,
    )
{% else %}
    num_workers: int = option(0, "DataLoader worker processes; 0 loads in the main process", ge=0)
{% endif %}
    compile: bool = option(False, "torch.compile the model: faster steps after a slow first epoch")
{% if task.convolutional %}
    channels_last: bool = option(False, "channels-last memory layout: faster convolutions on GPUs")
{% endif %}
    seed: int = option(
        0, "seed of the data, the initial weights and the shuffling", ge=0, le=2**32 - 1
    )
    deterministic: bool = option(False, "deterministic kernels: bitwise-repeatable runs, slower")

    # Checkpoints (last.pt and best.pt always; step-<step>.pt files as history)
    checkpoint_every_steps: int = option(0, "also save every N optimizer steps; 0: per epoch", ge=0)
    keep_last_checkpoints: int = option(2, "step-*.pt files kept; older ones are pruned", ge=1)
    overwrite: bool = option(False, "let a new run replace the outputs of a run of the same name")

    # Outputs, each in <dir>/<experiment>/<run_name>/
    experiment: str = option("default", "name grouping related runs")
    run_name: str = option("", "this run's folder name; empty: a timestamp like 20260131-142501")
{% if cookiecutter.dataset == "image_folder" %}
    data_dir: str = option("data", "folder of your images (see dataset.py for its layouts)")
{% elif cookiecutter.dataset == "csv" %}
    data_dir: str = option("data", "folder of your CSV file (see csv_file)")
{% elif cookiecutter.dataset in ("mnist", "cifar10") %}
    data_dir: str = option("data", "folder torchvision downloads the dataset into, once")
{% else %}
    data_dir: str = option("data", "folder of the datasets (the built-in data is cached here)")
{% endif %}
    checkpoint_dir: str = option("models/checkpoints", "where last.pt and best.pt go")
    log_dir: str = option("results/logs", "where TensorBoard event files go")
    plot_dir: str = option("results/visualizations", "where the training-curve plots go")
    log_every: int = option(50, "optimizer steps between step logs and bar updates", ge=1)
    log_images_every: int = option(
        1, "epochs between the prediction pictures in TensorBoard (at most); 0: none", ge=0
    )
    tracker: str = option(
        "tensorboard",
        "where runs are logged besides TensorBoard (always): wandb, mlflow or "
        "wandb,mlflow (W&B offline with WANDB_MODE=offline; MLflow in results/mlflow.db)",
    )

    # Self-checks (see checks.py)
    overfit_steps: int = option({{ task.overfit_steps }}, "step budget of each --overfit-batch stage", ge=1)
    sanity_checks: bool = option(True, "check the first step for unused layers, a stuck optimizer")
    loss_check_steps: int = option(
        0, "warn unless the loss fell by then; 0: max(epoch, 20, warmup_steps)", ge=0
    )
    log_hist_every: int = option(100, "steps between weight/gradient histograms; 0: off", ge=0)
    debug: bool = option(False, "autograd anomaly detection: finds the op making NaNs; slow")
    imbalance_warn_ratio: float = option(3.0, "warn when a class is this many times another", gt=1)
    lr_finder_steps: int = option(200, "steps of the --find-lr learning-rate sweep", ge=10)

    # Hyperparameter search (--tune N; the fields' `search=` declare what it searches)
    storage: str = option(
        "", "--tune's studies: empty: results/studies.journal; or a URL, e.g. postgresql://..."
    )
    pruner: str = option(
        "median", "how --tune ends hopeless trials: median, halving or none", choices=PRUNERS
    )


# Keys that name or place a run rather than change what it learns: never "hyperparameters".
NOT_HYPERPARAMETERS = frozenset(
    ("experiment", "run_name", "overwrite", "checkpoint_dir", "log_dir", "plot_dir")
    + ("storage", "pruner")  # where --tune keeps its studies and how it prunes their trials
    + ("tracker",)
)

# The keys that may change when a run resumes: what the run reads as it goes (the machine, the
# outputs, the checks, the length of the run) and what --test alone uses. The others were built
# into the model, the optimizer, the schedule or the data when the run started.
RESUMABLE = TaskSettings.TEST_ONLY | {
    *("epochs", "early_stopping_patience", "grad_clip", "device", "num_workers", "compile"),
    *("channels_last", "deterministic", "checkpoint_every_steps", "keep_last_checkpoints"),
    *("overwrite", "data_dir", "log_every", "log_images_every", "overfit_steps", "sanity_checks"),
    *("loss_check_steps", "log_hist_every", "debug", "imbalance_warn_ratio", "lr_finder_steps"),
    *("storage", "pruner", "tracker"),
}
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME = 100  # experiment and run_name: folder names, well under the file systems' 255


def describe_keys() -> str:
    """One line per config key with its default, type and help, for --help."""
    hints = get_type_hints(Config)
    lines = []
    for f in dataclasses.fields(Config):
        default = f"{f.default!r}" if hints[f.name] is str else _format(f.default)
        searched = f" [--tune: {f.metadata['search']}]" if f.metadata["search"] else ""
        lines.append(
            f"  {f.name}={default}  ({hints[f.name].__name__}) {f.metadata['help']}{searched}"
        )
    return "\n".join(lines)


def overrides_without(overrides: list[str], keys: tuple[str, ...]) -> list[str]:
    """The `key=value` overrides whose key is not one of `keys`: the ones to repeat in a command
    that sets `keys` itself."""
    return [item for item in overrides if item.partition("=")[0].strip() not in keys]


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Return `cfg` with `key=value` overrides applied, typed from the fields and validated."""
    hints = get_type_hints(Config)
    fields = {f.name: f for f in dataclasses.fields(Config)}
    known = set(fields)
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"cannot read the override {item!r}: overrides look like key=value, e.g. lr=3e-4."
            )
        if key not in known:
            raise ConfigError(_unknown_key_message(key, known))
        if text.strip() == AUTO and fields[key].metadata["auto"]:
            changes[key] = AUTO
        else:
            changes[key] = parse_value(key, text, hints[key])
    cfg = dataclasses.replace(cfg, **changes)
    validate(cfg)
    return cfg


def parse_value(key: str, text: str, kind: type) -> Any:
    """Convert the text of an override to the field's type, with a message naming the key."""
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise ConfigError(f"{key} must be true or false, got {text!r}.")
    if kind is str:
        return text
    try:
        value = kind(text)
    except ValueError:
        example = "3" if kind is int else "3e-4"
        raise ConfigError(
            f"{key} must be {'an integer' if kind is int else 'a number'}, got {text!r} "
            f"(e.g. {key}={example})."
        ) from None
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {text!r}.")
    return value


TRACKERS = {"tensorboard": None, "wandb": "wandb", "mlflow": "mlflow-skinny"}  # to install


def check_trackers(text: str) -> None:
    """Refuse a `tracker` that names an unknown tracker, or one whose package is missing."""
    names = text.split(",")
    if any(name not in TRACKERS for name in names):
        raise ConfigError(
            f"tracker must name tensorboard, wandb or mlflow, several separated by commas (e.g. "
            f"wandb,mlflow; TensorBoard always logs), got {_shown(text)}."
        )
    missing = [TRACKERS[n] for n in names if TRACKERS[n] and importlib.util.find_spec(n) is None]
    if missing:
        raise ConfigError(
            f"tracker={text} logs with {', '.join(missing)}, which this environment lacks: "
            f"pip install {' '.join(missing)}, then run it again."
        )


def validate(cfg: Config) -> None:
    """Check every field against its declared range, then the rules that involve several fields."""
    hints = get_type_hints(Config)
    for f in dataclasses.fields(Config):
        value, kind = getattr(cfg, f.name), hints[f.name]
        if value == AUTO and f.metadata["auto"]:
            continue  # a number chosen when the run starts
        accepted = (int, float) if kind is float else kind  # an int is a fine float
        if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"{f.name} must be of type {kind.__name__}, got {_shown(value)}.")
        if kind is float and not math.isfinite(value):  # NaN or Infinity from a JSON file
            raise ConfigError(f"{f.name} must be a finite number, got {value!r}.")
        _check_limits(f.name, value, f.metadata)
        if kind is int and value > LARGEST_INT:  # beyond what any loop or tensor size takes
            raise ConfigError(f"{f.name} must be <= {LARGEST_INT}, got {_format(value)}.")
        check_applies(cfg, f)
    check_trackers(cfg.tracker)
    for key in ("experiment", "run_name"):
        value = getattr(cfg, key)
        if value and (not NAME_PATTERN.fullmatch(value) or ".." in value):
            raise ConfigError(
                f"{key} must be a plain folder name: a letter or digit first, then letters, "
                f"digits, '.', '_' and '-' (no '..'), got {_shown(value)}."
            )
        if len(value) > MAX_NAME:
            raise ConfigError(
                f"{key} is {len(value)} characters long; folder names here have at most "
                f"{MAX_NAME}. Choose a shorter {key}."
            )
    if not cfg.experiment:
        raise ConfigError("experiment must not be empty; it names the folder that groups runs.")
    name, _, direction = cfg.monitor.removeprefix("val_").partition(":")
    if not name or direction not in ("", "max", "min"):
        raise ConfigError(
            f"monitor must name a validation score, with :max or :min after it if higher or "
            f"lower is better (e.g. monitor=acc or monitor=pearson:max), got {_shown(cfg.monitor)}."
        )
{% if cookiecutter.dataset not in ("mnist", "cifar10") %}
    if cfg.val_fraction + cfg.test_fraction >= 1:
        raise ConfigError(
            f"val_fraction + test_fraction must leave samples to train on, got "
            f"{cfg.val_fraction} + {cfg.test_fraction} >= 1; lower one of them."
        )
{% endif %}
    if cfg.fold > cfg.folds:
        raise ConfigError(
            f"fold={cfg.fold} does not exist with folds={cfg.folds}: k-fold cross-validation "
            "numbers its folds 1 to k. Set folds=k with k >= fold, or fold=0 to train every fold."
        )
    if cfg.warmup_steps and cfg.scheduler in ("onecycle", "plateau"):
        reason = "warms up by itself" if cfg.scheduler == "onecycle" else "adapts once per epoch"
        raise ConfigError(
            f"warmup_steps={cfg.warmup_steps} does not combine with scheduler={cfg.scheduler}, "
            f"which {reason}. Use warmup_steps=0, or scheduler=cosine, step or none."
        )


def applies(cfg: Config, f: dataclasses.Field) -> bool:
    """Whether the field does anything with the other settings of `cfg` (see `only`)."""
    other, values = f.metadata["only"] or (None, ())
    return other is None or getattr(cfg, other) in ([values] if isinstance(values, str) else values)


def check_applies(cfg: Config, f: dataclasses.Field) -> None:
    """Refuse a field set where it does nothing (see `only` in `option`)."""
    if not applies(cfg, f) and getattr(cfg, f.name) != f.default:
        other, values = f.metadata["only"]
        values = (values,) if isinstance(values, str) else values
        raise ConfigError(
            f"{f.name}={_format(getattr(cfg, f.name))} applies only with {other}="
            f"{' or '.join(values)} (here {other}={getattr(cfg, other)}), so it would change "
            f"nothing. Set {other}= too, or leave {f.name} at its default, {_format(f.default)}."
        )


def without_unused(cfg: Config) -> Config:
    """`cfg` with the fields that do nothing in it (see `only`) at their defaults: a --tune
    trial draws a value for each searched key, whatever the others drew."""
    unused = {f.name: f.default for f in dataclasses.fields(Config) if not applies(cfg, f)}
    return dataclasses.replace(cfg, **unused)


def monitored(cfg: Config) -> tuple[str, bool]:
    """The validation score that `cfg.monitor` names (without val_) and whether higher is
    better: as stated (name:max, name:min), else as HIGHER_IS_BETTER knows it."""
    name, _, direction = cfg.monitor.removeprefix("val_").partition(":")
    return name, direction == "max" if direction else name in HIGHER_IS_BETTER


def to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain data, for checkpoints and logs."""
    return dataclasses.asdict(cfg)


def from_dict(values: dict[str, Any], source: str) -> Config:
    """Rebuild a config saved by `to_dict` in `source` (a checkpoint, a file: what messages
    name), refusing keys this version does not know and values it does not accept."""
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source} holds a config with keys this project does not know: "
            f"{', '.join(unknown)}. It was written by another project, or by a version of "
            "config.py that had them: use it there, or start a new run."
        )
    try:
        cfg = Config(**values)
        validate(cfg)
    except ConfigError as error:
        raise ConfigError(
            f"{source} holds a config this project refuses: {error} Correct the value there (it "
            "was edited by hand, or written by another version of config.py), or start a new run."
        ) from None
    return cfg


def _check_limits(key: str, value: Any, limits: dict[str, Any]) -> None:
    choices = limits["choices"]
    if choices is not None and value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}.")
    if limits["ge"] is not None and value < limits["ge"]:
        raise ConfigError(f"{key} must be >= {_format(limits['ge'])}, got {_format(value)}.")
    if limits["gt"] is not None and value <= limits["gt"]:
        raise ConfigError(f"{key} must be > {_format(limits['gt'])}, got {_format(value)}.")
    if limits["le"] is not None and value > limits["le"]:
        raise ConfigError(f"{key} must be <= {_format(limits['le'])}, got {_format(value)}.")
    if limits["lt"] is not None and value >= limits["lt"]:
        raise ConfigError(f"{key} must be < {_format(limits['lt'])}, got {_format(value)}.")


def _unknown_key_message(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"unknown config key {key!r}.{hint} Valid keys are: {', '.join(sorted(known))}. "
        "Run `python src/main.py --help` to see each key with its default."
    )


def _shown(value: Any) -> str:
    """`value` for a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)
