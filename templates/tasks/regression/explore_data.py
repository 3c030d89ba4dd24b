# %% [markdown]
# ### The target's distribution, and the target against each of the first features

# %%
features, values = inputs, targets.flatten()
shown = min(features.shape[1], 3)
fig, axes = plt.subplots(1, shown + 1, figsize=(4 * (shown + 1), 3.2))
axes[0].hist(values.numpy(), bins=20)
axes[0].set_title("target (one validation batch)")
for column, ax in enumerate(axes[1:]):
    ax.scatter(features[:, column].numpy(), values.numpy(), s=8)
    ax.set_xlabel(f"feature {column}")
    ax.set_ylabel("target")
plt.show()
