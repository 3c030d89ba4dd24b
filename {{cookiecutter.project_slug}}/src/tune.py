"""--tune N: a hyperparameter search with Optuna that continues where it stopped.

`python src/main.py --tune 20` trains trials until the study named after the experiment holds 20
finished trials (completed or pruned). Each trial is an ordinary run, trial-<number> in the
experiment's folders, with the values that Optuna's TPE sampler (seeded from `seed`) picks from
the search space: the `search=` of the fields in config.py, or instead the ranges and lists given
on the command line (`lr=1e-4:1e-1:log batch_size=32,64`). The first trial of a new study trains
the config's own values, where they lie in the space. After every epoch a trial reports its
validation score (the one that picks best.pt), and the pruner ends it if it falls behind.

The study lives in `storage`: by default the journal file results/studies.journal, which several
workers (processes started with the same command) share, on this machine or, on a shared file
system, on several; a database URL such as postgresql://user@host/db shares it too. Workers claim
trials one at a time under a lock in the storage itself, so the study never holds more than N
finished trials and no trial is trained by two workers. The same command, run again after a stop or
a crash, continues the study: finished trials are kept, and a trial whose worker is gone is
trained on from its last checkpoint. `--tune 0` shows the study: its trials best first, the
command that retrains the best, and how much each searched key mattered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import random
import socket
import sys
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

import numpy
import optuna
import sqlalchemy
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from checks import add_hint
from config import (
    AUTO,
    NOT_HYPERPARAMETERS,
    RESUMABLE,
    Config,
    ConfigError,
    UserError,
    monitored,
    parse_value,
    to_dict,
    validate,
    without_unused,
)
from run_table import aligned, format_value, pid_alive, save_csv
from runs import Fit, record_context
from utils import RunPaths, load_checkpoint, restore_data_index

if TYPE_CHECKING:
    from train import Trainer

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which process trains a trial
# A worker marks its trial alive this often; a trial whose mark is older than STALE_AFTER lost
# its worker (on any machine: a pid can be checked only on its own) and goes to the next one.
HEARTBEAT_SECONDS = 30.0
STALE_AFTER = 300.0
MAX_FAILURES = 5  # trials in a row that fail before the search gives up


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One key of the search space: a range `low:high` (`:log`, or `:step`) or a list of values."""

    key: str
    text: str  # as written in config.py or on the command line
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def distribution(self) -> BaseDistribution:
        if self.choices:
            return CategoricalDistribution(self.choices)
        if isinstance(self.low, int):
            return IntDistribution(self.low, self.high, log=self.log, step=int(self.step or 1))
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def holds(self, value: Any) -> bool:
        """Whether `value` is one this dimension can take."""
        if self.choices:
            return value in self.choices
        if value == AUTO:  # a number that the run chooses when it starts
            return False
        on_grid = self.step is None or math.isclose((value - self.low) / self.step % 1, 0)
        return self.low <= value <= self.high and on_grid

    def extremes(self) -> tuple[Any, ...]:
        """The values that show whether the config accepts the whole dimension."""
        return self.choices or (self.low, self.high)


