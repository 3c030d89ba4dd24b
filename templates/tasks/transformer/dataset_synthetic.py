"""The data: synthetic variable-length sequences whose class only attention can find.

Each sequence is a query token followed by `min_length` to `max_length` symbols and padding:

    tokens  [ @3, B, F, A, D, E, <pad>, <pad> ]    label: A, the symbol at position 3

The query `@k` points at a position, and the class is the symbol found there. A model that sees the
symbols as a bag (an average of embeddings, say) cannot solve it: it has to match the query with
the position it names and read what stands there, which is what attention does. The sequences are
generated once per setting and cached in `data_dir`. To use your own data, load your token ids as
an int64 tensor `(N, length)` padded with `PAD`, and the labels as `(N,)`, in `make_dataloaders`
instead; the model reads its prediction from the first position, so put a query or a [CLS] token
there.
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import DataLoader, Dataset

from config import Config, ConfigError
from utils import TensorBatches, cached, data_folder, make_loaders, split_indices

PAD = 0  # the padding token; symbols are 1..num_symbols, then the queries @1..@max_length


def vocabulary_size(cfg: Config) -> int:
    """How many distinct token ids the sequences use, padding included."""
    return 1 + cfg.num_symbols + cfg.max_length


{% include "tasks/transformer/sequence_dataset.py" %}


def class_names(cfg: Config) -> list[str]:
    """The classes: the symbols, named A, B, C, ..."""
    return [symbol_name(i) for i in range(cfg.num_symbols)]


def model_inputs(cfg: Config) -> dict[str, int]:
    """What the task (`build_task` in model.py) needs to know about the data."""
    return {
        "vocabulary_size": vocabulary_size(cfg),
        "num_classes": len(class_names(cfg)),
        "padding": PAD,
    }


def symbol_name(index: int) -> str:
    """A, B, C, ... for the symbols (then s26, s27, ... past Z)."""
    return chr(ord("A") + index) if index < 26 else f"s{index}"


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles."""
    if cfg.min_length > cfg.max_length:
        raise ConfigError(
            f"min_length ({cfg.min_length}) is above max_length ({cfg.max_length}); "
            "lower min_length or raise max_length."
        )
    name = (
        f"pointer_n{cfg.num_samples}_symbols{cfg.num_symbols}_len{cfg.min_length}-"
        f"{cfg.max_length}_seed{cfg.seed}.pt"
    )
    data = cached(
        data_folder(cfg) / name,
        lambda: generate_sequences(
            cfg.num_samples, cfg.num_symbols, cfg.min_length, cfg.max_length, cfg.seed
        ),
    )
    # The samples are independent draws, so contiguous ranges are random splits.
    tokens, labels = data["tokens"], data["labels"]
    train, val, test = (
        SequenceDataset(tokens[part], labels[part], class_names(cfg), row_keys(tokens[part]))
        for part in split_indices(len(labels), cfg)
    )
    return make_loaders(train, val, test, cfg)


def row_keys(tokens: torch.Tensor) -> list[bytes]:
    """A fingerprint of each sequence."""
    return [hashlib.blake2b(row.numpy().tobytes(), digest_size=16).digest() for row in tokens]


def generate_sequences(
    num_samples: int, num_symbols: int, min_length: int, max_length: int, seed: int
) -> dict[str, torch.Tensor]:
    """Draw `num_samples` distinct pointer sequences (see the module docstring) and their labels.

    Duplicates are dropped, so no sequence can land in two splits; drawing continues until there
    are enough distinct ones. Labels take turns through the symbols, so the classes are balanced.
    """
    generator = torch.Generator().manual_seed(seed)
    distinct = sum(length * num_symbols**length for length in range(min_length, max_length + 1))
    if distinct < 2 * num_samples:
        raise ConfigError(
            f"only {distinct} distinct sequences exist with num_symbols={num_symbols} and lengths "
            f"{min_length}-{max_length}, too few for num_samples={num_samples} without repeats. "
            "Raise max_length or num_symbols, or lower num_samples."
        )
    tokens, labels, seen = [], [], set()
    while len(labels) < num_samples:
        lengths = torch.randint(min_length, max_length + 1, (num_samples,), generator=generator)
        symbols = torch.randint(num_symbols, (num_samples, max_length), generator=generator)
        targets = (torch.rand(num_samples, generator=generator) * lengths).long()  # 0..length-1
        # Classes take turns, so every contiguous split is balanced to within one per class.
        symbols[torch.arange(num_samples), targets] = torch.arange(num_samples) % num_symbols
        batch = torch.full((num_samples, 1 + max_length), PAD)
        batch[:, 0] = 1 + num_symbols + targets  # the query @k names position k (1-based)
        batch[:, 1:] = torch.where(torch.arange(max_length) < lengths[:, None], symbols + 1, PAD)
        for row, label in zip(batch, symbols[torch.arange(num_samples), targets], strict=True):
            key = row.numpy().tobytes()
            if key not in seen and len(labels) < num_samples:
                seen.add(key)
                tokens.append(row)
                labels.append(label)
    return {"tokens": torch.stack(tokens), "labels": torch.stack(labels)}
