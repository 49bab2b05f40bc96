"""Reading a data file into a table: Parquet, or text whose layout is detected.

:func:`read_table` turns a file into a DataFrame with a clear error for
anything unreadable; for text it detects the separator and header
(:func:`sniff_table`) and numbers written with a decimal comma. What the
columns mean (features, labels, scaling) is the ``file`` data set's job, in
:mod:`experiments.datasets`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

__all__ = [
    "PARQUET_SUFFIXES",
    "SEPARATORS",
    "TEXT_SUFFIXES",
    "read_table",
    "sniff_table",
]

#: Text tables gmmlab reads; anything else must be Parquet.
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".data", ".dat")
#: Parquet files gmmlab reads.
PARQUET_SUFFIXES = (".parquet", ".pq")
SEPARATORS = {"comma": ",", "semicolon": ";", "tab": "\t", "whitespace": r"\s+"}
_SNIFF_LINES = 50
#: A number written with a decimal comma: 3,6  -0,25  1,5e-3  ,5
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?(\d+,\d*|,\d+)([eE][-+]?\d+)?\s*$")
_PLAIN_NUMBER = re.compile(r"^\s*[-+]?\d+([eE][-+]?\d+)?\s*$")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(line: str, sep: str) -> list[str]:
    if sep == r"\s+":
        return line.split()
    return [field.strip().strip('"') for field in line.split(sep)]


def sniff_table(path: Path) -> tuple[str, bool]:
    """The separator and whether the first line is a header, from the file's start.

    The separator is the candidate (tab, semicolon, comma, then whitespace)
    that splits every sampled line into the same number (> 1) of fields; a
    header is a first line with a non-numeric field where the next lines
    have numbers. One-column files use ``,``.
    """
    with path.open("r", encoding="utf-8", errors="strict") as handle:
        lines = []
        for line in handle:
            if line.strip():
                lines.append(line.rstrip("\n\r"))
            if len(lines) >= _SNIFF_LINES:
                break
    sep = ","
    for candidate in ("\t", ";", ",", r"\s+"):
        counts = {len(_split(line, candidate)) for line in lines}
        if len(counts) == 1 and counts.pop() > 1:
            sep = candidate
            break
    first = _split(lines[0], sep)
    rest = [_split(line, sep) for line in lines[1:]]

    def number(field: str) -> bool:
        # 3,6 is a number where commas do not separate fields.
        return _is_number(field) or (
            sep != "," and _DECIMAL_COMMA.match(field) is not None
        )

    header = any(not number(field) for field in first) and (
        not rest or any(number(field) for row in rest for field in row)
    )
    return sep, header


def read_table(
    path: str | Path, *, sep: str | None = None, header: bool | None = None
) -> pd.DataFrame:
    """A data file as a DataFrame, with a clear error for anything unreadable.

    Parquet (``.parquet``, ``.pq``) or a text table (``.csv``, ``.tsv``,
    ``.txt``, ``.data``, ``.dat``). For text, the separator (comma,
    semicolon, tab or whitespace) and the presence of a header are detected
    unless given: ``sep`` is one of those names or a literal separator,
    ``header`` True or False. Without a header, columns are named ``x1``,
    ``x2``, ... and no row is lost.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; give a data file inside it.")
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist.")
    if path.stat().st_size == 0:
        raise ValueError(f"data file {str(path)!r} is empty.")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return pd.read_parquet(path)
    if suffix not in TEXT_SUFFIXES:
        raise ValueError(
            f"data file {str(path)!r} must be a text table "
            f"({', '.join(TEXT_SUFFIXES)}) or Parquet (.parquet); got {suffix!r}."
        )
    _check_text(path)
    detected_sep, detected_header = sniff_table(path)
    sep = detected_sep if sep is None else SEPARATORS.get(sep, sep)
    if header is None:
        header = detected_header
    frame = _read_text(path, sep, header)
    if sep != "," and _decimal_comma_columns(frame):
        # Spreadsheets in much of Europe write 3,6 for 3.6 (and separate
        # fields by semicolons): read such numbers as numbers, not text.
        frame = _read_text(path, sep, header, decimal=",")
        frame.attrs["decimal"] = ","
    if not header:
        frame.columns = [f"x{j + 1}" for j in range(frame.shape[1])]
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[0] == 0:
        raise ValueError(f"data file {str(path)!r} has a header but no rows.")
    return frame


def _check_text(path: Path) -> None:
    """ValueError unless the file's start is UTF-8 text without NUL bytes."""
    with path.open("rb") as handle:
        start = handle.read(1 << 16)
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(start) - 4:  # not just a character cut at the end
            raise ValueError(
                f"data file {str(path)!r} is not UTF-8 text (binary content at "
                f"byte {error.start}); gmmlab reads text tables and Parquet."
            ) from None
    if b"\x00" in start:
        raise ValueError(
            f"data file {str(path)!r} contains NUL bytes: it is binary, not a "
            "text table; gmmlab reads text tables and Parquet."
        )


def _read_text(path: Path, sep: str, header: bool, decimal: str = ".") -> pd.DataFrame:
    return pd.read_csv(
        path,
        sep=sep,
        header=0 if header else None,
        engine="python" if sep == r"\s+" else "c",
        skipinitialspace=True,
        decimal=decimal,
    )


def _decimal_comma_columns(frame: pd.DataFrame) -> list[str]:
    """Text columns whose every value is a number with a decimal comma.

    Whole numbers (no comma) may be mixed in; one other value, and the
    column is text as it stands.
    """
    found = []
    for column in frame.columns:
        values = frame[column].dropna()
        if values.empty or pd.api.types.is_numeric_dtype(values):
            continue
        text = values.astype(str)
        comma = text.str.match(_DECIMAL_COMMA)
        if comma.any() and (comma | text.str.match(_PLAIN_NUMBER)).all():
            found.append(str(column))
    return found
