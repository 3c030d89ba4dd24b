"""What a run leaves behind while it trains: its log (`RunLog`: the progress bar, TensorBoard,
metrics.csv, curves.png and one summary line per epoch) and its checkpoint files
(`Checkpoints`). The Trainer calls each at a few named moments; under torchrun, rank 0 alone
writes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import secrets
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from numbers import Number
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams
from tqdm import tqdm

import distributed
from config import NOT_HYPERPARAMETERS, Config, ConfigError, to_dict
from utils import (
    CheckpointWriteError,
    RunPaths,
    atomic_save,
    copy_from,
    remove_stale_temporaries,
    to_unit_range,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from train import EpochTotals

# The task's pictures of its predictions on validation samples, {tag: picture} (report.py).
Pictures = Callable[[nn.Module, torch.Tensor, torch.Tensor, Config], dict[str, Any]]
HISTOGRAM_BINS = 64  # even bins per weight or gradient histogram


class RunLog:
    """Everything a run shows of itself while it trains.

    `progress` wraps the training batches in a progress bar and times the waits for data,
    `step` logs every `log_every` optimizer steps, `gradients` the gradients when asked,
    `epoch` everything at the end of an epoch, and `finish` the hyperparameters with the best
    scores. Without a run folder (--overfit-batch, --find-lr) it shows the progress bar only.
    Drawing (curves.png, the prediction pictures) is held to a small share of the run's time
    (`Throttle`); the latest drawing is always made at the end.
    """

    def __init__(
        self, cfg: Config, run: RunPaths | None = None, pictures: Pictures | None = None
    ) -> None:
        self.cfg = cfg
        self.run = run if distributed.is_main() else None  # under torchrun, rank 0 writes
        self.pictures = pictures
        self.writer: SummaryWriter | None = None
        self.trackers: list[WandbTracker | MlflowTracker] = []  # those `tracker` adds
        self.preview: tuple[torch.Tensor, torch.Tensor] | None = None  # validation samples
        self.bar: tqdm | None = None
        self.waited = self.worked = 0.0  # seconds of this epoch: waiting for data, stepping
        self.workers = 0  # DataLoader worker processes of the epoch's loader
        self.since = (time.perf_counter(), 0)  # the last step log: when, samples seen by then
        self.grad_norm: torch.Tensor | None = None
        self.data_warned = False
        self.unwritable: set[str] = set()  # files that could not be written, warned about once
        self.csv_columns: list[str] | None = None  # metrics.csv's, once written whole
        self.draw_curves, self.draw_pictures = Throttle(), Throttle()

    def open(self, model: nn.Module, val_loader: Iterable, global_step: int, fresh: bool) -> None:
        """Start (or continue, after `global_step` steps) the run's TensorBoard log."""
        if self.run is None:
            return
        # Events a crashed run logged after its last checkpoint (at global_step) are purged, so
        # a resumed run's curves have no duplicated or out-of-order steps.
        self.writer = SummaryWriter(
            self.run.logs, purge_step=global_step + 1 if global_step else None
        )
        # Validation samples, whose predictions are drawn every epoch: iterating the training
        # loader here could draw random augmentations and make this run differ from a resumed one.
        inputs, targets = next(iter(val_loader))
        self.preview = inputs[:64], targets[:64]
        is_image = inputs.ndim == 4 and inputs.shape[1] in (1, 3)  # (batch, channels, h, w)
        if fresh and is_image:
            self.writer.add_images("inputs/val", to_unit_range(inputs[:64].float()), 0)
        if fresh:
            self.log_graph(model, inputs[:2])
        self.trackers = open_trackers(self.cfg, self.run)

    def close(self) -> None:
        """The end of the run, or of this part of it (a stop, an error): curves.png shows every
        epoch done."""
        self.draw_curves.flush()
        if self.writer is not None:
            self.writer.close()
        for tracker in self.trackers:
            tracker.close()

    def flush(self) -> None:
        """Write out what is logged so far: a run resumed from the next checkpoint finds it."""
        if self.writer is not None:
            self.writer.flush()

    def progress(self, loader: Iterable, epoch: int, first: int, total: int) -> Iterator[Any]:
        """The batches of training epoch `epoch` (from batch `first` of `total`) under a
        progress bar, timing how long each one kept the training waiting."""
        self.waited = self.worked = 0.0
        self.workers = getattr(loader, "num_workers", 0)
        self.since = (time.perf_counter(), first * self.cfg.batch_size)  # samples counted so far
        self.bar = tqdm(
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            total=total,
            initial=first,
            leave=False,
            dynamic_ncols=True,
            disable=None if distributed.is_main() else True,
        )
        with self.bar:
            batches = iter(loader)
            while True:
                asked = time.perf_counter()
                batch = next(batches, None)
                if batch is None:
                    return
                got = time.perf_counter()
                self.waited += got - asked
                yield batch
                self.worked += time.perf_counter() - got
                self.bar.update()

    def inspects(self, step: int) -> bool:
        """Whether optimizer step `step` is logged with its gradients (norm, histograms)."""
        if self.writer is None:
            return False
        every = self.cfg.log_hist_every
        return step % self.cfg.log_every == 0 or (every > 0 and step % every == 0)

    def gradients(self, model: nn.Module, step: int, norm: torch.Tensor) -> None:
        """Keep the gradient norm for the step log; every `log_hist_every` steps, per parameter,
        histograms of its weights and gradients and the ratio of mean |gradient| to mean
        |weight|, whose size says whether the lr suits that layer (~1e-3 per step is healthy)."""
        self.grad_norm = norm
        every = self.cfg.log_hist_every
        if not every or step % every:
            return
        named = [
            (name, p.detach().float(), p.grad.float())
            for name, p in model.named_parameters()
            if p.grad is not None
        ]
        means = torch.stack([t.abs().mean() for _, *pair in named for t in pair]).tolist()  # 1 sync
        pairs = zip(means[::2], means[1::2], strict=True)
        for (name, weights, grads), (weight, grad) in zip(named, pairs, strict=True):
            # Even bins: TensorBoard's default, about 1,500 of them, takes 4 times as long to write.
            self.writer.add_histogram(f"weights/{name}", weights, step, bins=HISTOGRAM_BINS)
            self.writer.add_histogram(f"gradients/{name}", grads, step, bins=HISTOGRAM_BINS)
            self.writer.add_scalar(f"grad_to_weight/{name}", grad / max(weight, 1e-12), step)

    def step(self, step: int, lr: float, totals: EpochTotals) -> None:
        """On a logging step (every `log_every` optimizer steps): the bar's figures and the
        step's scalars, from the epoch's running `totals`, in one host-device sync."""
        if self.bar is None:
            return
        recent = torch.stack(tuple(totals.recent))
        values = [recent[-1], totals.sums["loss"] / totals.samples, recent.mean()]
        if self.grad_norm is not None:
            values.append(self.grad_norm)
        current, running, last_50, *grad_norm = torch.stack(values).tolist()  # one sync
        self.bar.set_postfix(
            loss=f"{current:.4f}", lr=f"{lr:.2e}", mean=f"{running:.4f}", last_50=f"{last_50:.4f}"
        )
        if self.writer is None:
            return
        now, since, seen = time.perf_counter(), *self.since
        self.since = (now, totals.samples)
        scalars = {"train/loss_step": current, "train/lr": lr}
        scalars["train/samples_per_s"] = (totals.samples - seen) / (now - since)
        if grad_norm:
            scalars["train/grad_norm"] = grad_norm[0]
        self.scalars(scalars, step)

    def epoch(
        self, model: nn.Module, history: list[dict[str, float]], step: int, improved: bool
    ) -> None:
        """The end of an epoch (the last row of `history`): TensorBoard scalars and pictures,
        metrics.csv, curves.png, the summary line, and a hint if data loading held it up."""
        row = history[-1]
        share = self.waited / max(self.waited + self.worked, 1e-9)
        if self.writer is not None:
            scalars = {
                f"{name}/{split}": value
                for key, value in row.items()
                for split, _, name in [key.partition("_")]
                if split in ("train", "val")
            }
            scalars |= {"epoch": row["epoch"], "time/data_wait_s": self.waited}
            scalars |= {"time/compute_s": self.worked, "time/data_share": share}
            self.scalars(scalars, step)
            every = self.cfg.log_images_every
            if every and row["epoch"] % every == 0:
                self.draw_pictures(partial(self.log_pictures, model, step))
            self.writer.flush()
            self.write("metrics.csv", self.save_metrics, history)
            path = self.run.plots / "curves.png"
            self.draw_curves(partial(self.write, "curves.png", save_curves, history, path))
        tqdm.write(summary_line(row, self.cfg.epochs, share) + (" *" if improved else ""))
        if share > 0.3 and self.waited > 1 and not self.data_warned:
            self.data_warned = True
            warnings.warn(
                data_wait_hint(self.workers, self.waited, self.waited + self.worked), stacklevel=2
            )

    def scalars(self, values: dict[str, float], step: int) -> None:
        """`values` at optimizer step `step`, in TensorBoard and the other trackers."""
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        for tracker in self.trackers:
            tracker.scalars(values, step)

    def write(self, what: str, save: Callable[..., object], *args: Any) -> None:
        """`save(*args)`; a file system that refuses it (read-only, full) costs a warning, once
        per file, not the run: training goes on, and its checkpoints are written apart."""
        try:
            save(*args)
        except (OSError, CheckpointWriteError) as error:
            if what not in self.unwritable:
                self.unwritable.add(what)
                warnings.warn(
                    f"could not write the run's {what}: {error}. Training goes on without it; "
                    "fix the folder (permissions, free space) and it is written again at the "
                    "next epoch.",
                    stacklevel=3,
                )

    def save_metrics(self, history: list[dict[str, float]]) -> None:
        """metrics.csv: written whole at the first epoch of a session (a resumed run's file
        may hold rows past its checkpoint) or when the columns change; else the new row is
        appended, so an epoch's cost does not grow with the epochs before it."""
        path = self.run.logs / "metrics.csv"
        written, self.csv_columns = self.csv_columns, None  # rewritten after a failed write
        columns = list(history[-1])
        if columns != written:
            save_metrics_csv(history, path)
        else:
            with path.open("a", newline="") as file:
                csv.DictWriter(file, columns, lineterminator="\n").writerow(history[-1])
        self.csv_columns = columns

    def finish(self, best: dict[str, float], step: int) -> None:
        """The end of a run: the latest pictures, and the run's hyperparameters with its best
        epoch's validation scores, for the HParams tab where runs are compared side by side."""
        if self.writer is None:
            return
        self.draw_pictures.flush()
        values = {
            key: value
            for key, value in to_dict(self.cfg).items()
            if key not in NOT_HYPERPARAMETERS and isinstance(value, Number | str)
        }
        scores = {f"hparams/{k}": v for k, v in best.items() if k.startswith("val_")}
        for summary in hparams(values, scores):
            self.writer.file_writer.add_summary(summary)
        for tag, value in scores.items():
            self.writer.add_scalar(tag, value, step)
        for tracker in self.trackers:
            tracker.finish(best)

    def log_graph(self, model: nn.Module, inputs: torch.Tensor) -> None:
        """The model's graph, for TensorBoard's Graphs tab (traced once, on a fresh run)."""
        device = next(model.parameters()).device
        try:
            with warnings.catch_warnings(), own_randomness(device):
                warnings.simplefilter("ignore")  # tracing's deprecation and tracer warnings
                self.writer.add_graph(model, inputs.to(device))
        except Exception as error:  # tracing cannot follow some models; the graph is optional
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            tqdm.write(f"note: no model graph in TensorBoard (tracing failed: {first_line})")

    def log_pictures(self, model: nn.Module, step: int) -> None:
        """The task's pictures of the model's predictions on the preview samples."""
        if self.pictures is None or self.preview is None:
            return
        device = next(model.parameters()).device
        inputs, targets = self.preview
        training = model.training
        model.eval()
        with own_randomness(device):
            pictures = self.pictures(model, inputs.to(device), targets, self.cfg)
        model.train(training)
        for tracker in self.trackers:  # before TensorBoard, which closes the figures
            tracker.pictures(pictures, step)
        for tag, picture in pictures.items():
            if isinstance(picture, torch.Tensor):
                self.writer.add_images(tag, picture, step)
            else:
                self.writer.add_figure(tag, picture, step)  # closes the figure


