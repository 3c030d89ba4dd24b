{#- the data sources whose training samples get seeded random augmentation -#}
{% set augmented = cookiecutter.dataset in ("mnist", "cifar10") or (cookiecutter.dataset == "image_folder" and cookiecutter.task != "autoencoder") %}
{#- those that draw each sample's augmentation with torch's global generator, seeded per sample -#}
{% set seeded_per_sample = cookiecutter.dataset == "image_folder" and cookiecutter.task in ("gan", "segmentation") %}
"""Helpers shared by the rest of the project: seeding, devices, run folders, checkpoint files and
clean stops."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import random
import re
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
{% if seeded_per_sample %}
from contextlib import contextmanager
{% endif %}
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

import distributed
from config import Config, ConfigError, UserError, from_dict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHECKPOINT_VERSION = 2
CHECKPOINT_KEYS = {"version", "config", "model", "task", "epoch", "global_step", "batches_done"}
CHECKPOINT_KEYS |= {"rng", "ranks", "processes"}
# What trained a checkpoint (saved in it): another project's checkpoints are refused by name.
PROJECT = {"task": "{{ cookiecutter.task }}", "dataset": "{{ cookiecutter.dataset }}"}


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or does not fit the model."""


class CheckpointWriteError(UserError):
    """A checkpoint, or another file of the run, that could not be written (disk full, no
    permission); the old one is intact."""

    exit_code = 1


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally insist on deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic results; must be set before CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    if deterministic != torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(deterministic)  # its first call costs seconds


def mixed_seed(*parts: int) -> int:
    """One seed from several numbers, e.g. (seed, epoch, sample index): different for each
    combination, unlike their sum."""
    mixed = 0
    for part in parts:
        mixed = mixed * 1_000_003 + part
    return mixed % 2**63


def own_random_stream(seed: int, step: int) -> None:
    """Seed this process's global generators from (seed, step, rank) under torchrun: without it
    every rank draws the same dropout masks and a GAN the same noise, on different samples. Call
    it once the model is built: its initial weights must be the same on every rank."""
    if distributed.is_active():
        torch.manual_seed(mixed_seed(seed, step, distributed.rank()))


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: seed the worker's python and numpy, and leave signals to the
    main process.

    SLURM, Kubernetes and `docker stop` signal the whole process group. Workers that died on that
    signal would take the main process's graceful save down with them; ignoring it here lets the
    main process finish its step, save and shut the workers down itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32  # torch seeds each worker from the loader's generator
    random.seed(seed)
    np.random.seed(seed)


def end_stray_workers() -> None:
    """Registered with atexit by `main`: kill the DataLoader workers that no loader shut down.

    They ignore SIGTERM (`seed_worker`), so multiprocessing's own exit handler, which terminates
    daemonic children and then waits for them, would wait forever for the workers of a loader
    still referenced when an error ended the run. Workers only read data: killing them loses
    nothing; torch's SIGCHLD handler, which would report their end as a failure, goes first.
    """
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in multiprocessing.active_children():
        child.kill()
        child.join()


class EpochSampler(Sampler[int]):
    """A shuffling sampler whose order depends only on (seed, epoch) and that can start mid-epoch.

    Both make resuming exact: a resumed run sees the same order as an uninterrupted one, and skips
    the samples it already trained on without loading them. The Trainer calls `set_epoch`. With
    `weights`, each epoch draws as many samples with replacement, in proportion to them. Under
    torchrun it is also the distributed sampler: each process gets its own share of the epoch's
    order (see `distributed.shard`), and `start` counts within that share.
    """

    def __init__(self, size: int, seed: int, weights: torch.Tensor | None = None) -> None:
        self.size = size
        self.seed = seed
        self.weights = weights
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Shuffle for `epoch`, and skip its first `start` samples."""
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.size, True, generator=generator)
        return iter(distributed.shard(order, pad=True)[self.start :].tolist())

    def __len__(self) -> int:
        # Nothing is left after a stop on an epoch's last batch: `start` is then past the end.
        return max(-(-self.size // distributed.world_size()) - self.start, 0)


{% if augmented %}
class EpochIndices(EpochSampler):
    """The EpochSampler's order, each index paired with its epoch, so that a training set can
    draw each sample's random augmentation from (seed, epoch, index): the same augmentation with
    any number of workers, and after a resume, as in an uninterrupted run."""

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in super().__iter__())


{% endif %}
{% if seeded_per_sample %}
@contextmanager
def augmentation_rng(seed: int, epoch: int, index: int) -> Iterator[None]:
    """Inside: torch's global generator seeded from (seed, epoch, index); after: as before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(mixed_seed(seed, epoch, index))
        yield


{% endif %}
def data_folder(cfg: Config) -> Path:
    """`cfg.data_dir`, which must exist: a missing folder is a mistake, never created silently."""
    folder = Path(cfg.data_dir)
    if not folder.is_dir():
        raise ConfigError(
            f"data_dir {cfg.data_dir!r} is not a folder (looked for {folder.resolve()}). Run from "
            "the project folder, or point data_dir= at an existing folder."
        )
    return folder


def check_output_folders(cfg: Config) -> None:
    """The folders a run writes to must be folders, or creatable as ones: refused before
    anything is written when a file stands where one of them (or a folder above it) would be."""
    for key in ("checkpoint_dir", "log_dir", "plot_dir"):
        folder = Path(getattr(cfg, key), cfg.experiment).absolute()
        existing = next(path for path in (folder, *folder.parents) if path.exists())
        if not existing.is_dir():
            raise ConfigError(
                f"{key} {getattr(cfg, key)!r} cannot hold the run's files: {existing} is a file, "
                f"not a folder. Point {key}= at a folder, or move the file."
            )


def cached(path: Path, generate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The tensors saved at `path`, or `generate()`'s, saved there for the next run."""
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception as error:  # a damaged cache is rebuilt, never trusted
            warnings.warn(f"regenerating the damaged data cache {path}: {error}", stacklevel=2)
    data = generate()
    atomic_save(data, path)
    return data


{% if cookiecutter.dataset not in ("mnist", "cifar10") %}
def split_indices(size: int, cfg: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train, val and test indices of `size` samples in contiguous ranges: test is the last
    test_fraction, val the val_fraction before it, or with folds=k the fold's k-th of the rest."""
    n_test = int(size * cfg.test_fraction)
    rest = size - n_test
    if cfg.folds > 1:
        start, stop = fold_range(rest, cfg)
    else:
        start, stop = rest - int(size * cfg.val_fraction), rest
    if min(rest - (stop - start), stop - start, n_test) < 1:
        raise ConfigError(
            f"{size} samples leave an empty split with {split_settings(cfg)}; use more samples "
            "or other settings."
        )
    indices = torch.arange(size)
    train = torch.cat([indices[:start], indices[stop:rest]])
    return train, indices[start:stop], indices[rest:]


{% endif %}
def fold_range(size: int, cfg: Config) -> tuple[int, int]:
    """Where the validation part of fold `cfg.fold` (fold 1 when 0) lies among `size` samples."""
    fold = max(cfg.fold, 1) - 1
    return size * fold // cfg.folds, size * (fold + 1) // cfg.folds


def split_settings(cfg: Config) -> str:
    """The settings that size the splits, for error messages."""
    val = f"folds={cfg.folds}" if cfg.folds > 1 else f"val_fraction={cfg.val_fraction}"
{% if cookiecutter.dataset in ("mnist", "cifar10") %}
    return val
{% else %}
    return f"{val} and test_fraction={cfg.test_fraction}"
{% endif %}


def make_loaders(
    train: Dataset, val: Dataset, test: Dataset, cfg: Config
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The three loaders of a task; only the training one shuffles."""
    return (
        make_loader(train, cfg, EpochSampler(len(train), cfg.seed)),
        make_loader(val, cfg),
        make_loader(test, cfg),
    )


def make_loader(dataset: Dataset, cfg: Config, sampler: EpochSampler | None = None) -> DataLoader:
    """A DataLoader with the project's settings: in order, or in the order of `sampler`. Under
    torchrun, an in-order loader gives each process its own share of the samples."""
    cores = os.cpu_count() or 1
    if cfg.num_workers > 4 * cores:  # checked here, not in config.py: it depends on the machine
        raise ConfigError(
            f"num_workers={cfg.num_workers} would start that many processes, each with its own "
            f"copy of torch, on a machine with {cores} cores. Use at most {4 * cores}; one or two "
            "a core is usually fastest."
        )
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=distributed.ShardSampler(len(dataset)) if sampler is None else sampler,
        num_workers=cfg.num_workers,
        pin_memory=resolve_device(cfg.device).type == "cuda",  # faster copies to the GPU
        persistent_workers=cfg.num_workers > 0,
        worker_init_fn=seed_worker,
        collate_fn=whole_batch if isinstance(dataset, TensorBatches) else None,
        # Worker seeds come from the loader's own generator, never from the global one that
        # dropout draws from, so (re)starting workers cannot change the model's randomness.
        generator=torch.Generator().manual_seed(cfg.seed),
    )


class TensorBatches:
    """For datasets held in memory as tensors, whose `__getitem__` also takes a tensor of
    indices: the DataLoader fetches each batch by one indexing operation and takes it as it is,
    instead of copying samples one by one and stacking them (several times faster on small
    models, where that collation would cost more than the step)."""

    def __getitems__(self, indices: list[int]) -> Any:
        return self[torch.tensor(indices)]


def whole_batch(batch: Any) -> Any:
    """The `collate_fn` of `TensorBatches` datasets: their batches come whole."""
    return batch


def resolve_device(name: str) -> torch.device:
    """The device to train on; asking for one that is not there is an error, never a fallback."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(
            f"device={name} was asked for, but this machine's PyTorch ({torch.__version__}) "
            f"cannot use it. Use device=auto or device=cpu, or run `python src/main.py --help` "
            "for the other choices."
        )
    return torch.device(name)


@dataclass(frozen=True)
class RunPaths:
    """Where one run writes: checkpoints, TensorBoard logs and plots, each in <experiment>/<run>."""

    checkpoints: Path
    logs: Path
    plots: Path

    @classmethod
    def for_run(cls, cfg: Config) -> RunPaths:
        """The folders of the run named by `cfg.experiment` and `cfg.run_name` (not created)."""
        parts = (cfg.experiment, cfg.run_name)
        return cls(
            checkpoints=Path(cfg.checkpoint_dir, *parts),
            logs=Path(cfg.log_dir, *parts),
            plots=Path(cfg.plot_dir, *parts),
        )

    def remove(self) -> None:
        """Delete everything the run wrote (for overwrite=true)."""
        for folder in (self.checkpoints, self.logs, self.plots):
            shutil.rmtree(folder, ignore_errors=True)


def new_run_name(cfg: Config) -> str:
    """A timestamp no earlier run of the experiment uses (with a suffix within the same second)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name, suffix = stamp, 1
    while (
        Path(cfg.checkpoint_dir, cfg.experiment, name).exists()
        or Path(cfg.log_dir, cfg.experiment, name).exists()
    ):
        suffix += 1
        name = f"{stamp}-{suffix}"
    return distributed.broadcast(name)  # under torchrun, every process takes rank 0's


def saved_data_index(cfg: Config) -> dict[str, Any] | None:
    """The `data.json` of the run `cfg` names, if it has one (see `data_index`)."""
    path = RunPaths.for_run(cfg).checkpoints / "data.json"
    if not cfg.run_name or not path.is_file():
        return None
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as error:
        index = error
    if not isinstance(index, dict):
        raise CheckpointError(
            f"the run's data index {path} is damaged ({index}). Delete it: --resume and --test "
            "put it back from the checkpoint, which holds a copy."
        )
    return index


def restore_data_index(cfg: Config, checkpoint: dict[str, Any]) -> None:
    """Put back the run's data.json from the copy inside `checkpoint` when the run folder lacks
    it (a checkpoint moved to another machine), so the run's data are read as they were."""
    if checkpoint.get("data") is not None and cfg.run_name and saved_data_index(cfg) is None:
        save_data_index(cfg, checkpoint["data"])


def save_data_index(cfg: Config, index: dict[str, Any]) -> None:
    """Save `index` as the data.json beside the checkpoints of the run `cfg` names."""
    path = RunPaths.for_run(cfg).checkpoints / "data.json"
    atomic_save(index, path, write=lambda obj, file: file.write(json.dumps(obj).encode()))


def data_index(
    cfg: Config, scan: Callable[[], dict[str, Any]], check: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """What a run needs to read its data the same way again (its split, and whatever the data
    need besides): the run's saved `data.json`, once `check` has found the data still match it;
    for a new run, `scan()`, saved beside the run's checkpoints so --resume and --test reuse it."""
    saved = saved_data_index(cfg)
    if saved is not None:
        check(saved)
        return saved
    index = scan()
    # Every rank of torchrun finds the same index; rank 0 alone saves it, as the others could
    # still be writing it when rank 0 clears half-written files from the folder (CheckpointSaver).
    if cfg.run_name and distributed.is_main():
        save_data_index(cfg, index)
    return index


def atomic_save(
    obj: Any,
    path: Path,
    write: Callable[[Any, IO[bytes]], object] | None = None,
    previous: Path | None = None,
) -> None:
    """Write `obj` with `write` (default torch.save) so that `path` holds either the old or the
    new file. A failed write raises CheckpointWriteError, which names `previous` (default:
    `path`) as intact when it exists: the file that holds what was saved before.

    A crash in the middle of `torch.save(obj, path)` would leave a truncated file in place of the
    previous checkpoint; writing a temporary file in the same folder, syncing it to disk and
    renaming it over `path` is atomic on POSIX file systems.
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as tmp:
            (write or torch.save)(obj, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes files private; use the usual mode
        os.replace(tmp_name, path)
        _fsync_dir(path.parent)  # makes the rename itself survive a power cut
    except (OSError, RuntimeError) as error:  # torch.save reports a failed write as the latter
        previous = previous or path
        noun = "checkpoint" if previous.suffix == ".pt" else previous.name
        kept = f"The previous {noun} is intact ({previous}). " if previous.exists() else ""
        kept = kept or "Nothing was saved before it. "
        raise CheckpointWriteError(
            f"cannot write {path}: {getattr(error, 'strerror', None) or error}. {kept}Free some "
            "disk space or fix the folder's permissions, then run the same command again (with "
            "--resume auto to continue from what is saved)."
        ) from None
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def unused_path(path: Path) -> Path:
    """`path`, or where it exists already `name-2.ext`, `name-3.ext`, ...: the first free name.
    A command's output never replaces what an earlier command wrote."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def copy_from(source: Path, file: IO[bytes]) -> None:
    """For `atomic_save(source, target, write=copy_from)`: `target` becomes a copy of `source`
    that stands alone (never a link: a later write to one of them leaves the other as it was)."""
    with open(source, "rb") as original:
        shutil.copyfileobj(original, file, 1 << 20)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete half-written files that a killed save left behind; they are never resumed from."""
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read the umask is to set it
    os.umask(mask)
    return mask


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """Load a checkpoint of this project and check that it can be resumed from or tested."""
    checkpoint = load_file(path, device)
    problem = checkpoint_problem(checkpoint)
    if problem:
        raise CheckpointError(f"{path} is not a usable checkpoint of this project: {problem}.")
    made_by = checkpoint.get("project", PROJECT)
    if made_by != PROJECT:
        raise CheckpointError(
            f"{path} was trained by a {made_by.get('task')} project on {made_by.get('dataset')} "
            f"data, and this is a {PROJECT['task']} project on {PROJECT['dataset']} data: its "
            "model and settings do not apply here. Use it in the project that trained it."
        )
    return checkpoint


def checkpoint_config(checkpoint: dict[str, Any], path: Path) -> Config:
    """The config saved in a loaded `checkpoint` (read from `path`)."""
    return from_dict(checkpoint["config"], f"the checkpoint {path}")


TORCH_LOAD_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def load_file(path: Path, device: torch.device) -> Any:
    """Load a file written with torch.save as plain data; `weights_only=True` means it can never
    run code."""
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}. Pass the path of a checkpoint file: a last.pt or best.pt "
            "under models/checkpoints/<experiment>/<run>/ (python src/main.py --runs lists the "
            "runs; --resume also takes auto, the newest)."
        )
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # truncated zip, random bytes, a pickle of code, ...
        found = re.search(r"GLOBAL (\S+)", str(error))  # a class or function: code to run
        if isinstance(error, pickle.UnpicklingError) and found:
            raise CheckpointError(
                f"refused to load {path}: it holds Python objects that are not plain data "
                f"({found.group(1)}). Loading it could run code hidden in the file, so it was not "
                "loaded and nothing in it ran. Use a checkpoint written by this project."
            ) from None
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        # torch's advice around the cause (weights_only=False) is not for a damaged file
        cause = [line for line in lines if not line.startswith(TORCH_LOAD_ADVICE)]
        first_line = (cause or [type(error).__name__])[0][:200]
        raise CheckpointError(
            f"cannot read the checkpoint {path}: it is damaged or not a PyTorch file, so not a "
            f"usable checkpoint of this project ({first_line}). Use another checkpoint of the "
            "run, e.g. a step-*.pt beside it."
        ) from None


def checkpoint_problem(checkpoint: Any) -> str | None:
    """What is wrong with a loaded checkpoint, or None if it passes the checks."""
    if not isinstance(checkpoint, dict) or checkpoint.get("version") != CHECKPOINT_VERSION:
        return f"it is not a format-version-{CHECKPOINT_VERSION} checkpoint dictionary"
    missing = CHECKPOINT_KEYS - checkpoint.keys()
    if missing:
        return f"it lacks {', '.join(sorted(missing))}"
    kinds = {"config": dict, "model": dict, "task": dict, "rng": dict, "history": list}
    kinds |= {"epoch": int, "global_step": int, "batches_done": int, "processes": int}
    wrong = [
        key
        for key, kind in kinds.items()
        if not isinstance(checkpoint[key], kind)
        or isinstance(checkpoint[key], bool)
        or (kind is int and checkpoint[key] < (key == "processes"))  # counts: 0 or more
        or (kind is list and not all(isinstance(row, dict) for row in checkpoint[key]))
    ]
    if wrong:
        return f"its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not what it saves"
    # (The task's own state may hold plain data too: a second optimizer's, say.)
    if not all(isinstance(value, torch.Tensor) for value in checkpoint["model"].values()):
        return "some of its weights are not tensors"
    bad = [name for name, value in checkpoint["model"].items() if not torch.isfinite(value).all()]
    if bad:
        return f"non-finite weights in {', '.join(bad[:5])}"
    return None


def load_weights(task: nn.Module, checkpoint: dict[str, Any], path: Path) -> None:
    """Load the model weights of a checkpoint, and what else the task holds, strictly, naming
    what does not match."""
    model = {f"model.{key}": value for key, value in checkpoint["model"].items()}
    try:
        task.load_state_dict({**model, **checkpoint["task"]})
    except RuntimeError as error:
        details = str(error).replace("\n\t", " ").replace("\n", " ")
        raise CheckpointError(
            f"the weights in {path} do not fit the model built from this config: {details} "
            "Use the config the checkpoint was trained with (--resume and --test read it from the "
            "checkpoint; do not override model settings such as width)."
        ) from None


def find_resumable_checkpoint(cfg: Config, device: torch.device) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of the experiment that loads and passes its checks (--resume auto).

    Damaged ones are skipped with a warning, so a crash during a save costs at most the state
    saved since the checkpoint before it.
    """
    root = Path(cfg.checkpoint_dir, cfg.experiment)
    candidates = [*root.glob("*/last.pt"), *root.glob("*/step-*.pt")]
    if not candidates:
        raise CheckpointError(
            f"--resume auto found nothing to resume: no checkpoint under {root}. Start a new run "
            "without --resume, or name the experiment with experiment=<name>."
        )
    # Newest first; last.pt before the step file it duplicates. Only the newest run's: when
    # none of them loads, continuing an older run instead would be a surprise.
    candidates.sort(key=lambda p: (p.stat().st_mtime_ns, p.name == "last.pt"), reverse=True)
    run = candidates[0].parent
    for path in (path for path in candidates if path.parent == run):
        try:
            return path, load_checkpoint(path, device)
        except CheckpointError as error:
            warnings.warn(f"skipping {path}: {error}", stacklevel=2)
    raise CheckpointError(
        f"--resume auto: none of the checkpoints of the newest run, {run}, can be loaded (each "
        "is named above). Resume another run by naming its checkpoint, --resume "
        f"{root}/<run>/last.pt (python src/main.py --runs lists the runs), or start a new run."
    )


def rng_state() -> dict[str, Any]:
    """The state of every random generator, as data that `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class GracefulStop:
    """While active, SIGINT (Ctrl-C) and SIGTERM (preemption) ask training to stop at the next
    step boundary instead of killing it; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> GracefulStop:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: the user does not want to wait
        if not self.requested:
            name = signal.Signals(signum).name
            print(
                f"\n{name} received: stopping after the current step and saving a checkpoint"
                + (" (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""),
                file=sys.stderr,
                flush=True,
            )
        self.signum = signum


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Images rescaled to 0-1 as a whole, as TensorBoard expects."""
    return (images - images.amin()) / (images.amax() - images.amin()).clamp_min(1e-8)


def titled_grid(images: torch.Tensor, titles: list[str], colors: list[str] | None = None) -> Figure:
    """Up to 16 images in rows of 8, each under its title, as one matplotlib figure.

    One picture with text on it, not an axes per image: drawn every epoch, that is five times
    cheaper.
    """
    from matplotlib.figure import Figure  # imported here: slow to load, and only pictures need it

    count = min(len(images), 16)
    columns = min(count, 8)
    rows = -(-count // columns)
    channels, height, width = images.shape[1:]
    gap_x, gap_y = width // 16 + 1, height // 2  # room for two lines of title above each image
    canvas = torch.ones(channels, rows * (height + gap_y), columns * (width + gap_x))
    for i in range(count):
        top, left = (i // columns) * (height + gap_y) + gap_y, (i % columns) * (width + gap_x)
        canvas[:, top : top + height, left : left + width] = to_unit_range(images[i].float())
    fig = Figure(figsize=(1.6 * columns, 1.9 * rows))
    ax = fig.add_axes((0, 0, 1, 1))
    picture = canvas.permute(1, 2, 0).squeeze(-1).numpy()
    ax.imshow(picture, cmap="gray", vmin=0, vmax=1, aspect="auto")
    ax.axis("off")
    for i, title in enumerate(titles[:count]):
        x = (i % columns) * (width + gap_x) + width / 2
        y = (i // columns) * (height + gap_y) + gap_y - 1
        color = colors[i] if colors else "black"
        ax.text(x, y, title, ha="center", va="bottom", fontsize=8, color=color)
    return fig
