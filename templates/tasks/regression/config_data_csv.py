@dataclass(frozen=True)
class DataSettings:
    """A CSV file of numbers under data_dir, a header row, then one row per sample."""

    csv_file: str = option("data.csv", "the CSV file, relative to data_dir (see dataset.py)")
    target: str = option("", "the column to predict; empty: the last column")
    features: str = option("", "input columns, comma-separated; empty: all but the target")
