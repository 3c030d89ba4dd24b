# %% [markdown]
# # Explore {{ cookiecutter.project_name }}
#
# A scratch pad for looking, not for training: the data as the model gets it, then the newest
# trained run's predictions beside their targets, and its curves. Nothing in `src/` imports this
# notebook; move what proves useful into `src/`. Train once first (`python src/main.py`), then
# run every cell from the top.

# %%
import os
import sys
from pathlib import Path

# The project's paths (data/, models/, results/) are relative to its folder, one level up.
ROOT = Path.cwd().parent if Path.cwd().name == "sandbox" else Path.cwd()
os.chdir(ROOT)
sys.path.insert(0, str(ROOT / "src"))

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from config import Config
from dataset import make_dataloaders, model_inputs
from model import build_task
from report import prediction_pictures
from run_table import read_metrics_csv
from tracking import curves_figure
from utils import (
    RunPaths,
    checkpoint_config,
    load_checkpoint,
    load_weights,
    restore_data_index,
)

# %% [markdown]
# ## The data
#
# `Config()` is `src/config.py` as it stands; pass changes as in
# `apply_overrides(Config(), ["key=value"])`.

# %%
cfg = Config()
train_loader, val_loader, test_loader = make_dataloaders(cfg)
for split, loader in (("train", train_loader), ("val", val_loader), ("test", test_loader)):
    print(f"{split:>5}: {len(loader.dataset)} samples, {len(loader)} batches of {cfg.batch_size}")
inputs, targets = next(iter(val_loader))
print(f"a batch: inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)}")

{% include "tasks/" ~ cookiecutter.task ~ "/explore_data.py" %}

# %% [markdown]
# ## The newest trained run
#
# Its best checkpoint, rebuilt with the run's own config (not today's `src/config.py`), and its
# data read as the run read them.

# %%
found = sorted(Path(cfg.checkpoint_dir).glob("*/*/best.pt"), key=lambda p: p.stat().st_mtime)
if not found:
    raise RuntimeError("no trained run yet: train one with `python src/main.py`, then rerun.")
best = found[-1]
checkpoint = load_checkpoint(best, torch.device("cpu"))
run_cfg = checkpoint_config(checkpoint, best)
restore_data_index(run_cfg, checkpoint)
_, run_val_loader, _ = make_dataloaders(run_cfg)
task = build_task(run_cfg, **model_inputs(run_cfg))
load_weights(task, checkpoint, best)
model = task.eval().evaluated()  # the model, or the average of it that the task evaluates
print(f"{best}: run {run_cfg.experiment}/{run_cfg.run_name}, epoch {checkpoint['epoch']}")

# %% [markdown]
# ## Predictions beside targets, on validation samples

# %%
inputs, targets = next(iter(run_val_loader))
for title, picture in prediction_pictures(model, inputs, targets, run_cfg).items():
    if isinstance(picture, torch.Tensor):  # a batch of images, each row one sample
        rows = torch.cat(list(picture[:8]), dim=1).permute(1, 2, 0).squeeze(-1)
        fig, ax = plt.subplots(figsize=(9, 1.2 * len(picture[:8])))
        ax.imshow(rows.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title)
        ax.axis("off")
        plt.show()
    else:
        display(picture)
{% include "tasks/" ~ cookiecutter.task ~ "/explore_extra.py" ignore missing %}

# %% [markdown]
# ## The run's curves, epoch by epoch

# %%
display(curves_figure(read_metrics_csv(RunPaths.for_run(run_cfg).logs / "metrics.csv")))
