# %% [markdown]
# ### Samples of each class (validation split), and the class counts (training split)

# %%
from dataset import class_names
from utils import to_unit_range

names = class_names(cfg)
shown = {name: [] for name in names}
for images, labels in val_loader:
    for image, label in zip(images, labels.tolist(), strict=True):
        if len(shown[names[label]]) < 8:
            shown[names[label]].append(image)
    if all(len(samples) == 8 for samples in shown.values()):
        break
fig, axes = plt.subplots(len(names), 8, figsize=(8, 1.1 * len(names)), squeeze=False)
for row, (name, samples) in zip(axes, shown.items(), strict=True):
    for ax, image in zip(row, samples, strict=False):
        ax.imshow(to_unit_range(image).permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
    for ax in row:
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(name, rotation=0, ha="right", va="center")
plt.show()

counts = torch.zeros(len(names), dtype=torch.long)
for _, labels in train_loader:
    counts += torch.bincount(labels[labels >= 0], minlength=len(names))  # -1: unlabelled
fig, ax = plt.subplots(figsize=(1.5 + 0.7 * len(names), 3))
ax.bar(names, counts.tolist())
ax.set_ylabel("training samples")
plt.show()
