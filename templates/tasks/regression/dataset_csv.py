"""The data: your CSV file under `data_dir`, checked, split into train/val/test.

    data/data.csv    area_m2,rooms,age_years,distance_km,price_k
                     72.4,3,12,4.1,262.5
                     ...

The first row names the columns; every other row is one sample. `target` names the column to
predict (default: the last) and `features` the inputs (default: every other column). Every value
used must be a number: an empty cell, text, a row with too few or too many values or a column name
that is not in the header stops the run with the line numbers and what to do. The rows are
shuffled from `seed` before the split (a CSV is often sorted), and the split is saved as row
numbers in `data.json` beside the run's checkpoints, with a fingerprint of the file, so --resume
and --test use exactly the same rows, and a changed file is refused instead of silently split
differently. The model standardises the inputs and the target with the training split's
statistics, which it keeps as buffers in every checkpoint (see model.py), so columns of any scale
train alike. `python src/dataset.py` writes an example file, whose truth is in `write_example_csv`.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from config import Config, UserError
from utils import TensorBatches, data_folder, data_index, make_loaders, split_indices

SPLITS = ("train", "val", "test")
SHOWN = 5  # line numbers quoted in an error message, at most
LARGEST_FLOAT = torch.finfo(torch.float32).max  # what the model computes in


class DataError(UserError):
    """Data that cannot be used as they are: missing, empty, or not numbers."""


{% include "tasks/regression/regression_dataset.py" %}


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles."""
    table, index = read_table(cfg), load_index(cfg)
    inputs, targets = table[:, :-1], table[:, -1:]
    train, val, test = (
        RegressionDataset(inputs[rows], targets[rows])
        for rows in (torch.tensor(index["splits"][name]) for name in SPLITS)
    )
    return make_loaders(train, val, test, cfg)


def model_inputs(cfg: Config) -> dict[str, Any]:
    """What the task (`build_task` in model.py) needs to know about the data: the number of
    input columns and the training split's statistics, which standardise them."""
    return {"num_features": len(feature_names(cfg)), "statistics": training_statistics(cfg)}


def feature_names(cfg: Config) -> list[str]:
    """The input columns, in the order the model sees them."""
    return load_index(cfg)["features"]


def target_name(cfg: Config) -> str:
    """The column the model predicts."""
    return load_index(cfg)["target"]


def training_statistics(cfg: Config) -> dict[str, torch.Tensor]:
    """Mean and std of each input and of the target over the training split (a constant column
    gets std 1, so that standardising it cannot divide by zero). Summed in float64: in float32
    the mean of a column of large values (1e30) is not one of them, and its inputs explode."""
    rows = read_table(cfg)[torch.tensor(load_index(cfg)["splits"]["train"])].double()
    mean, std = rows.mean(dim=0).float(), rows.std(dim=0).float()
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return {"x_mean": mean[:-1], "x_std": std[:-1], "y_mean": mean[-1:], "y_std": std[-1:]}


def load_index(cfg: Config) -> dict[str, Any]:
    """The run's columns and split: saved in its data.json, or read and drawn for a new run."""
    return data_index(cfg, lambda: scan(cfg), lambda saved: check_unchanged(cfg, saved))


def scan(cfg: Config) -> dict[str, Any]:
    """Check the file, choose the columns and draw the split from `seed`."""
    target, features = chosen_columns(cfg)
    index = {"target": target, "features": features, "sha256": fingerprint(csv_path(cfg))}
    table = read_table(cfg, index)
    if len(table) > 1 and (table[:, -1] == table[0, -1]).all():
        raise DataError(
            f"the target column {target} of {csv_path(cfg)} holds one value, "
            f"{table[0, -1].item():g}, in every row: there is nothing to predict (and R² is "
            "undefined). Choose another column with target=, or check the file."
        )
    size = len(table)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(cfg.seed))
    splits = [order[part].sort().values.tolist() for part in split_indices(size, cfg)]
    print(
        f"data: {csv_path(cfg)}, {size} rows; predicting {target} from "
        f"{len(features)} column{'s' if len(features) > 1 else ''}: {', '.join(features)}"
    )
    return {**index, "splits": dict(zip(SPLITS, splits, strict=True))}


def chosen_columns(cfg: Config) -> tuple[str, list[str]]:
    """The target and feature columns that `target` and `features` choose from the header."""
    header, _ = read_rows(cfg)
    target = cfg.target or header[-1]
    features = [name.strip() for name in cfg.features.split(",")] if cfg.features else []
    features = features or [name for name in header if name != target]
    unknown = [name for name in [target, *features] if name not in header]
    if unknown:
        raise DataError(
            f"{csv_path(cfg)} has no column {', '.join(map(repr, unknown))}; its columns are "
            f"{', '.join(header)}. Set target= and features= to some of those."
        )
    if target in features:
        raise DataError(f"the target column {target!r} cannot also be a feature; drop it there.")
    return target, features


