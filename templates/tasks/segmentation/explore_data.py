# %% [markdown]
# ### Images with their masks, and each class's share of the pixels (validation split)

# %%
from dataset import class_names
from utils import to_unit_range

names = class_names(cfg)
fig, axes = plt.subplots(2, 6, figsize=(12, 4.4))
for column in range(6):
    image = to_unit_range(inputs[column]).permute(1, 2, 0).squeeze(-1).numpy()
    axes[0, column].imshow(image, cmap="gray")
    axes[1, column].imshow(targets[column].numpy(), cmap="viridis", vmin=0, vmax=len(names) - 1)
for ax in axes.flat:
    ax.axis("off")
axes[0, 0].set_title("image", loc="left")
axes[1, 0].set_title("mask", loc="left")
plt.show()

pixels = torch.zeros(len(names), dtype=torch.long)
for _, masks in val_loader:
    pixels += torch.bincount(masks.flatten(), minlength=len(names))
for name, share in zip(names, (pixels / pixels.sum()).tolist(), strict=True):
    print(f"{name:>12}: {share:6.1%} of the pixels")
