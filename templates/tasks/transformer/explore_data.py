# %% [markdown]
# ### Class counts (training split), and a few sequences as the model gets them

# %%
from dataset import PAD, class_names

names = class_names(cfg)
counts = torch.zeros(len(names), dtype=torch.long)
for _, labels in train_loader:
    counts += torch.bincount(labels, minlength=len(names))
fig, ax = plt.subplots(figsize=(1.5 + 0.7 * len(names), 3))
ax.bar(names, counts.tolist())
ax.set_ylabel("training sequences")
plt.show()

for tokens, label in zip(inputs[:5], targets[:5].tolist(), strict=True):
    kept = tokens[tokens != PAD].tolist()
    print(f"{names[label]:>10}: {len(kept)} tokens {kept[:16]}{' ...' if len(kept) > 16 else ''}")
