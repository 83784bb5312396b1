"""CSV files as the coach's spreadsheet writes and reads them: cells that cannot start a
formula, rows read with their line numbers, the header's fields."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import IO

# A cell starting with one of these is a formula to a spreadsheet: a first name
# typed into our public form must not run in the marketer's Excel.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no email column, not CSV)."""


def unescape_cell(value: str) -> str:
    """Undo ``escape_cell``: our own exports import back unchanged."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_START:
        return value[1:]
    return value


def escape_cell(value: str) -> str:
    return "'" + value if value and value[0] in FORMULA_START else value


def read_csv(fh: IO[str]) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and (line number, row) pairs; line numbers are the file's, header = 1.

    Column names are matched without regard to case or surrounding spaces.
    """
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("the file is empty; expected a header row with an email column")
    except csv.Error as exc:
        raise ImportFileError(f"not a CSV file: {exc}") from exc
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    if "email" not in names:
        raise ImportFileError(
            "no 'email' column in the header row (columns: email, first_name, "
            "and optionally status and source)")

    return names, csv_rows(reader, names, len(names))


def csv_rows(reader: Iterator[list[str]], fields: list[str], width: int
             ) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {field: value}) for each non-empty row after the header, with the file's own
    line numbers; ``fields`` names each column ('' to leave it out). A row that cannot be
    read, or has more cells than the header's ``width``, carries an ``__error__``."""
    line = getattr(reader, "line_num", 0) + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, {"__error__": f"unreadable CSV: {exc}"}
            line = getattr(reader, "line_num", 0) + 1
            continue
        if values and any(v.strip() for v in values):
            row = {f: values[i] for i, f in enumerate(fields) if f and i < len(values)}
            if len(values) > width:
                row["__error__"] = (f"{len(values)} cells but the header has {width} columns "
                                    "(a comma inside a value needs quotes)")
            yield line, row
        line = getattr(reader, "line_num", 0) + 1


def write_csv(fh: IO[str], rows: Iterable[list[str]]) -> int:
    """Write rows; returns how many subscribers (rows after the header) were written."""
    writer = csv.writer(fh, lineterminator="\r\n")
    count = -1
    for row in rows:
        writer.writerow(row)
        count += 1
    return max(count, 0)
