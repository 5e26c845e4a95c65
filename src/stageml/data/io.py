"""Reading and writing tables: the one place that touches files.

Every write is atomic (a temp file beside the target, then ``os.replace``) so a job that
dies half-way never leaves a truncated output that a downstream job would read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from stageml.errors import ContractError

TABLES = ("interactions", "buyers", "stage_history")
SUFFIXES = (".parquet", ".csv")
# Identifiers and free-text vocabularies are always read as strings: a numeric-looking
# buyer id ("00042") must survive the round trip unchanged.
STRING_COLUMNS = ("buyer_id", "activity", "channel", "direction", "stage")
# Excel in many European locales saves "CSV" with ';'; tab and '|' exports exist too.
CSV_DELIMITERS = (",", ";", "\t", "|")
# Spreadsheet tools write UTF-8 with a byte-order mark; without "-sig" it would become part
# of the first column's name ("\ufeffbuyer_id") and the column would be "missing".
CSV_ENCODING = "utf-8-sig"


def find_table(folder: str | Path, name: str) -> Path | None:
    """Path of ``name.parquet`` or ``name.csv`` inside ``folder``, or None if absent."""
    base = Path(folder)
    found = [base / f"{name}{suffix}" for suffix in SUFFIXES if (base / f"{name}{suffix}").exists()]
    if len(found) > 1:
        raise ContractError(
            file=str(base),
            problem=f"both {found[0].name} and {found[1].name} exist",
            fix=f"keep only one '{name}' table in the folder",
        )
    return found[0] if found else None


def csv_header(path: str | Path) -> tuple[str, list[str]]:
    """Return the field separator of a CSV and its column names.

    The separator is the one of ``CSV_DELIMITERS`` most used in the header line (comma when
    none occurs). Deciding on the header alone keeps the choice independent of the data
    rows and the same for every reader (pandas here, DuckDB in batch scoring).
    """
    with open(path, encoding=CSV_ENCODING, errors="replace", newline="") as handle:
        line = handle.readline()
    best = max(CSV_DELIMITERS, key=line.count)  # ties go to the earlier, i.e. comma
    sep = best if line.count(best) else ","
    try:
        columns = pd.read_csv(path, sep=sep, encoding=CSV_ENCODING, nrows=0).columns
    except pd.errors.EmptyDataError as exc:
        raise ContractError(
            file=str(path),
            problem="the file is empty (no header, no rows)",
            fix="export the table again with a header row",
        ) from exc
    return sep, [str(c) for c in columns]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet table, keeping contract text columns as strings.

    CSV: UTF-8 with or without a byte-order mark, separator from :func:`csv_header`.
    A row with more fields than the header keeps its first ones (the extra trailing fields
    are ignored, as extra columns are); a row with fewer has the missing ones empty, so
    the row checks reject it if a required value is missing. Every data row stays a row.
    """
    file = Path(path)
    if file.suffix == ".parquet":
        frame = pd.read_parquet(file)
    elif file.suffix == ".csv":
        sep, header = csv_header(file)
        frame = pd.read_csv(
            file,
            sep=sep,
            encoding=CSV_ENCODING,
            usecols=range(len(header)),
            dtype={c: "string" for c in STRING_COLUMNS},
            keep_default_na=False,
            na_values=[""],
        )
    else:
        raise ContractError(
            file=str(file),
            problem=f"unsupported file type '{file.suffix}'",
            fix="use .csv or .parquet",
        )
    for column in STRING_COLUMNS:
        if column in frame.columns:
            frame[column] = _as_string(frame[column])
    return frame


def _as_string(series: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(series):
        # Parquet written from numeric ids: 42.0 should read as "42", not "42.0".
        as_int = series.dropna()
        if (as_int == as_int.round()).all():
            return series.astype("Int64").astype("string")
    return series.astype("string")


def sql_escape(text: str) -> str:
    """Escape text for a single-quoted DuckDB string literal (paths, buyer ids)."""
    return text.replace("'", "''")


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``target``; rename it over ``target`` only on success."""
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; outputs are shared, so apply the usual umask instead.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write Parquet or CSV (chosen by extension) atomically."""
    final = Path(path)
    writers: dict[str, Callable[[Path], Any]] = {
        ".parquet": lambda p: frame.to_parquet(p, index=False),
        ".csv": lambda p: frame.to_csv(p, index=False),
    }
    if final.suffix not in writers:
        raise ContractError(
            file=str(final),
            problem=f"unsupported output type '{final.suffix}'",
            fix="name the output .parquet or .csv",
        )
    with atomic_path(final) as tmp:
        writers[final.suffix](tmp)
    return final


def write_json(payload: dict[str, Any], path: str | Path) -> Path:
    """Write a JSON document atomically (run summaries, metrics)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return Path(path)


def fingerprint(path: str | Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, recorded in run summaries to tie outputs to inputs."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}
