# %% [markdown]
# ### Real images, as the discriminator sees them (scaled to [-1, 1])

# %%
from utils import to_unit_range

grid = torch.cat([torch.cat(list(inputs[row * 8 : row * 8 + 8]), dim=2) for row in range(4)], 1)
plt.figure(figsize=(8, 4))
plt.imshow(to_unit_range(grid).permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
plt.axis("off")
plt.show()
print(f"pixel values from {inputs.min():.2f} to {inputs.max():.2f}, mean {inputs.mean():.2f}")
