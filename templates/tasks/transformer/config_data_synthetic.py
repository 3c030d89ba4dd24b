@dataclass(frozen=True)
class DataSettings:
    """Built-in synthetic pointer sequences (see dataset.py)."""

    num_samples: int = option(6000, "sequences generated in total, before the splits", ge=3)
    num_symbols: int = option(10, "distinct symbols, which are also the classes", ge=2)
    min_length: int = option(4, "fewest symbols in a sequence", ge=1)
    max_length: int = option(32, "most symbols in a sequence; shorter ones are padded", ge=1)