def split_overrides(overrides: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The command line's plain `key=value` overrides, and its search ranges and lists: a range
    has a ':' (numeric keys), a list a ',' (or ';' between values that hold commas). A key given
    a value and a range is searched; the value is where the first trial starts."""
    hints = get_type_hints(Config)
    fields = {f.name: f for f in dataclasses.fields(Config)}
    plain, ranges = [], []
    for item in overrides:
        key, _, text = (part.strip() for part in item.partition("="))
        if key not in fields:
            plain.append(item)  # apply_overrides explains the mistake
            continue
        kind = hints[key]
        is_range = kind in (int, float) and ":" in text
        # a free-text value (a path, a column name) may hold commas; it is a list only with ';'
        listing = ";" if kind is str and not fields[key].metadata["choices"] else ",;"
        if is_range or any(mark in text for mark in listing):
            ranges.append((key, text))
        else:
            plain.append(item)
    return plain, ranges


def search_space(
    cfg: Config, ranges: list[tuple[str, str]], fixed: list[str]
) -> dict[str, Dimension]:
    """The dimensions to search: `ranges` if given, else the `search=` of config.py's fields
    but the `fixed` keys (set on the command line); each checked against the field's limits,
    with the other values of `cfg`."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    declared = [(key, f.metadata["search"]) for key, f in fields.items()]
    declared = [(key, text) for key, text in declared if text and key not in fixed]
    space: dict[str, Dimension] = {}
    for key, text in ranges or declared:
        if key in NOT_HYPERPARAMETERS or key == "monitor":
            what = "the score the search optimises" if key == "monitor" else "or places runs"
            raise ConfigError(f"{key} cannot be searched: it names {what}.")
        if key in space:
            raise ConfigError(f"{key} is searched twice; give its range or values once.")
        space[key] = read_dimension(key, text)
        for value in space[key].extremes():
            try:  # (a key moot with the others' values is said below, with what to do)
                validate(without_unused(dataclasses.replace(cfg, **{key: value})))
            except ConfigError as error:
                raise ConfigError(
                    f"the search space {key}={text} includes {key}={value!r}, which this config "
                    f"refuses: {error} Narrow it."
                ) from None
    for key in space:
        other, values = fields[key].metadata["only"] or (key, None)
        values = (values,) if isinstance(values, str) else values
        if other not in space and values is not None and getattr(cfg, other) not in values:
            value = " or ".join(values)
            raise ConfigError(
                f"{key} matters only with {other}={value} (here {other}={getattr(cfg, other)}): "
                f"its trials would differ in nothing. Add {other}={values[0]}, search {other} "
                f"too, or leave {key} out of the search."
            )
    if not space:
        raise ConfigError(
            "the search space is empty: give ranges or lists on the command line (e.g. "
            "lr=1e-4:1e-1:log batch_size=32,64), or search= beside fields in config.py."
        )
    return space


def read_dimension(key: str, text: str) -> Dimension:
    """The dimension that `key=text` describes (see `split_overrides`)."""
    kind = get_type_hints(Config)[key]
    if ":" not in text or kind not in (int, float):
        values = [value.strip() for value in text.split(";" if ";" in text else ",")]
        choices = tuple(dict.fromkeys(parse_value(key, value, kind) for value in values))
        if len(choices) < 2:
            raise ConfigError(f"{key}={text} lists fewer than two values to choose from.")
        return Dimension(key, text, choices=choices)
    low, high, *rest = (part.strip() for part in text.split(":"))
    if len(rest) > 1:
        raise ConfigError(
            f"cannot read the search range {key}={text}: ranges look like low:high, "
            "low:high:log or low:high:step, e.g. lr=1e-4:1e-1:log."
        )
    scale = rest[0] if rest else ""
    dimension = Dimension(
        key,
        text,
        low=parse_value(key, low, kind),
        high=parse_value(key, high, kind),
        log=scale == "log",
        step=parse_value(key, scale, kind) if scale not in ("", "log") else None,
    )
    if not dimension.low < dimension.high:
        raise ConfigError(f"the search range {key}={text} is empty: its low must be below high.")
    if dimension.log and dimension.low <= 0:
        raise ConfigError(f"the log range {key}={text} must start above 0.")
    if dimension.step is not None and dimension.step <= 0:
        raise ConfigError(f"the step of {key}={text} must be above 0.")
    if dimension.step is not None:
        steps = (dimension.high - dimension.low) / dimension.step
        if steps < 1 or abs(steps - round(steps)) > 1e-9:
            top = dimension.low + max(1, int(steps)) * dimension.step  # never the low itself
            raise ConfigError(
                f"the step of {key}={text} does not divide its range into whole steps "
                f"({steps:.3g} of them){': it would hold one value only' if steps < 1 else ''}. "
                f"Use a step that divides {dimension.high - dimension.low:g}, or a high of {top:g}."
            )
    return dimension


def tune(cfg: Config, overrides: list[str], trials: int, fit: Fit) -> int:
    """--tune `trials`: train trials of `cfg` (each with `fit`) over the search space (the
    ranges among `overrides`, else config.py's) until the study holds that many finished
    trials; then report it. Returns the exit code."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # this module prints what happens
    if trials == 0:
        report(load_study(cfg), cfg)
        return 0
    fixed, ranges = split_overrides(overrides)
    space = search_space(cfg, ranges, [item.partition("=")[0].strip() for item in fixed])
    storage = open_storage(cfg)
    with claim_lock(cfg, storage):  # the first of several workers creates the study alone
        study = open_study(cfg, space, storage)
    print(f"study {cfg.experiment} in {storage_name(cfg)}: {trials} finished trials wanted")
    failures = 0
    while failures < MAX_FAILURES:
        with claim_lock(cfg, storage):  # one worker, of any machine, picks its next trial
            trial = next_trial(study, cfg, space, trials)
        if trial is None:
            report(study, cfg)
            return 0
        exit_code = train_trial(study, trial, cfg, fit)
        if exit_code >= 128:  # stopped by a signal; the trial resumes with the same command
            print(
                f"search stopped: the same --tune command continues it, and trial {trial.number} "
                "from that checkpoint."
            )
            return exit_code
        failures = failures + 1 if exit_code else 0
    print(f"stopping the search: its last {MAX_FAILURES} trials failed (see above).")
    report(study, cfg)
    return 1


def next_trial(
    study: optuna.Study, cfg: Config, space: dict[str, Dimension], wanted: int
) -> optuna.Trial | None:
    """The trial this worker trains next: one whose worker on this machine has died, else a new
    one; None once the study holds `wanted` finished trials (with the ones still running)."""
    trials = study.get_trials(deepcopy=False)
    running = [trial for trial in trials if trial.state == TrialState.RUNNING]
    finished = sum(trial.state in FINISHED for trial in trials)
    if finished >= wanted:
        return None
    for frozen in running:
        host, _, pid = str(frozen.user_attrs.get("worker", "")).rpartition(":")
        dead = host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))
        silent = time.time() - frozen.user_attrs.get("heartbeat", math.inf) > STALE_AFTER
        if dead or silent:
            # Optuna keeps a trial's storage id private; a Trial of it needs that id.
            trial = optuna.Trial(study, frozen._trial_id)
            trial.set_user_attr("worker", WORKER)
            trial.set_user_attr("heartbeat", time.time())
            why = f"pid {pid}" if dead else f"{host}, silent for over {STALE_AFTER:.0f} s"
            print(f"\ntrial {trial.number} was left by its worker ({why}): training it on")
            return trial
    if finished + len(running) >= wanted:
        print(f"the {len(running)} trials that other workers run will finish the study.")
        return None
    if not trials:  # the first trial trains the config as it is, where the space allows
        current = {key: getattr(cfg, key) for key in space}
        study.enqueue_trial({key: v for key, v in current.items() if space[key].holds(v)})
    # Seeded from the seed and the trial count, so that workers that share a study draw
    # different values (mixed: the first draws of seeds 1, 2, 3 lie close together).
    seed = int(numpy.random.SeedSequence([cfg.seed, len(trials)]).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    trial = study.ask({key: dim.distribution() for key, dim in space.items()})
    trial.set_user_attr("worker", WORKER)
    trial.set_user_attr("heartbeat", time.time())
    shown = " ".join(f"{key}={format_value(value)}" for key, value in trial.params.items())
    print(f"\ntrial {trial.number} ({finished} of {wanted} finished so far): {shown}")
    return trial


def report_saved_epochs(study: optuna.Study, trial: optuna.Trial, checkpoint: dict) -> None:
    """Report the epochs of `checkpoint` that the study lacks: a worker killed after saving an
    epoch and before reporting it would otherwise leave a gap in the trial's curve."""
    (reported,) = [t for t in study.get_trials(deepcopy=False) if t.number == trial.number]
    for row in checkpoint["history"]:
        if row["epoch"] not in reported.intermediate_values:
            trial.report(row[f"val_{checkpoint['monitor']}"], step=row["epoch"])


def train_trial(study: optuna.Study, trial: optuna.Trial, cfg: Config, fit: Fit) -> int:
    """Train `trial` as the run trial-<number>, from its last checkpoint if it has one, and tell
    the study how it ended. Returns the exit code of its run."""
    run_cfg = without_unused(
        dataclasses.replace(cfg, **trial.params, run_name=f"trial-{trial.number}")
    )
    last = RunPaths.for_run(run_cfg).checkpoints / "last.pt"
    checkpoint = None
    trainer: Trainer | None = None

    def judge(trainer: Trainer) -> bool:
        trial.report(trainer.history[-1][f"val_{trainer.monitor}"], step=trainer.epoch)
        return not trial.should_prune()

    record_context(trial={"study": cfg.experiment, "number": trial.number})
    alive = Heartbeat(trial)
    try:
        if last.exists():  # its worker stopped or died: the run goes on from where it was
            checkpoint = load_checkpoint(last, torch.device("cpu"))
            restore_data_index(run_cfg, checkpoint)
            report_saved_epochs(study, trial, checkpoint)
        exit_code, trainer = fit(run_cfg, checkpoint, last if checkpoint else None, judge=judge)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        exit_code = error.exit_code
    except Exception as error:  # a bug in this trial's settings; the others may be fine
        add_hint(error)
        traceback.print_exc()
        exit_code = 1
    finally:
        alive.stop()
        record_context()
    if exit_code >= 128:
        return exit_code  # still running in the study, until this command is run again
    if exit_code or trainer is None:
        study.tell(trial, state=TrialState.FAIL)
        print(f"trial {trial.number} failed (its run is recorded as crashed); going on.")
        return exit_code or 1
    study.set_user_attr("monitor", f"val_{trainer.monitor}")
    if not trainer.finished:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, trainer.best_score)
    return 0


