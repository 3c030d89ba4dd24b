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
    # A comma at the end of every line (of the header, or of the data rows only) is an empty
    # last column, not data: it is dropped.
    if all(len(row) > 1 and not row[-1].strip() for _, row in lines[1:]) and (
        not lines[0][1][-1].strip() or all(len(row) == len(lines[0][1]) + 1 for _, row in lines[1:])
    ):
        header_too = not lines[0][1][-1].strip()
        lines = [lines[0] if not header_too else (lines[0][0], lines[0][1][:-1])] + [
            (number, row[:-1]) for number, row in lines[1:]
        ]
    header = [name.strip() for name in lines[0][1]]
    check_header(path, header)
    ragged = [number for number, row in lines[1:] if len(row) != len(header)]
    if ragged:
        raise DataError(
            f"{path}: the header has {len(header)} columns but line{'s' * (len(ragged) > 1)} "
            f"{quote_lines(ragged)} {'do' if len(ragged) > 1 else 'does'} not. Make every row "
            "have one value per column (quote values that contain commas)."
        )
    return header, lines[1:]


def check_header(path: Path, header: list[str]) -> None:
    """Refuse a first row that is not a header of distinct column names."""
    if len(header) == 1 and (separator := next((c for c in ";\t|" if c in header[0]), None)):
        raise DataError(
            f"{path} has one column only: its header {header[0][:60]!r} holds {separator!r} but "
            "no comma, so its values are separated otherwise. Save it as comma-separated CSV "
            "(with '.' as the decimal point) and run again."
        )
    if all(is_number(name) for name in header):
        raise DataError(
            f"{path} starts with a row of numbers ({', '.join(header[:4])}...), not a header: "
            "its first row would be taken for the columns' names and not trained on. Add a "
            "header row naming the columns at the top of the file."
        )
    unnamed = [str(column) for column, name in enumerate(header, 1) if not name]
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if unnamed or repeated:
        problem = f"column {', '.join(unnamed)} of its header has no name" if unnamed else ""
        problem += " and " if unnamed and repeated else ""
        problem += f"{', '.join(map(repr, repeated))} name more than one column" if repeated else ""
        raise DataError(
            f"{path}: {problem}, so the columns cannot be told apart by name. Give every column a "
            "name of its own in the first row."
        )


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_text(path: Path) -> str:
    """The text of the file at `path`, refusing one that is not UTF-8 (a byte-order mark is
    allowed, as spreadsheets write one). Line ends are kept as written, as the csv module
    needs them to read a quoted value that holds one."""
    try:
        return path.read_bytes().decode("utf-8-sig")
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
