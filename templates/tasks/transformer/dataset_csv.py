"""The data: your CSV file of labelled texts under `data_dir`, tokenized and split into
train/val/test.

    data/data.csv    text,label
                     "The food was great, but the staff was not friendly.",positive
                     ...

The first row names the columns; `text_column` and `label_column` pick the two this project reads
(other columns are ignored). The classes are the distinct labels, sorted. `tokenize` lowercases a
text and cuts it into words and punctuation marks; a sequence is [CLS] and then the first
`max_length` tokens, padded with PAD, and the model reads its prediction at the [CLS] position.
The vocabulary is built from the training split alone (the words seen at least `min_count` times,
at most `max_vocabulary` of the most frequent), so val and test words the model never trained on
become <unk>, as new words will in use. A text that repeats an earlier one is dropped before the
split, since a copy in two splits would reward memorising. The rows are shuffled from `seed` before
the split (a CSV is often sorted), and the split (as row numbers), the classes and the vocabulary
are saved in `data.json` beside the run's checkpoints, with a fingerprint of the file: --resume,
--test and --predict read texts exactly as the model learned them, and a changed file is refused
instead of silently split differently. `python src/dataset.py` writes an example file (see
`write_example_csv`).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from config import Config, ConfigError, UserError
from utils import TensorBatches, data_folder, data_index, make_loaders, split_indices

SPLITS = ("train", "val", "test")
SHOWN = 5  # line numbers quoted in an error message, at most
SPECIAL = ("<pad>", "<unk>", "<cls>")  # token ids 0, 1, 2; the vocabulary's words follow
PAD, UNK, CLS = range(len(SPECIAL))
WORD = re.compile(r"\w+|[^\w\s]")


class DataError(UserError):
    """Data that cannot be used as they are: missing, empty, or unlabelled."""


{% include "tasks/transformer/sequence_dataset.py" %}


def tokenize(text: str) -> list[str]:
    """Lowercase words and punctuation marks: "Not bad, Sam!" -> not, bad, ",", sam, "!"."""
    return WORD.findall(text.lower())


def vocabulary_size(cfg: Config) -> int:
    """How many distinct token ids the sequences use: the special tokens and the words."""
    return len(SPECIAL) + len(load_index(cfg)["vocabulary"])


def class_names(cfg: Config) -> list[str]:
    """The classes: the distinct labels of the file, sorted."""
    return load_index(cfg)["classes"]


def model_inputs(cfg: Config) -> dict[str, int]:
    """What the task (`build_task` in model.py) needs to know about the data."""
    return {
        "vocabulary_size": vocabulary_size(cfg),
        "num_classes": len(class_names(cfg)),
        "padding": PAD,
    }


def make_dataloaders(cfg: Config) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, val and test loaders; only the training loader shuffles."""
    index = load_index(cfg)
    texts, labels = read_texts(cfg)
    number = {name: i for i, name in enumerate(index["classes"])}
    splits = []
    for name in SPLITS:
        rows = index["splits"][name]
        words = [tokenize(texts[row])[: cfg.max_length] for row in rows]
        splits.append(
            SequenceDataset(
                encode(words, index["vocabulary"]),
                torch.tensor([number[labels[row]] for row in rows], dtype=torch.long),
                index["classes"],
                [word_key(w) for w in words],  # by words: two texts can differ only in <unk>s
            )
        )
    return make_loaders(*splits, cfg)


def encode(texts: list[list[str]], vocabulary: list[str]) -> torch.Tensor:
    """Token ids (len(texts), 1 + longest): [CLS], each word's id (UNK if unknown), then PAD."""
    ids = {word: i for i, word in enumerate(vocabulary, len(SPECIAL))}
    tokens = torch.full((len(texts), 1 + max(map(len, texts), default=0)), PAD)
    for row, words in zip(tokens, texts, strict=True):
        row[: 1 + len(words)] = torch.tensor([CLS, *(ids.get(word, UNK) for word in words)])
    return tokens


def word_key(words: list[str]) -> bytes:
    return hashlib.blake2b("\0".join(words).encode(), digest_size=16).digest()


def prediction_inputs(cfg: Config, paths: list[Path]) -> tuple[list[str], torch.Tensor]:
    """The texts in `paths` (a .csv file's `text_column`, or each non-empty line of any other
    file) and their token ids, with the run's vocabulary."""
    texts = []
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"{path} is not a file; give text files (one text per line) or CSV files with "
                f"a {cfg.text_column!r} column."
            )
        if path.suffix.lower() != ".csv":
            texts += read_text(path).splitlines()
            continue
        header, rows = read_csv(path)
        if cfg.text_column not in header:
            raise DataError(
                f"{path} has no column {cfg.text_column!r}, the column of the texts the model "
                "trained on; give that name to the column of the texts."
            )
        texts += [row[header.index(cfg.text_column)] for _, row in rows]
    texts = [text.strip() for text in texts if text.strip()]
    if not texts:
        raise DataError(f"no texts in {', '.join(map(str, paths))}.")
    words = [tokenize(text)[: cfg.max_length] for text in texts]
    return texts, encode(words, load_index(cfg)["vocabulary"])


