"""The benchmark of cookiecutter-dl-workflow: `make bench` (or `python benchmarks/run.py`).

It generates projects with cookiecutter and measures, in one run:

- the time from `cookiecutter --no-input` to a verified project (the post-generation hook runs
  the new project's one-batch overfit check);
- the Trainer's time per training step against a bare PyTorch loop (zero_grad, forward, loss,
  backward, step) on the same model, initial weights and batches, for a tiny MLP (the regression
  project with model=mlp, where per-step overhead dominates) and for the default CNN (the image
  classification project); against the same bare loop over a per-sample DataLoader; and against
  PyTorch Lightning's Trainer when it is installed (see benchmarks/steps.py). Both Trainers log
  every `log_every` steps (the project's default) with their progress bars on; gradient clipping
  and the lr schedule are off, because the bare loop does neither;
- the image-folder classifier's data path, on the example images and on 20,000 generated 32x32
  PNGs: its training loader's images per second (decoded once, gathered and augmented by batch)
  against a bare loop that indexes, scales and normalises the same decoded tensors (the limit),
  and against reading the files for every batch with one worker per core (data_cache=off); the
  largest share of an epoch that `python src/main.py` spends waiting for data; and its whole run
  against the bare script;
- the whole run: the wall time of `python src/main.py` for every task's default configuration
  and for a long run on little data (the regression CSV for 200 epochs), against a bare script
  that trains and validates the same model on the same data for the same epochs
  (benchmarks/bare_run.py), both as processes of their own; the time from the start of
  `python src/main.py` to its first training step; and the time `--help` takes.

On a machine with a GPU, the step benchmark runs with amp=off, bf16 and fp16, each with
compile=false and true, against a bare loop with the same settings. The tables are printed and
written to benchmarks/RESULTS.md with the machine they ran on.

    python benchmarks/run.py [generation] [steps] [images] [whole]  # these parts (default: all)

BENCH_ROUNDS (default 7) sets the step benchmark's rounds, BENCH_WHOLE_ROUNDS (default 2 on a
CPU, 1 on a GPU) the whole runs' (the fastest of them counts).
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

TEMPLATE = Path(__file__).resolve().parent.parent
RESULTS = TEMPLATE / "benchmarks" / "RESULTS.md"
SAME_WORK = ["scheduler=none", "grad_clip=0"]
WORKLOADS = {  # name: (cookiecutter answers, config overrides, Trainer/bare target)
    "tiny MLP": (["task=regression"], ["model=mlp", "num_samples=60000", *SAME_WORK], 1.05),
    "default CNN": (["task=image_classification"], SAME_WORK, 1.02),
}
GENERATION_TARGET = 5.0  # seconds on a 2-core CPU
# name: (cookiecutter answers, config overrides); early stopping off, so both train every epoch.
# The autoencoder's default trains three runs in turn; the bare script trains one, its first.
WHOLE_RUNS = {
    **{task: ([f"task={task}"], []) for task in ("image_classification", "regression")},
    "autoencoder (pretrain)": (["task=autoencoder"], ["stage=pretrain"]),
    **{task: ([f"task={task}"], []) for task in ("segmentation", "gan", "transformer")},
    "regression csv, 200 epochs": (["task=regression", "dataset=csv"], ["epochs=200"]),
}
WHOLE_RUN_TARGET = 1.10
HELP_TARGET = 0.5  # seconds
GPU_SETTINGS = [[f"amp={amp}", f"compile={c}"] for amp in ("off", "bf16", "fp16") for c in (0, 1)]


def cookiecutter(folder: Path, answers: list[str], hooks: bool) -> float:
    """Generate a project into `folder`; the seconds it took."""
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(folder)]
    command += ["--accept-hooks", "yes" if hooks else "no", str(TEMPLATE), *answers]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def step_times(project: Path, overrides: list[str]) -> dict[str, float]:
    """Seconds per step of each contender (benchmarks/steps.py in a process of its own)."""
    command = [sys.executable, str(TEMPLATE / "benchmarks" / "steps.py"), str(project), *overrides]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds_per_step"]


def seconds(command: list[str], project: Path) -> float:
    """The wall time of `command` as a process of its own in `project`."""
    started = time.perf_counter()
    subprocess.run(command, cwd=project, check=True, capture_output=True)
    return time.perf_counter() - started


FIRST_STEP = """
import os, sys, time
sys.path.insert(0, "src")
import train
def first_step(*args, **kwargs):
    print(time.time() - float(os.environ["BENCH_STARTED"]), flush=True)
    os._exit(0)