def open_trackers(cfg: Config, run: RunPaths) -> list[WandbTracker | MlflowTracker]:
    """The trackers `cfg.tracker` adds to TensorBoard, each continuing its own run of this run
    when it resumes (their ids are kept in the run's trackers.json)."""
    names = cfg.tracker.split(",")
    ids_path = run.logs / "trackers.json"
    ids = json.loads(ids_path.read_text()) if ids_path.exists() else {}
    try:
        trackers = [kind(cfg, ids) for kind in (WandbTracker, MlflowTracker) if kind.name in names]
    except Exception as error:  # not logged in, a server that does not answer
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ConfigError(
            f"tracker={cfg.tracker}: a tracker could not start ({reason}). For W&B, log in with "
            "`wandb login` or set WANDB_MODE=offline; for MLflow, check MLFLOW_TRACKING_URI, or "
            "unset it for results/mlflow.db. Or leave tracker at tensorboard."
        ) from None
    ids_path.write_text(json.dumps(ids) + "\n")
    record = run.logs / "run.json"  # this session's code version (git commit, changes)
    code = json.loads(record.read_text())["sessions"][-1]["code"] if record.exists() else {}
    for tracker in trackers:
        tracker.code(code)
    return trackers


def hyperparameters(cfg: Config) -> dict[str, Any]:
    """The settings that change what a run learns (not where it writes)."""
    return {k: v for k, v in to_dict(cfg).items() if k not in NOT_HYPERPARAMETERS}