def check_unchanged(cfg: Config, saved: dict[str, Any]) -> None:
    """Stop when the CSV file is no longer the one this run split, or other columns are asked
    for than the run's model was built on."""
    check_same_file(cfg, saved)
    if chosen_columns(cfg) != (saved["target"], saved["features"]):
        raise DataError(
            f"this run predicts {saved['target']} from {', '.join(saved['features'])}; its model "
            "was built for those columns. Drop the target= and features= overrides, or start a "
            "new run to use other columns."
        )


def read_table(cfg: Config, index: dict[str, Any] | None = None) -> torch.Tensor:
    """The used columns as a float tensor (rows, features + target), every value checked."""
    index = index or load_index(cfg)
    header, rows = read_rows(cfg)
    advice = "Fill in or delete those rows, or leave the column out with features=... ."
    return numbers(csv_path(cfg), header, rows, [*index["features"], index["target"]], advice)


def numbers(
    path: Path, header: list[str], rows: list[tuple[int, list[str]]], names: list[str], advice: str
) -> torch.Tensor:
    """The columns `names` of `rows` as a float tensor (rows, names), or an error naming the
    lines with an empty, non-numeric or infinite value (and the first such value), and `advice`."""
    columns = [header.index(name) for name in names]
    values, bad = [], []
    for line, row in rows:
        parsed = [to_number(row[c]) for c in columns]
        if None in parsed:
            bad.append((line, names[parsed.index(None)], row[columns[parsed.index(None)]]))
        else:
            values.append(parsed)
    if bad:
        _, name, text = bad[0]
        raise DataError(
            f"{path}: {len(bad)} row{'s have' if len(bad) > 1 else ' has'} an empty, "
            f"non-numeric or infinite value in the columns used (or one beyond "
            f"±{LARGEST_FLOAT:.1e}, float32's largest), on line{'s' * (len(bad) > 1)} "
            f"{quote_lines([line for line, *_ in bad])}; the first is {text[:40]!r} in column "
            f"{name}. {advice}"
        )
    return torch.tensor(values, dtype=torch.float32)


def to_number(text: str) -> float | None:
    """The number in a cell, or None for an empty cell, text, a value beyond float32 (or NaN),
    and Python's digit separators ("1_000": no spreadsheet writes them)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if "_" not in text and abs(value) <= LARGEST_FLOAT else None


def prediction_inputs(cfg: Config, paths: list[Path]) -> tuple[list[str], torch.Tensor]:
    """The rows of the CSV files at `paths`, named file:line, and their feature columns (found
    by name, in any order; other columns are ignored) as the model's inputs."""
    features, names, inputs = load_index(cfg)["features"], [], []
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"{path} is not a file; give CSV files with the columns {', '.join(features)}."
            )
        header, rows = read_csv(path)
        missing = [name for name in features if name not in header]
        if missing:
            raise DataError(
                f"{path} has no column {', '.join(map(repr, missing))}; the model predicts from "
                f"{', '.join(features)}, so the file needs those columns (by name, in any order)."
            )
        inputs.append(numbers(path, header, rows, features, "Fill in or delete those rows."))
        names += [f"{path}:{line}" for line, _ in rows]
    return names, torch.cat(inputs)


{% include "shared/csv_file.py" %}


def write_example_csv(path: Path, rows: int = 1000, seed: int = 0) -> None:
    """Example house prices, in thousands: price_k = 2.5 area_m2 + 15 rooms - 0.8 age_years
    - 4 distance_km + 60, plus N(0, 20) noise. The columns differ in scale, as real ones do."""
    generator = torch.Generator().manual_seed(seed)
    area = 30 + 170 * torch.rand(rows, generator=generator)
    rooms = torch.randint(1, 7, (rows,), generator=generator).float()
    age = torch.randint(0, 81, (rows,), generator=generator).float()
    distance = 0.5 + 29.5 * torch.rand(rows, generator=generator)
    noise = 20 * torch.randn(rows, generator=generator)
    price = 2.5 * area + 15 * rooms - 0.8 * age - 4 * distance + 60 + noise
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["area_m2", "rooms", "age_years", "distance_km", "price_k"])
        for a, r, y, d, p in torch.stack([area, rooms, age, distance, price], dim=1).tolist():
            writer.writerow([f"{a:.1f}", f"{r:.0f}", f"{y:.0f}", f"{d:.2f}", f"{p:.1f}"])


if __name__ == "__main__":
    example = Path("data/data.csv")
    if example.exists():
        raise SystemExit(f"{example} exists; move it away first to write the example file.")
    write_example_csv(example)
    print(f"wrote {example}: 1000 example rows (see write_example_csv in src/dataset.py)")
