def read_rows(cfg: Config) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the data rows of the project's CSV file (see `read_csv`)."""
    path = csv_path(cfg)
    if not path.is_file():
        raise DataError(
            f"{path} {'is a folder' if path.is_dir() else 'does not exist'}. Put your CSV file "
            "there (a header row, then one row per sample), point csv_file= or data_dir= at it, "
            "or run python src/dataset.py for an example file."
        )
    return read_csv(path)


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the data rows with their line numbers, refusing ragged or empty files."""
    rows = csv.reader(read_text(path).splitlines(keepends=True))
    lines = [(number, row) for number, row in enumerate(rows, 1) if row]
    if len(lines) < 2:
        raise DataError(f"{path} needs a header row and at least one row of data.")
    header = [name.strip() for name in lines[0][1]]
    ragged = [number for number, row in lines[1:] if len(row) != len(header)]
    if ragged:
        raise DataError(
            f"{path}: the header has {len(header)} columns but line{'s' * (len(ragged) > 1)} "
            f"{quote_lines(ragged)} {'do' if len(ragged) > 1 else 'does'} not. Make every row "
            "have one value per column (quote values that contain commas)."
        )
    return header, lines[1:]


def read_text(path: Path) -> str:
    """The text of the file at `path`, refusing one that is not UTF-8 (a byte-order mark is
    allowed, as spreadsheets write one)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not UTF-8 text (byte {error.start} cannot be decoded). Save it as UTF-8 "
            "(in a spreadsheet: export as CSV UTF-8) and run again."
        ) from None
    except OSError as error:
        raise DataError(
            f"cannot read {path}: {error.strerror or error}. Make it a readable file and run again."
        ) from None


def check_same_file(cfg: Config, saved: dict[str, Any]) -> None:
    """Stop when the CSV file is not the one this run split (`saved` is its data index): gone,
    or changed, its saved row numbers would name other samples."""
    path = csv_path(cfg)
    if not path.is_file():
        raise DataError(
            f"{path}, the file this run was split from and trained on, "
            f"{'is now a folder' if path.is_dir() else 'is missing'}. Put the file back (or point "
            "csv_file= and data_dir= at where it is now) and run the same command again."
        )
    if fingerprint(path) != saved["sha256"]:
        raise DataError(
            f"{path} has changed since this run split it, so its saved row numbers no longer "
            "name the same samples. Put the original file back, or start a new run to split the "
            "new file."
        )


def csv_path(cfg: Config) -> Path:
    return data_folder(cfg) / cfg.csv_file


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def quote_lines(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:SHOWN]))
    return shown + (f" and {len(lines) - SHOWN} more" if len(lines) > SHOWN else "")
