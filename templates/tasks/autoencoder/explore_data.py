# %% [markdown]
# ### The labelled images of the classifier stages
#
# Pretraining (stage=all or pretrain) reads the images above without their labels; the finetune
# and scratch stages read labelled ones, from here on.

# %%
from config import apply_overrides

cfg = apply_overrides(cfg, ["stage=scratch"])
train_loader, val_loader, test_loader = make_dataloaders(cfg)
print(f"{len(train_loader.dataset)} labelled training images ({cfg.labeled_fraction=})")

{% include "notebook/class_samples.py" %}