def picture_array(picture: Any) -> Any:
    """A task's picture as an image array (H, W, 3) for W&B and MLflow: a batch of images
    (B, C, H, W) tiled into one, or a matplotlib figure drawn."""
    if isinstance(picture, torch.Tensor):
        images = picture.detach().float().cpu().clamp(0, 1)
        count, channels, height, width = images.shape
        columns = min(8, count)
        rows = -(-count // columns)
        tiles = torch.ones(rows * columns, channels, height, width)  # white where none is left
        tiles[:count] = images
        grid = tiles.view(rows, columns, channels, height, width).permute(0, 3, 1, 4, 2)
        grid = grid.reshape(rows * height, columns * width, channels).expand(-1, -1, 3)
        return (grid * 255).round().to(torch.uint8).numpy()
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    canvas = FigureCanvasAgg(picture)
    canvas.draw()
    return numpy.asarray(canvas.buffer_rgba())[..., :3]


class WandbTracker:
    """Weights & Biases: the run `<experiment>/<run_name>` of the project, its config, every
    scalar, the pictures and the best scores. With WANDB_MODE=offline it is written under
    results/wandb/ and uploaded later with `wandb sync`."""

    name = "wandb"

    def __init__(self, cfg: Config, ids: dict[str, str]) -> None:
        import wandb  # noqa: PLC0415 (only tracker=wandb needs it)

        self.wandb = wandb
        self.run = wandb.init(
            project="{{ cookiecutter.project_slug }}",
            group=cfg.experiment,
            name=f"{cfg.experiment}/{cfg.run_name}",
            id=ids.setdefault(self.name, secrets.token_hex(6)),
            resume="allow",  # a resumed run continues the same W&B run
            dir=Path(cfg.log_dir).parent,
            config=hyperparameters(cfg),
            settings=wandb.Settings(console="off", silent=True),
        )

    def code(self, code: dict[str, Any]) -> None:
        self.run.summary["code"] = code

    def scalars(self, values: dict[str, float], step: int) -> None:
        if step >= self.run.step:  # W&B keeps steps in order: a resumed run's repeats wait
            self.run.log(values, step=step)

    def pictures(self, pictures: dict[str, Any], step: int) -> None:
        images = {tag: self.wandb.Image(picture_array(p)) for tag, p in pictures.items()}
        self.scalars(images, step)

    def finish(self, best: dict[str, float]) -> None:
        self.run.summary.update({f"best/{key}": value for key, value in best.items()})

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    """MLflow: the run `run_name` in the experiment of its name, with its settings as params,
    every scalar, the pictures and the best scores, in MLFLOW_TRACKING_URI or else the SQLite
    store results/mlflow.db (`mlflow ui --backend-store-uri sqlite:///results/mlflow.db`)."""

    name = "mlflow"

    def __init__(self, cfg: Config, ids: dict[str, str]) -> None:
        import mlflow  # noqa: PLC0415 (only tracker=mlflow needs it)

        for logger in ("mlflow", "alembic"):  # its database set-up talks at INFO
            logging.getLogger(logger).setLevel(logging.WARNING)
        store = Path(cfg.log_dir).parent.resolve() / "mlflow.db"
        uri = os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
        self.client = client = mlflow.MlflowClient(uri)
        self.entities = mlflow.entities
        if self.name in ids:  # resumed: the same MLflow run goes on
            self.run_id = ids[self.name]
            client.update_run(self.run_id, status="RUNNING")
        else:
            found = client.get_experiment_by_name(cfg.experiment)
            experiment = found.experiment_id if found else client.create_experiment(cfg.experiment)
            self.run_id = ids[self.name] = client.create_run(
                experiment, run_name=cfg.run_name
            ).info.run_id
            params = [self.entities.Param(k, str(v)) for k, v in hyperparameters(cfg).items()]
            client.log_batch(self.run_id, params=params)
        self.status = "KILLED"  # until the run finishes

    def code(self, code: dict[str, Any]) -> None:
        self.client.set_tag(self.run_id, "code", json.dumps(code))

    def scalars(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [self.entities.Metric(k, float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def pictures(self, pictures: dict[str, Any], step: int) -> None:
        for tag, picture in pictures.items():
            self.client.log_image(self.run_id, picture_array(picture), key=tag, step=step)

    def finish(self, best: dict[str, float]) -> None:
        self.scalars({f"best/{key}": value for key, value in best.items()}, 0)
        self.status = "FINISHED"

    def close(self) -> None:
        self.client.set_terminated(self.run_id, status=self.status)


class Throttle:
    """Runs optional work, such as a plot, at most so often that it takes about `share` of the
    wall time: after work that took t seconds, the next is due t / share seconds later, and the
    first after `wait` seconds (a short run draws once, at its end). Work that comes before
    then is held, and the latest held is run by `flush`."""

    def __init__(self, share: float = 0.05, wait: float = 30.0) -> None:
        self.share = share
        self.due = time.perf_counter() + wait  # from then on, work runs at once
        self.held: Callable[[], object] | None = None

    def __call__(self, work: Callable[[], object]) -> None:
        """Run `work` now if it is due, else hold it (instead of any work held before)."""
        self.held = work
        if time.perf_counter() >= self.due:
            self.flush()

    def flush(self) -> None:
        """Run the work held, if any."""
        work, self.held = self.held, None
        if work is not None:
            started = time.perf_counter()
            work()
            ended = time.perf_counter()
            self.due = ended + (ended - started) / self.share


def own_randomness(device: torch.device) -> contextlib.AbstractContextManager:
    """Inside: random draws from a copy of the generators' states, so that drawing pictures or
    tracing a model that draws noise (a GAN's fakes) never changes the run."""
    devices = [] if device.type == "cpu" else [device]
    return torch.random.fork_rng(devices, device_type=device.type)


def summary_line(row: dict[str, float], epochs: int, data_share: float) -> str:
    """`epoch 3/20 | train_loss 0.412 | val_loss 0.398 | val_acc 0.913 | lr 3.0e-04 | 2.1s
    (data 4%)`: the training values that have no validation twin (the named values only a
    training step returns) follow train_loss; the last figure is the share of the training time
    spent waiting for batches."""
    only_train = [k for k in row if k.startswith("train_") and f"val_{k[6:]}" not in row]
    keys = ["train_loss", *only_train, *(k for k in row if k.startswith("val_"))]
    parts = [f"epoch {row['epoch']}/{epochs}"]
    parts += [f"{key} {row[key]:.4f}" for key in dict.fromkeys(keys)]
    parts += [f"lr {row['lr']:.1e}", f"{row['seconds']:.1f}s (data {data_share:.0%})"]
    return " | ".join(parts)


def data_wait_hint(workers: int, waiting: float, total: float) -> str:
    """Why a training epoch spent `waiting` of its `total` seconds waiting for batches loaded by
    `workers` processes, and what to change."""
    cores = os.cpu_count() or 1
    if workers == 0:
        fix = (
            f"load batches in parallel worker processes: num_workers={min(8, cores)} (this "
            f"machine has {cores} cores)"
        )
    elif workers < cores:
        fix = f"more worker processes (num_workers={min(2 * workers, cores)})"
    else:
        fix = "cheaper per-sample work: every worker is busy"
    return (
        f"the last training epoch waited for data {waiting:.1f} s of {total:.1f} s "
        f"({waiting / total:.0%}): the model sat idle meanwhile. Try {fix}; work that repeats "
        "every epoch (decoding, resizing, tokenising the same samples) can also be cached: "
        "store the samples once as the model sees them, e.g. as a tensor file."
    )


class Checkpoints:
    """The checkpoint files of a run, as timm's CheckpointSaver keeps them: each save writes
    step-<step>.pt and copies it to last.pt; best.pt is a copy of the best epoch's. Copies, not
    links: every file stands alone, and editing, replacing or damaging one changes no other. The
    newest `keep` step files stay; older ones are deleted only once the new one is in place, and
    never the one the run resumed from. Every file is written atomically (see `atomic_save`), so
    a crash at any moment leaves the previous checkpoint loadable."""

    def __init__(self, folder: Path, keep: int, resumed_from: Path | None = None) -> None:
        self.folder = folder
        self.keep = keep
        self.resumed_from = resumed_from  # never pruned
        self.saved: tuple[tuple[int, ...], Path] | None = None  # the last save: where, what
        if distributed.is_main() and folder.is_dir():
            remove_stale_temporaries(folder)

    def save(self, state: dict[str, Any], position: tuple[int, ...]) -> Path:
        """Save `state`, taken at `position` (epoch, step, batch), unless it is saved already
        (a stop during validation comes after the epoch's save)."""
        if self.saved is not None and self.saved[0] == position:
            return self.saved[1]
        path = self.folder / f"step-{state['global_step']:08d}.pt"
        if distributed.is_main():  # the processes' states are identical: rank 0 writes it
            atomic_save(state, path, previous=self.folder / "last.pt")
            atomic_save(path, self.folder / "last.pt", write=copy_from, previous=path)
            for old in sorted(self.folder.glob("step-*.pt"))[: -self.keep]:
                if self.resumed_from is None or not old.samefile(self.resumed_from):
                    old.unlink()
        distributed.barrier()  # no process goes on (or exits on a stop) before it is written
        self.saved = (position, path)
        return path

    def mark_best(self, path: Path) -> None:
        """Make best.pt the checkpoint saved as `path`."""
        if distributed.is_main():
            atomic_save(path, self.folder / "best.pt", write=copy_from, previous=path)


def save_metrics_csv(history: list[dict[str, float]], path: Path) -> None:
    """The history, one row per epoch, as CSV (atomically: a reader never sees half a file)."""
    columns = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_save(buffer.getvalue(), path, write=lambda obj, file: file.write(obj.encode()))


def save_curves(history: list[dict[str, float]], path: Path) -> None:
    """Plot the loss and every other metric per epoch, train beside val, into one PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    curves_figure(history).savefig(path, dpi=100)


def curves_figure(history: list[dict[str, float]]) -> Figure:
    """The loss and every other value per epoch, train beside val, one panel each."""
    from matplotlib.figure import Figure  # imported here: slow to load; drawn without pyplot

    names = list(dict.fromkeys(key.partition("_")[2] for key in history[0] if "_" in key))
    names = [name for name in names if f"train_{name}" in history[0] or f"val_{name}" in history[0]]
    epochs = [row["epoch"] for row in history]
    width = 5 * len(names)
    fig = Figure(figsize=(width, 3.8))
    # Fixed margins (inches over the figure's size): it is redrawn every epoch, and tight_layout
    # would cost more than the drawing.
    fig.subplots_adjust(0.6 / width, 0.5 / 3.8, 1 - 0.15 / width, 1 - 0.35 / 3.8, wspace=0.25)
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for split in ("train", "val"):
            if f"{split}_{name}" in history[0]:
                ax.plot(
                    epochs, [row[f"{split}_{name}"] for row in history], marker=".", label=split
                )
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def save_lr_plot(lrs: list[float], losses: list[float], suggestion: float, path: Path) -> None:
    """Plot the smoothed loss against the learning rate (log scale), marking the suggestion."""
    from matplotlib.figure import Figure  # imported here: slow to load; drawn without pyplot

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr={suggestion:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