train.Trainer.train_batch = first_step
sys.argv = ["src/main.py", *sys.argv[1:]]
import main
main.main()
"""


def whole_run(project: Path, overrides: list[str], rounds: int) -> dict[str, float]:
    """The wall times of the project's run and of the bare script (the fastest of `rounds`,
    taking turns), the time to the project's first training step and to `--help`."""
    overrides = [*overrides, "early_stopping_patience=0"]
    bare = [sys.executable, str(TEMPLATE / "benchmarks" / "bare_run.py"), str(project)]
    seconds([*bare, *overrides, "epochs=1"], project)  # makes the built-in data, warms caches
    times: dict[str, list[float]] = {"run": [], "bare": []}
    for round_ in range(rounds):
        run = [sys.executable, "src/main.py", *overrides, f"run_name=bench-{round_}"]
        times["run"].append(seconds(run, project))
        times["bare"].append(seconds([*bare, *overrides], project))
    started = time.time()
    first = subprocess.run(
        [sys.executable, "-c", FIRST_STEP, *overrides, "run_name=first-step"],
        cwd=project,
        env={**os.environ, "BENCH_STARTED": str(started)},
        check=True,
        capture_output=True,
        text=True,
    )
    helps = [seconds([sys.executable, "src/main.py", "--help"], project) for _ in range(5)]
    return {
        **{name: min(values) for name, values in times.items()},
        "first_step": float(first.stdout.strip().splitlines()[-1]),
        "help": statistics.median(helps),
    }