class Heartbeat:
    """Marks `trial` alive in the study every HEARTBEAT_SECONDS, from a thread of its own,
    while its worker trains it (see `next_trial`)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial, self.stopped = trial, threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True)
        self.thread.start()

    def beat(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(Exception):  # a missed beat: the next one may get through
                self.trial.set_user_attr("heartbeat", time.time())

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


@contextlib.contextmanager
def claim_lock(cfg: Config, storage: optuna.storages.BaseStorage) -> Iterator[None]:
    """Held by one worker of the study at a time, on whatever machine: a lock in the storage.
    Beside a journal, a file created exclusively (as Optuna's own lock; it holds on NFS, and one
    left by a killed worker is taken over after 30 s); in PostgreSQL, an advisory lock, which
    ends with its transaction or connection; a SQLite file is one machine's: a file lock."""
    if not isinstance(storage, optuna.storages.RDBStorage):
        lock = optuna.storages.journal.JournalFileOpenLock(f"{journal_path(cfg).resolve()}.claim")
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
    elif storage.engine.dialect.name == "postgresql":
        with storage.engine.begin() as connection:
            key = zlib.crc32(f"--tune {cfg.experiment}".encode())
            connection.execute(sqlalchemy.text(f"SELECT pg_advisory_xact_lock({key})"))
            yield
    else:
        with open(f"{storage.engine.url.database}.claim", "a") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
            yield