def load_index(cfg: Config) -> dict[str, Any]:
    """The run's split, classes and vocabulary: saved in its data.json, or made for a new run."""
    return data_index(cfg, lambda: scan(cfg), lambda saved: check_unchanged(cfg, saved))


def tokenizer_settings(cfg: Config) -> dict[str, Any]:
    """What decides how the file becomes token ids; a run keeps them for good."""
    keys = ("csv_file", "text_column", "label_column", "max_length", "min_count", "max_vocabulary")
    return {key: getattr(cfg, key) for key in keys}


def scan(cfg: Config) -> dict[str, Any]:
    """The index of the file as it is now; a run without a name (--overfit-batch) asks for it
    several times, and it is made, and its summary printed, once per content of the file."""
    path = csv_path(cfg)  # a missing file: read_texts says so
    return scan_contents(cfg, fingerprint(path) if path.is_file() else "")


@functools.cache
def scan_contents(cfg: Config, sha256: str) -> dict[str, Any]:
    """Check the file, drop repeated texts, draw the split from `seed` and build the vocabulary
    from the training texts."""
    texts, labels = read_texts(cfg)
    tokens = [tokenize(text) for text in texts]
    words = [text_tokens[: cfg.max_length] for text_tokens in tokens]  # what the model sees
    kept, first_label, repeats, disagreeing = [], {}, 0, 0
    for row, label in enumerate(labels):
        key = word_key(words[row])
        if key in first_label:
            repeats += 1
            disagreeing += first_label[key] != label
        else:
            first_label[key] = label
            kept.append(row)
    distinct = len({word_key(text_tokens) for text_tokens in tokens})
    if len(kept) < distinct / 2:
        lengths = sorted(len(text_tokens) for text_tokens in tokens)
        raise DataError(
            f"max_length={cfg.max_length} cuts the texts of {csv_path(cfg)} so short that "
            f"{distinct - len(kept)} of its {distinct} different texts become copies of another "
            f"and would be dropped. Raise max_length (the texts have {lengths[len(lengths) // 2]} "
            "tokens at the median)."
        )
    # A text that repeats an earlier one keeps the earlier one's label: say so where it matters.
    dropped = f" once its {repeats} repeated texts are dropped" if repeats else ""
    dropped += f" ({disagreeing} of them with another label)" if disagreeing else ""
    classes = sorted(set(first_label.values()))
    if len(classes) < 2:
        raise DataError(
            f"every text in {csv_path(cfg)} has the label {classes[0]!r}{dropped}: a classifier "
            f"needs at least two classes. Check that label_column={cfg.label_column!r} is the "
            "column of the classes."
        )
    try:
        parts = split_indices(len(kept), cfg)
    except ConfigError as error:
        raise DataError(
            f"{csv_path(cfg)} holds {len(kept)} different texts{dropped}: {error}"
        ) from None
    order = torch.randperm(len(kept), generator=torch.Generator().manual_seed(cfg.seed))
    splits = [sorted(kept[i] for i in order[part]) for part in parts]
    untrained = sorted(set(classes) - {labels[row] for row in splits[0]})
    if untrained:
        raise DataError(
            f"{len(untrained)} of the {len(classes)} classes of {csv_path(cfg)} have no text in "
            f"the training split ({', '.join(untrained[:5])}{', ...' * (len(untrained) > 5)}), "
            "so the model could never predict "
            "them: the split draws the texts at random, and a class of one or two texts can "
            "miss it. Add texts of those classes, or merge or remove the rarest ones."
        )
    counts = Counter(word for row in splits[0] for word in words[row])
    frequent = [word for word, count in counts.items() if count >= cfg.min_count]
    vocabulary = sorted(frequent, key=lambda word: (-counts[word], word))[: cfg.max_vocabulary]
    if not vocabulary:
        raise DataError(
            f"no word of the training texts appears min_count={cfg.min_count} times, so the "
            "vocabulary would be empty and every text the same row of unknown words. Lower "
            f"min_count (the commonest word appears {max(counts.values(), default=0)} times)."
        )
    known = set(vocabulary)
    val_words = [word for row in splits[1] for word in words[row]]
    coverage = sum(word in known for word in val_words) / max(len(val_words), 1)
    cut = sum(len(tokens[row]) > cfg.max_length for row in kept)
    report = [f"data: {csv_path(cfg)}, {len(kept)} texts in {len(classes)} classes"]
    if repeats:
        report.append(f"{repeats} repeated texts dropped ({disagreeing} with another label)")
    if cut:
        report.append(f"{cut} texts cut to max_length={cfg.max_length} tokens")
    report.append(
        f"vocabulary: {len(vocabulary)} words of the training texts, {coverage:.0%} of the val "
        "words"
    )
    print("; ".join(report))
    return {
        **tokenizer_settings(cfg),
        "sha256": sha256,
        "classes": classes,
        "vocabulary": vocabulary,
        "splits": dict(zip(SPLITS, splits, strict=True)),
    }


