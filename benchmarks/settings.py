"""The image classifier's training settings on small data it never saw: `python
benchmarks/settings.py [PER_CLASS]` trains the image-folder classifier with its defaults and with
each setting of seed 003's list (focal loss, label smoothing, group norm or none, MixUp, CutMix,
an EMA of the weights) on the 12x12 glyphs of its own tests (10 classes, four of them
mirror-image pairs) at PER_CLASS images a class (default 120, as the glyph test), over SEEDS
seeds (of the data and of the run), and prints the README's rows: each setting's test accuracy
against the defaults' on the same data."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from run import cookiecutter, machine

SETTINGS = [
    [],
    ["loss=focal"],
    ["label_smoothing=0.1"],
    ["norm=group"],
    ["norm=none"],
    ["mix=mixup"],
    ["mix=cutmix"],
    ["ema=0.99"],
]
SEEDS = (0, 1, 2)

WRITE_GLYPHS = """
import shutil, sys
from pathlib import Path
sys.path[:0] = ["src", "tests"]
from test_task import write_glyphs
shutil.rmtree("data", ignore_errors=True)
write_glyphs(Path("data"), per_class={per_class}, seed={seed})
"""


def test_accuracy(project: Path, overrides: list[str], run_name: str) -> float:
    """Train a run of `overrides` and return its best.pt's test accuracy."""
    main = [sys.executable, "src/main.py"]
    train = [*main, "skip_bad_files=true", f"run_name={run_name}", *overrides]
    subprocess.run(train, cwd=project, check=True, capture_output=True, text=True)
    best = f"models/checkpoints/default/{run_name}/best.pt"
    tested = subprocess.run([*main, "--test", best], cwd=project, check=True, capture_output=True)
    return float(re.search(rb"test_acc (\d\.\d+)", tested.stdout).group(1))


def main(per_class: int) -> None:
    scores: dict[str, list[float]] = {" ".join(s) or "defaults": [] for s in SETTINGS}
    with tempfile.TemporaryDirectory() as folder:
        cookiecutter(Path(folder), ["task=image_classification", "dataset=image_folder"], False)
        project = Path(folder) / "image_classification"
        for seed in SEEDS:
            script = WRITE_GLYPHS.format(per_class=per_class, seed=seed)
            subprocess.run([sys.executable, "-c", script], cwd=project, check=True)
            for number, setting in enumerate(SETTINGS):
                name = " ".join(setting) or "defaults"
                scores[name].append(
                    test_accuracy(project, [*setting, f"seed={seed}"], f"r{seed}-{number}")
                )
                print(f"seed {seed}: {name}: {scores[name][-1]:.3f}", flush=True)
    default = scores["defaults"]
    print(f"\n{machine()}; {per_class} glyphs a class, seeds {', '.join(map(str, SEEDS))}")
    for name, values in scores.items():
        mean = statistics.mean(values)
        gain = mean - statistics.mean(default)
        shown = ", ".join(f"{v:.3f}" for v in values)
        print(f"| `{name}` | {mean:.3f} ({shown}) | {gain:+.3f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 120)
