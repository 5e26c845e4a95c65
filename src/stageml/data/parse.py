"""Parsing helpers shared by the contract checks: text, timestamps and row masks.

Pure functions over Series and DataFrames. Row numbers in messages are 1-based data rows
(the header is not counted), as everywhere in validation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stageml.errors import ContractError

STRING = pd.StringDtype()
# pandas 3 parses timestamps to microseconds; one unit everywhere keeps merge_asof keys
# compatible and int64 views comparable across tables.
TIMESTAMP = np.dtype("datetime64[us]")
# Above this share of empty or unparseable values a timestamp column is in the wrong
# format (a day-first export, epoch seconds): rejecting most rows would hide that.
MAX_UNPARSEABLE_SHARE = 0.5
SHOWN = 5
ROWS_NOTE = "(rows are data rows counted from 1; the header is not counted)"


def clean_text(values: pd.Series) -> pd.Series:
    """Strip and treat blank as missing: "  " is no more an id than an empty cell."""
    return values.astype(STRING).str.strip().replace("", pd.NA)


def name_text(values: pd.Series) -> pd.Series:
    """Names (activity, channel, stage) compared the way people read them.

    Lower case, runs of whitespace as one space: "Email Open ", "email  open" and
    "EMAIL OPEN" are one activity, not three.
    """
    # A column holds few distinct names: normalise each once, not once per row.
    codes, uniques = pd.factorize(clean_text(values))
    names = pd.Series(uniques, dtype=STRING).str.lower().str.replace(r"\s+", " ", regex=True)
    return pd.Series(names.array.take(codes, allow_fill=True), index=values.index, dtype=STRING)


def optional_text(raw: pd.DataFrame, column: str) -> pd.Series:
    """Return an optional text column, all <NA> when the export lacks it."""
    if column in raw.columns:
        return clean_text(raw[column])
    return pd.Series(pd.NA, index=raw.index, dtype=STRING)


def isna(values: pd.Series) -> np.ndarray:
    """Missing-value mask as a plain bool array (pandas' nullable masks do not index numpy)."""
    mask: np.ndarray = values.isna().to_numpy(dtype=bool)
    return mask


# Slash dates are read day first (dd/mm/yyyy, optionally with hh:mm[:ss]); see
# parse_timestamps for why a month-first column is an error rather than a guess.
_SLASH_DATE = (
    r"^(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})"
    r"(?P<time>[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
# Excel stores dates as days since 1899-12-30; 10000-99999 is 1927-2173.
_EXCEL_SERIAL = r"^\d{5}(?:\.\d+)?$"
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")


def parse_timestamps(
    raw: pd.Series, file: str, column: str
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Timestamps as UTC, tz-naive, plus masks of empty and of unparseable values.

    Text values are read, value by value, as ISO-8601 (offsets converted to UTC, values
    without one taken as UTC), else as a day-first ``dd/mm/yyyy[ hh:mm[:ss]]`` date in UTC,
    else as an Excel serial date (``45292.5``: days since 1899-12-30, in UTC). Parquet
    timestamp columns (tz-aware or naive) are used as they are. A slash date whose second
    field exceeds 12 shows a month-first export: that raises rather than misreading every
    day <= 12. So does a column in which no value, or more than half of the values,
    fails to parse: it is in the wrong format, and rejecting most of the table row by row
    would hide that.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        parsed = raw.dt.tz_convert("UTC").dt.tz_localize(None)
        missing = isna(raw)
    elif pd.api.types.is_datetime64_dtype(raw):
        parsed, missing = raw, isna(raw)
    else:
        text = clean_text(raw)
        missing = isna(text)
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce").dt.tz_localize(
            None
        )
        retry = isna(parsed) & ~missing
        if retry.any():
            parsed = parsed.astype(TIMESTAMP)
            parsed[retry] = _other_formats(text[retry], file, column)
    parsed = parsed.astype(TIMESTAMP)
    bad = isna(parsed) & ~missing
    failed = int(missing.sum() + bad.sum())
    if failed == len(raw) or failed > MAX_UNPARSEABLE_SHARE * len(raw):
        rows = np.flatnonzero(bad if bad.any() else missing)
        examples = raw[bad].astype(STRING).unique()[:3].tolist()
        raise ContractError(
            file=file,
            column=column,
            rows=(rows[:SHOWN] + 1).tolist(),
            problem=f"{failed:,} of {len(raw):,} values ({failed / len(raw):.0%}) are not "
            f"timestamps ({int(bad.sum()):,} unparseable, e.g. {examples}; "
            f"{int(missing.sum()):,} empty) {ROWS_NOTE}",
            fix="write timestamps as ISO-8601, e.g. 2024-03-01T14:05:00Z or "
            "2024-03-01 14:05:00+01:00 (values without an offset are taken as UTC)",
        )
    return parsed, missing, bad


def optional_timestamps(raw: pd.Series, file: str, column: str) -> tuple[pd.Series, np.ndarray]:
    """Timestamps of a column that may be empty (NaT there), plus the unparseable mask."""
    present = ~isna(raw if pd.api.types.is_datetime64_any_dtype(raw) else clean_text(raw))
    parsed = pd.Series(pd.NaT, index=raw.index, dtype=TIMESTAMP)
    bad = np.zeros(len(raw), dtype=bool)
    if present.any():
        values, _, failed = parse_timestamps(raw[present], file, column)
        parsed[present] = values
        bad[present] = failed
    return parsed, bad


def _other_formats(text: pd.Series, file: str, column: str) -> pd.Series:
    """Day-first slash dates and Excel serial dates; NaT for anything else."""
    parts = text.str.extract(_SLASH_DATE)
    slash = parts["y"].notna().to_numpy(dtype=bool)
    # Month-first only where the first field can be a month: 31/31/2025 is just unparseable.
    as_month_first = (parts["m"].astype("Float64") > 12) & (parts["d"].astype("Float64") <= 12)
    month_first = slash & as_month_first.to_numpy(dtype=bool, na_value=False)
    if month_first.any():
        rows = np.flatnonzero(month_first)
        raise ContractError(
            file=file,
            column=column,
            rows=(text.index.to_numpy()[rows[:SHOWN]] + 1).tolist(),
            problem=f"dates such as {text.iloc[rows[:3]].tolist()} are month-first "
            "(mm/dd/yyyy); stageml reads slash dates day-first (dd/mm/yyyy) and would misread "
            f"every day up to 12 {ROWS_NOTE}",
            fix="export the dates as ISO-8601 (yyyy-mm-dd), or day-first",
        )
    iso = parts["y"] + "-" + parts["m"].str.zfill(2) + "-" + parts["d"].str.zfill(2)
    iso = iso + parts["time"].fillna("").str.replace("T", " ")
    out = pd.to_datetime(iso, format="ISO8601", errors="coerce")
    serial = text.str.fullmatch(_EXCEL_SERIAL).to_numpy(dtype=bool, na_value=False)
    days = pd.to_numeric(text[serial])
    out[serial] = _EXCEL_EPOCH + pd.to_timedelta(days.round(6), unit="D").dt.round("s")
    return out.astype(TIMESTAMP)


def after_export(parsed: pd.Series, file: str) -> np.ndarray:
    """Rows dated after the file was written: a clock or data-entry error, not an event.

    The file's modification time bounds the export instant from above (a copy only moves
    it later), so nothing in it can have happened after that. Frames without a file on
    disk (tests, in-memory callers) have no bound.
    """
    if not Path(file).is_file():
        return np.zeros(len(parsed), dtype=bool)
    written = pd.Timestamp(os.stat(file).st_mtime, unit="s")
    mask: np.ndarray = (parsed > written).to_numpy(dtype=bool, na_value=False)
    return mask


def first_failure(failures: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Index of the first failed check per row, -1 when all pass.

    One reason per row, so that rejected counts per reason add up to the rejected rows.
    """
    reason = np.full(n, -1, dtype=np.int8)
    for index, failed in enumerate(failures):
        reason[(reason < 0) & failed] = index
    return reason


def sort_stably(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """``frame.sort_values(keys)``: stable, missing values last, index labels kept.

    Sorted on one integer per row made of the keys' ranks (a lexsort over text columns
    compares Python objects: twice as slow on a scoring partition); keys whose ranks do
    not fit in 63 bits together are lexsorted on their ranks instead.
    """
    ranks = [_ranks(frame[key]) for key in keys]
    if math.prod(size for _, size in ranks) >= 2**63:
        return frame.iloc[np.lexsort([rank for rank, _ in reversed(ranks)])]
    combined = np.zeros(len(frame), dtype=np.int64)
    for rank, size in ranks:
        combined = combined * size + rank
    return frame.iloc[np.argsort(combined, kind="stable")]


def _ranks(values: pd.Series) -> tuple[np.ndarray, int]:
    """Each value's rank among the distinct values (missing last), and how many ranks."""
    if values.dtype.kind in "iuM" and not values.hasnans:
        # Sorting integers and timestamps is faster than hashing them (~4x on 1M).
        uniques, rank = np.unique(values.to_numpy(), return_inverse=True)
        return rank, len(uniques)
    code, uniques = pd.factorize(values, sort=True)
    return np.where(code < 0, len(uniques), code), len(uniques) + 1


def repeats_previous_row(ordered: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """Rows equal to the row before them on ``keys`` (missing equals missing).

    On rows sorted stably by ``keys`` this is ``duplicated(keep="first")`` in file order,
    without hashing the keys again after the sort.
    """
    same = np.zeros(len(ordered), dtype=bool)
    same[1:] = True
    for key in keys:
        now = ordered[key].iloc[1:].reset_index(drop=True)
        before = ordered[key].iloc[:-1].reset_index(drop=True)
        equal = (now == before).fillna(False) | (now.isna() & before.isna())
        same[1:] &= equal.to_numpy(dtype=bool)
    return same


def positions_of_repeats(frame: pd.DataFrame, among: np.ndarray, keys: Sequence[str]) -> np.ndarray:
    """Positions of all ``among`` rows that share ``keys`` with another such row."""
    repeated = np.zeros(len(frame), dtype=bool)
    repeated[among] = frame.loc[among, list(keys)].duplicated(keep=False).to_numpy()
    return np.flatnonzero(repeated)
