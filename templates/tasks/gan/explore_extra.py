
# %% [markdown]
# ## Samples of the generator beside real images

# %%
with torch.inference_mode():
    fakes = model.sample(8).float()
pair = torch.cat([torch.cat(list(inputs[:8]), dim=2), torch.cat(list(fakes), dim=2)], dim=1)
plt.figure(figsize=(8, 2.2))
plt.imshow(((pair + 1) / 2).clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
plt.title("top: real, bottom: generated")
plt.axis("off")
plt.show()
