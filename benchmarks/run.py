"""The benchmark of cookiecutter-dl-workflow: `make bench` (or `python benchmarks/run.py`).

It generates projects with cookiecutter and measures, in one run:

- the time from `cookiecutter --no-input` to a verified project (the post-generation hook runs
  the new project's one-batch overfit check);
- the Trainer's time per training step against a bare PyTorch loop (zero_grad, forward, loss,
  backward, step) on the same model, initial weights and batches, for a tiny MLP (the regression
  project with model=mlp, where per-step overhead dominates) and for the default CNN (the image
  classification project); against the same bare loop over a per-sample DataLoader; and against
  PyTorch Lightning's Trainer when it is installed (see benchmarks/steps.py).

Both Trainers log every `log_every` steps (the project's default) with their progress bars on;
gradient clipping and the lr schedule are off, because the bare loop does neither. The table is
printed and written to benchmarks/RESULTS.md with the machine it ran on.
"""

from __future__ import annotations

import json
import os
import platform
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
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} "
        "threads), no GPU used"
    )


def main() -> int:
    rows, verdicts = [], []
    with tempfile.TemporaryDirectory() as folder:
        generation = statistics.median(
            cookiecutter(Path(folder, f"gen{i}"), [], hooks=True) for i in range(3)
        )
        verdicts.append(
            f"generation + verification {generation:.2f} s (target < {GENERATION_TARGET:g} s): "
            + ("met" if generation < GENERATION_TARGET else "NOT met")
        )
        for name, (answers, overrides, target) in WORKLOADS.items():
            out = Path(folder, name.replace(" ", "-"))
            cookiecutter(out, answers, hooks=False)
            project = next(out.iterdir())
            times = step_times(project, overrides)
            ratio = times["trainer"] / times["bare"]
            lightning = times.get("lightning")
            rows.append(
                f"| {name} | {times['bare'] * 1e3:.3f} | {times['trainer'] * 1e3:.3f} | "
                f"**{ratio:.3f}** | {times['naive'] * 1e3:.3f} | "
                f"{times['trainer'] / times['naive']:.3f} | "
                + (f"{lightning / times['bare']:.3f} |" if lightning else "not installed |")
            )
            beats = lightning is None or ratio < lightning / times["bare"]
            verdicts.append(
                f"{name}: Trainer/bare {ratio:.3f} (target <= {target:g}): "
                + ("met" if ratio <= target else "NOT met")
                + (
                    ""
                    if lightning is None
                    else f"; below Lightning's {lightning / times['bare']:.3f}: "
                    + ("yes" if beats else "NO")
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
    report = (
        f"measured {date.today()} on {machine()}\n\n{table}\n\n"
        + "\n".join(f"- {line}" for line in verdicts)
        + "\n"
    )
    print(report)
    text = RESULTS.read_text() if RESULTS.exists() else ""
    marker = "<!-- latest run -->"
    head = text.split(marker)[0] if marker in text else "# Benchmark results\n\n"
    RESULTS.write_text(f"{head}{marker}\n## Latest run (`make bench`)\n\n{report}")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
