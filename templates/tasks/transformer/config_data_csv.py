@dataclass(frozen=True)
class DataSettings:
    """A CSV file of labelled texts under data_dir, a header row, then one text per row."""

    csv_file: str = option("data.csv", "the CSV file, relative to data_dir (see dataset.py)")
    text_column: str = option("text", "the column of the texts")
    label_column: str = option("label", "the column of their classes (any strings)")
    max_length: int = option(64, "tokens kept of each text; the rest is cut off", ge=1)
    min_count: int = option(2, "times a word must occur in the training texts to be known", ge=1)
    max_vocabulary: int = option(20000, "most words kept, most frequent first; others: <unk>", ge=1)