def whole_run_section(folder: Path, rounds: int) -> str:
    """The whole-run table and its verdicts."""
    rows, verdicts = [], []
    for name, (answers, overrides) in WHOLE_RUNS.items():
        out = Path(folder, "whole-" + "".join(c if c.isalnum() else "-" for c in name))
        cookiecutter(out, answers, hooks=False)
        project = next(out.iterdir())
        if "dataset=csv" in answers:
            subprocess.run([sys.executable, "src/dataset.py"], cwd=project, check=True)
        times = whole_run(project, overrides, rounds)
        ratio = times["run"] / times["bare"]
        rows.append(
            f"| {name} | {times['bare']:.1f} | {times['run']:.1f} | **{ratio:.2f}** | "
            f"{times['first_step']:.1f} | {times['help']:.2f} |"
        )
        verdicts.append(
            f"{name}: run/bare {ratio:.2f} (target <= {WHOLE_RUN_TARGET:g}): "
            + ("met" if ratio <= WHOLE_RUN_TARGET else "NOT met")
            + f"; --help {times['help']:.2f} s (target < {HELP_TARGET:g} s): "
            + ("met" if times["help"] < HELP_TARGET else "NOT met")
        )
    table = "\n".join(
        [
            "| whole run | bare script s | `python src/main.py` s | run/bare | s to first step "
            "| `--help` s |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    return f"{table}\n\n" + "\n".join(f"- {line}" for line in verdicts)


LOADER = """
import atexit, json, sys, time, torch
sys.path.insert(0, "src")
from config import Config, apply_overrides
from dataset import make_dataloaders
from utils import end_stray_workers
atexit.register(end_stray_workers)  # as main.py does: the workers ignore SIGTERM
loader = make_dataloaders(apply_overrides(Config(), ["run_name=loader", *sys.argv[1:]]))[0]
dataset = loader.dataset
def timed(epoch_of):
    best = float("inf")
    for epoch in range(3):
        started = time.perf_counter()
        epoch_of(epoch)
        best = min(best, time.perf_counter() - started)
    return len(dataset) / best
def project(epoch):
    loader.sampler.set_epoch(epoch)
    for images, labels in loader:
        pass
def bare(epoch):  # the limit: the same decoded tensors, indexed, scaled and normalised
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(epoch))
    for indices in order.split(loader.batch_size):
        images = (dataset.images[indices].float().div(255) - dataset.mean) / dataset.std
        labels = dataset.labels[indices]
result = {"project": timed(project)}
if isinstance(dataset.images, torch.Tensor):
    result["bare"] = timed(bare)
print(json.dumps(result))
"""
IMAGE_SETS = {"example images (450, 40-80 px)": 0, "20,000 generated 32x32 PNGs": 20_000}
IMAGE_EPOCHS = {0: 12, 20_000: 3}  # whole runs: epochs, early stopping off
DATA_SHARE_TARGET = 0.10


def write_pngs(folder: Path, count: int) -> None:
    """`count` 32x32 RGB PNGs in 10 class folders: a shape of the class's kind, colour and place
    drawn at random, on a noisy background (files of a few kB, as small photos are)."""
    from PIL import Image, ImageDraw

    generator = torch.Generator().manual_seed(0)
    for number in range(count):
        label = number % 10
        pixels = torch.randint(0, 256, (32, 32, 3), generator=generator, dtype=torch.uint8)
        image = Image.fromarray((pixels // 4).numpy())
        x, y, size = torch.randint(0, 16, (3,), generator=generator).tolist()
        colour = tuple(torch.randint(64, 256, (3,), generator=generator).tolist())
        box = [x, y, x + 8 + size, y + 8 + size]
        draw = ImageDraw.Draw(image)
        (draw.ellipse if label % 2 else draw.rectangle)(box, fill=colour, width=label // 2 + 1)
        (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
        image.save(folder / f"class{label}" / f"{number:05d}.png")


def images_section(folder: Path) -> str:
    """The image-folder classifier: its training loader against the bare limit, images per
    second, and its whole run (with the share of each epoch spent waiting for data) against the
    bare script, on the example images and on 20,000 small PNGs."""
    rows, verdicts = [], []
    for name, count in IMAGE_SETS.items():
        out = Path(folder, f"images-{count}")
        cookiecutter(out, ["task=image_classification", "dataset=image_folder"], hooks=False)
        project = next(out.iterdir())
        if count:
            write_pngs(project / "data", count)
        else:
            subprocess.run([sys.executable, "src/dataset.py"], cwd=project, check=True)
        load = [sys.executable, "-c", LOADER]
        speeds = {
            setting: json.loads(
                subprocess.run(
                    [*load, *overrides], cwd=project, check=True, capture_output=True, text=True
                ).stdout.splitlines()[-1]
            )
            for setting, overrides in (
                ("memory", []),
                ("files", ["data_cache=off", f"num_workers={os.cpu_count()}"]),
            )
        }
        epochs = [f"epochs={IMAGE_EPOCHS[count]}", "early_stopping_patience=0", "lr=3e-3"]
        run = subprocess.run(
            [sys.executable, "src/main.py", *epochs, "run_name=whole"],
            cwd=project,
            check=True,
            capture_output=True,
            text=True,
        )
        shares = [float(share) / 100 for share in re.findall(r"\(data (\d+)%\)", run.stdout)]
        times = whole_run(project, epochs, 1)
        ratio = times["run"] / times["bare"]
        loader_ratio = speeds["memory"]["project"] / speeds["memory"]["bare"]
        rows.append(
            f"| {name} | {speeds['memory']['bare']:,.0f} | {speeds['memory']['project']:,.0f} "
            f"| **{loader_ratio:.2f}** | {speeds['files']['project']:,.0f} | {max(shares):.0%} "
            f"| {times['bare']:.1f} | {times['run']:.1f} | **{ratio:.2f}** |"
        )
        verdicts.append(
            f"{name}: data waiting at most {max(shares):.0%} of an epoch (target <= "
            f"{DATA_SHARE_TARGET:.0%}): "
            + ("met" if max(shares) <= DATA_SHARE_TARGET else "NOT met")
            + f"; whole run/bare {ratio:.2f} (target <= {WHOLE_RUN_TARGET:g}): "
            + ("met" if ratio <= WHOLE_RUN_TARGET else "NOT met")
        )
    table = "\n".join(
        [
            "| image folder | bare loop img/s | training loader img/s | loader/bare | files "
            f"read per batch ({os.cpu_count()} workers) img/s | most data waiting per epoch "
            "| bare script s | `python src/main.py` s | run/bare |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    return f"{table}\n\n" + "\n".join(f"- {line}" for line in verdicts)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    gpu = f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU used"
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads), {gpu}"
    )


def generation_section(folder: Path) -> str:
    generation = statistics.median(
        cookiecutter(Path(folder, f"gen{i}"), [], hooks=True) for i in range(3)
    )
    return (
        f"- generation + verification {generation:.2f} s (target < {GENERATION_TARGET:g} s): "
        + ("met" if generation < GENERATION_TARGET else "NOT met")
    )


def steps_section(folder: Path, settings: list[list[str]]) -> str:
    """The per-step table, one row per workload and setting, and its verdicts."""
    rows, verdicts = [], []
    for name, (answers, overrides, target) in WORKLOADS.items():
        out = Path(folder, name.replace(" ", "-"))
        cookiecutter(out, answers, hooks=False)
        project = next(out.iterdir())
        for setting in settings:
            label = " ".join([name, *setting])
            times = step_times(project, [*overrides, *setting])
            ratio = times["trainer"] / times["bare"]
            lightning = times.get("lightning")
            rows.append(
                f"| {label} | {times['bare'] * 1e3:.3f} | {times['trainer'] * 1e3:.3f} | "
                f"**{ratio:.3f}** | {times['naive'] * 1e3:.3f} | "
                f"{times['trainer'] / times['naive']:.3f} | "
                + (f"{lightning / times['bare']:.3f} |" if lightning else "not run |")
            )
            if torch.cuda.is_available():  # the bare loop's throughput, 0.98 or more
                target = 1 / 0.98
            verdicts.append(
                f"{label}: Trainer/bare {ratio:.3f} (target <= {target:.3g}): "
                + ("met" if ratio <= target else "NOT met")
                + (
                    ""
                    if lightning is None
                    else f"; below Lightning's {lightning / times['bare']:.3f}: "
                    + ("yes" if ratio < lightning / times["bare"] else "NO")
                )
            )
    table = "\n".join(
        [
            "| workload | bare ms/step | Trainer ms/step | Trainer/bare | naive bare ms/step "
            "| Trainer/naive | Lightning/bare |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    return f"{table}\n\n" + "\n".join(f"- {line}" for line in verdicts)


CPU_RUN, GPU_RUN = "<!-- latest run -->", "<!-- latest GPU run -->"


def section(text: str, marker: str) -> str:
    """The part of RESULTS.md that follows `marker`, up to the next such part."""
    if marker not in text:
        return ""
    return text.split(marker, 1)[1].split("<!-- latest", 1)[0].lstrip("\n")


def main() -> int:
    parts = sys.argv[1:] or ["generation", "steps", "images", "whole"]
    gpu = torch.cuda.is_available()
    sections = []
    with tempfile.TemporaryDirectory() as folder:
        if "generation" in parts:
            sections.append(generation_section(Path(folder)))
        if "steps" in parts:
            sections.append(steps_section(Path(folder), GPU_SETTINGS if gpu else [[]]))
        if "images" in parts:
            sections.append(images_section(Path(folder)))
        if "whole" in parts:
            rounds = int(os.environ.get("BENCH_WHOLE_ROUNDS", 1 if gpu else 2))
            sections.append(whole_run_section(Path(folder), rounds))
    report = f"measured {date.today()} on {machine()}\n\n" + "\n\n".join(sections) + "\n"
    print(report)
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    latest = {marker: section(text, marker) for marker in (CPU_RUN, GPU_RUN)}
    title = "Latest GPU run" if gpu else "Latest run"
    latest[GPU_RUN if gpu else CPU_RUN] = f"## {title} (`make bench`)\n\n{report}"
    head = text.split("<!-- latest")[0]
    RESULTS.write_text(head + "".join(f"{m}\n{body}" for m, body in latest.items() if body))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