def check_unchanged(cfg: Config, saved: dict[str, Any]) -> None:
    """Stop when the CSV file is no longer the one this run split, or the text is to be read
    otherwise than the run's model learned it."""
    changed = [key for key, value in tokenizer_settings(cfg).items() if saved[key] != value]
    if changed:
        settings = ", ".join(f"{key}={saved[key]}" for key in changed)
        raise DataError(
            f"this run's vocabulary, classes and split were made with {settings}, and its model "
            "learned them. Drop those overrides, or start a new run to read the data otherwise."
        )
    check_same_file(cfg, saved)


def read_texts(cfg: Config) -> tuple[list[str], list[str]]:
    """The text and the label of every row, refusing unknown columns and empty cells."""
    header, rows = read_rows(cfg)
    if cfg.text_column == cfg.label_column:
        raise DataError(
            f"text_column and label_column both name the column {cfg.text_column!r}: the model "
            "would be given its answer. Name the column of the texts and that of the labels."
        )
    unknown = [name for name in (cfg.text_column, cfg.label_column) if name not in header]
    if unknown:
        raise DataError(
            f"{csv_path(cfg)} has no column {', '.join(map(repr, unknown))}; its columns are "
            f"{', '.join(header)}. Set text_column= and label_column= to the columns of the texts "
            "and of their classes; a file without a header row (its first row is read as one) "
            f"needs one: {cfg.text_column},{cfg.label_column}."
        )
    text, label = header.index(cfg.text_column), header.index(cfg.label_column)
    empty = [line for line, row in rows if not row[text].strip() or not row[label].strip()]
    if empty:
        raise DataError(
            f"{csv_path(cfg)}: {len(empty)} row{'s have' if len(empty) > 1 else ' has'} an empty "
            f"text or label, on line{'s' * (len(empty) > 1)} {quote_lines(empty)}. Fill in or "
            "delete those rows."
        )
    return [row[text] for _, row in rows], [row[label].strip() for _, row in rows]


{% include "shared/csv_file.py" %}


# What an example review remarks on, with a good and a bad word for it.
REMARKS = {
    "food": ("delicious", "bland"),
    "service": ("fast", "slow"),
    "staff": ("friendly", "rude"),
    "room": ("clean", "dirty"),
    "bed": ("comfortable", "hard"),
    "view": ("lovely", "dull"),
    "street": ("quiet", "noisy"),
    "wifi": ("reliable", "patchy"),
    "price": ("fair", "steep"),
    "breakfast": ("generous", "poor"),
}


def write_example_csv(path: Path, rows: int = 2000, seed: int = 0) -> None:
    """Example hotel reviews: a remark such as "the room was not clean", or two joined by "but",
    where the second one decides, as it does in speech. "not" turns a remark round. Counting good
    and bad words cannot tell "the bed was not clean, but the wifi was reliable" from "the bed
    was clean, but the wifi was not reliable": a model must see which remark comes last and which
    word "not" stands before, as attention can."""
    rng = random.Random(seed)
    reviews: dict[str, str] = {}
    while len(reviews) < rows:
        remarks = []
        for _ in range(rng.choice((1, 2))):
            aspect, good, negated = rng.choice(list(REMARKS)), rng.randrange(2), rng.randrange(2)
            remarks.append(f"the {aspect} was {'not ' * negated}{REMARKS[aspect][1 - good]}")
        text = ", but ".join(remarks)
        text = text[0].upper() + text[1:] + rng.choice((".", "!"))
        reviews.setdefault(text, "positive" if good != negated else "negative")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows(reviews.items())


if __name__ == "__main__":
    example = Path("data/data.csv")
    if example.exists():
        raise SystemExit(f"{example} exists; move it away first to write the example file.")
    write_example_csv(example)
    print(f"wrote {example}: 2000 example reviews (see write_example_csv in src/dataset.py)")