def open_storage(cfg: Config) -> optuna.storages.BaseStorage:
    """The storage that `cfg.storage` names: a journal file (the default), or a database."""
    try:
        if "://" not in cfg.storage:
            path = journal_path(cfg)
            refuse_other_files(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            # An absolute path: Optuna's lock is a symlink to the journal, and a relative one
            # leads nowhere, so that a lock left by a killed worker was never taken over.
            backend = optuna.storages.journal.JournalFileBackend(str(path.resolve()))
            return optuna.storages.JournalStorage(backend)
        url = sqlalchemy.make_url(cfg.storage)
        kind = url.get_backend_name()
        if kind not in ("postgresql", "sqlite") or url.database in (None, "", ":memory:"):
            raise ConfigError(
                f"storage={storage_name(cfg)}: --tune's workers claim trials under a lock in "
                "the storage, which this project takes in PostgreSQL and SQLite databases (and "
                "the journal file). Use postgresql://user@host:5432/database, a SQLite file "
                "(sqlite:///results/studies.db), or leave storage empty for the journal file."
            )
        options = {}
        if kind == "postgresql":  # an unreachable host fails in seconds
            options = {"connect_args": {"connect_timeout": 10}}
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(cfg.storage, engine_kwargs=options)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                # Workers that start together on a new database each create Optuna's tables;
                # all but one collide, and find the tables there when they try again.
                if attempt == 4:
                    raise
                time.sleep(0.5 + random.random())
    except (OSError, ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ConfigError(
            f"cannot open the storage of --tune's studies, {storage_name(cfg)}: {reason}. Check "
            "that the database server runs and that the URL names it, the user and an existing "
            "database (postgresql://user@host:5432/database, the password in ~/.pgpass or "
            "PGPASSWORD rather than the URL, which each run records), or leave storage empty "
            "for the journal file under results/."
        ) from None


def refuse_other_files(path: Path) -> None:
    """Refuse to append to a file that is not an Optuna journal: a file the project did not
    create (notes, a CSV) is never written to."""
    if path.is_dir():
        raise ConfigError(
            f"storage={path} is a folder; --tune's storage is a journal file (or a database "
            f"URL). Name a file in it, e.g. storage={path / 'studies.journal'}, or leave storage "
            "empty for results/studies.journal."
        )
    if not path.is_file() or path.stat().st_size == 0:
        return  # a new journal
    with path.open("rb") as file:
        first = file.readline(1 << 16)
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        raise ConfigError(
            f"storage={path} is a file that is not a journal of --tune's studies (its first line "
            "is not an Optuna journal record), and --tune writes into its storage: it was left "
            "as it is. Name a new file (e.g. storage=results/search.journal), or leave storage "
            "empty for results/studies.journal."
        )


def journal_path(cfg: Config) -> Path:
    return Path(cfg.storage) if cfg.storage else Path(cfg.log_dir).parent / "studies.journal"


def storage_name(cfg: Config) -> str:
    """The storage for messages: the journal's path, or the URL without its password."""
    if "://" not in cfg.storage:
        return str(journal_path(cfg))
    try:
        return sqlalchemy.make_url(cfg.storage).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return cfg.storage.split("://")[0] + "://..."


def open_study(
    cfg: Config, space: dict[str, Dimension], storage: optuna.storages.BaseStorage
) -> optuna.Study:
    """The experiment's study in `storage`, created on first use; refused if it was made for
    another search (another space, direction, or setting of a key it does not search)."""
    study = optuna.create_study(
        storage=storage,
        study_name=cfg.experiment,
        direction=direction(cfg),
        load_if_exists=True,
        pruner=make_pruner(cfg),
    )
    wanted = {"space": {key: dim.text for key, dim in space.items()}, "settings": settings(cfg)}
    for key in wanted["space"]:
        wanted["settings"].pop(key, None)
    if not study.user_attrs:  # a new study
        earlier = sorted(Path(cfg.checkpoint_dir, cfg.experiment).glob("trial-*"))
        if earlier:
            raise ConfigError(
                f"experiment {cfg.experiment} already holds trial runs ({earlier[0].name}, ...) "
                f"of a study that {storage_name(cfg)} does not have. Give this search its own "
                "experiment=, or remove those runs."
            )
        for name, value in wanted.items():
            study.set_user_attr(name, value)
        return study
    refuse_other_search(study, wanted, cfg)
    return study


def direction(cfg: Config) -> str:
    """Optuna's direction for the study of `cfg.monitor`."""
    return "maximize" if monitored(cfg)[1] else "minimize"


def refuse_other_search(study: optuna.Study, wanted: dict[str, Any], cfg: Config) -> None:
    """Stop a command from adding trials that do not compare with the study's."""
    differences = []
    if [d.name.lower() for d in study.directions] != [direction(cfg)]:
        shown = " and ".join(d.name.lower() for d in study.directions)
        differences.append(f"it is to {shown} its score, here to {direction(cfg)} {cfg.monitor}")
    space = study.user_attrs.get("space") or {}
    try:
        same_space = distributions(space) == distributions(wanted["space"])
    except (KeyError, ConfigError):  # a key or range this config.py no longer has
        same_space = False
    if not same_space:
        shown = " ".join(f"{key}={text}" for key, text in space.items())
        differences.append(f"its search space is {shown or 'unknown'}")
    saved = study.user_attrs.get("settings", {})
    now = wanted["settings"]
    changed = [key for key in now if saved.get(key) != now[key]]
    if changed:
        shown = ", ".join(f"{key}={saved.get(key)!r} (here {now[key]!r})" for key in changed)
        differences.append(f"its trials train with {shown}")
    if differences:
        raise ConfigError(
            f"study {cfg.experiment} in {storage_name(cfg)} is another search: "
            f"{'; '.join(differences)}. Run the command that started it, or give this search "
            "its own experiment=."
        )


def distributions(space: dict[str, str]) -> dict[str, BaseDistribution]:
    """What a space's texts mean (1e-4:1e-1:log is 0.0001:0.1:log)."""
    return {key: read_dimension(key, text).distribution() for key, text in space.items()}


def settings(cfg: Config) -> dict[str, Any]:
    """What the trials of a study must share besides their searched keys: every hyperparameter
    and the length of the run (not the machine, the outputs or the checks)."""
    kept = {"epochs", "early_stopping_patience"}
    return {
        key: value
        for key, value in to_dict(cfg).items()
        if key in kept or key not in RESUMABLE | NOT_HYPERPARAMETERS
    }


def make_pruner(cfg: Config) -> optuna.pruners.BasePruner:
    """pruner=median: stop a trial whose score after an epoch is worse than the median of the
    earlier trials' at that epoch, once 3 have finished. halving: successive halving, which
    keeps the best quarter at each rung of epochs. none: every trial trains to its end."""
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3)
    if cfg.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def load_study(cfg: Config) -> optuna.Study:
    """The experiment's study, which must exist (--tune 0)."""
    try:
        return optuna.load_study(study_name=cfg.experiment, storage=open_storage(cfg))
    except KeyError:
        raise ConfigError(
            f"{storage_name(cfg)} holds no study named {cfg.experiment}: start it with "
            "python src/main.py --tune N (with the experiment= of the search, if it had one)."
        ) from None


def report(study: optuna.Study, cfg: Config) -> None:
    """The study's trials, best first, also saved as CSV; the best one's values and the command
    that trains it again; and how much each searched key mattered."""
    higher = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    trials = ranked(study.get_trials(deepcopy=False), higher)
    monitor = study.user_attrs.get("monitor", "score")
    keys = list(study.user_attrs.get("space") or {key: 0 for t in trials for key in t.params})
    header = ["trial", "state", *keys, f"{monitor} (best)", "epochs", "run"]
    rows = [
        [
            str(trial.number),
            trial.state.name.lower(),
            *(format_value(trial.params[key]) if key in trial.params else "-" for key in keys),
            "-" if trial.value is None else f"{trial.value:.4f}",
            str(len(trial.intermediate_values)),
            f"{cfg.experiment}/trial-{trial.number}",
        ]
        for trial in trials
    ]
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    print(
        f"\nstudy {cfg.experiment} in {storage_name(cfg)}: {counts[TrialState.COMPLETE]} "
        f"completed, {counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed, "
        f"{counts[TrialState.RUNNING]} running; best first:"
    )
    print(aligned([header, *rows]) if rows else "no trials yet.")
    path = Path(cfg.log_dir).parent / f"study-{cfg.experiment}.csv"
    save_study_csv(trials, keys, monitor, path)
    print(f"table saved as {path}")
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    if not complete:
        return
    best = complete[0]
    values = " ".join(f"{key}={format_value(value)}" for key, value in best.params.items())
    config = RunPaths.for_run(dataclasses.replace(cfg, run_name=f"trial-{best.number}"))
    print(
        f"\nbest: trial {best.number}, {monitor} {best.value:.4f}, with {values}\n"
        f"train it again: python src/main.py --config {config.logs / 'config.json'}\n"
        f"test its model: python src/main.py --test {config.checkpoints / 'best.pt'}"
    )
    print(importances(study))


def ranked(trials: list[FrozenTrial], higher: bool) -> list[FrozenTrial]:
    """Completed trials by score (the highest first if `higher` is better), then pruned ones by
    their last score, then the rest."""
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}

    def key(trial: FrozenTrial) -> tuple[int, float, int]:
        value = trial.value if trial.value is not None else -math.inf if higher else math.inf
        return order.get(trial.state, 2), -value if higher else value, trial.number

    return sorted(trials, key=key)


def importances(study: optuna.Study) -> str:
    """How much each searched key matters to the score (PED-ANOVA: how differently the values
    of the best trials are spread than those of all completed trials)."""
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns, and gives equal shares, when it cannot tell
        try:
            shares = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (RuntimeError, ValueError, UserWarning):
            shares = {}
    if not shares:
        return "importance: needs more completed trials, with different values."
    return "importance: " + ", ".join(f"{key} {share:.2f}" for key, share in shares.items())


def save_study_csv(trials: list[FrozenTrial], keys: list[str], monitor: str, path: Path) -> None:
    """The trials with their exact values, for a spreadsheet or pandas."""
    lines: list[list[Any]] = [["trial", "state", *keys, monitor, "epochs", "started", "seconds"]]
    for trial in trials:
        lines.append(
            [trial.number, trial.state.name.lower()]
            + [trial.params.get(key, "") for key in keys]
            + ["" if trial.value is None else trial.value, len(trial.intermediate_values)]
            + [trial.datetime_start.isoformat() if trial.datetime_start else ""]
            + [trial.duration.total_seconds() if trial.duration else ""]
        )
    save_csv(lines, path)
