"""What every importer shares: mapping results, source descriptions, row helpers.

The helpers turn raw text columns into contract rows and rejects, one way for every kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stageml.data.validate import TableReport

REJECTS_FILE = "import_rejects.csv"
PARAMS_FILE = "params.yaml"
REJECT_COLUMNS = ("source", "row", "buyer_id", "reason")
# Lineage carried by mapped interactions until the row accounting has been checked.
SOURCE_COLUMN, ROW_COLUMN = "_source", "_row"


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote, what it rejected and how the data was mapped.

    Attributes
    ----------
    kind
        The importer used (``taobao``, ``olist``, ``maven``).
    out
        The export folder written.
    tables
        Contract table name → file written.
    rows
        Contract table name → rows written.
    sources
        Row accounting per source file holding one row per buyer or buyer event (lookup
        tables such as products are not counted).
    rejects
        ``import_rejects.csv``: ``source`` (file name), ``row`` (1-based data row, header
        not counted), ``buyer_id``, ``reason``.
    params
        The generated ``params.yaml`` (loads with :func:`stageml.config.load_params`).
    coincidence_rate
        Share of recorded stage changes at the instant of one of the buyer's interactions.
    mapping_doc
        Markdown: activities, stages, inflection, leakage left out, timestamp assumptions.

    """

    kind: str
    out: Path
    tables: dict[str, Path]
    rows: dict[str, int]
    sources: tuple[TableReport, ...]
    rejects: Path
    params: Path
    coincidence_rate: float
    mapping_doc: str


@dataclass(frozen=True)
class Mapped:
    """A mapping's output: contract frames plus the rows it rejected.

    ``interactions`` carries ``_source``/``_row`` lineage (source name, 1-based row);
    ``rejects`` has ``source`` (source name), ``row``, ``buyer_id``, ``reason``.
    """

    interactions: pd.DataFrame
    buyers: pd.DataFrame | None
    rejects: pd.DataFrame


@dataclass(frozen=True)
class Source:
    """A raw file an importer reads (every column as text): accepted names and columns."""

    name: str
    files: tuple[str, ...]
    columns: tuple[str, ...]
    counted: bool = True  # one row per buyer (event); False for lookup tables
    header_optional: bool = False


@dataclass(frozen=True)
class Importer:
    """One kind of export: sources, mapping, taxonomy, params and documentation."""

    kind: str
    sources: tuple[Source, ...]
    mapping: Callable[[Mapping[str, pd.DataFrame]], Mapped]
    stages: tuple[str, ...]
    stage_of: dict[str, str]  # activity -> the stage (or exit) it marks
    params: dict[str, Any]
    doc: str
    # Terminal exits the export records (an activity in stage_of marks each), e.g. lost.
    exits: tuple[str, ...] = ()
    # The activity by which new buyers arrive, for exports that stop recording arrivals
    # long before outcomes: snapshots then end with the arrivals.
    arrival: str | None = None


# --- pieces shared by the mappings -----------------------------------------------------


def ids(values: pd.Series) -> pd.Series:
    """Ids as stripped strings; blank is missing."""
    return values.astype("string").str.strip().replace("", pd.NA)


def rows(n: int) -> np.ndarray:
    """1-based data row numbers, as the rejects file counts them."""
    return np.arange(1, n + 1, dtype=np.int64)


def first_reason(n: int, checks: Sequence[tuple[str, Any]]) -> pd.Series:
    """Per row, the reason of the first failed check; <NA> when every check passes.

    One reason per row, so that rejected counts per reason add up to the rejected rows.
    """
    reason = pd.Series(pd.NA, index=range(n), dtype="string")
    for text, failed in checks:
        reason[np.asarray(failed, dtype=bool) & reason.isna().to_numpy()] = text
    return reason


def rejected(source: str, buyer_id: pd.Series, reason: pd.Series) -> pd.DataFrame:
    """Rejects rows (source, row, buyer_id, reason) for the rows that carry a reason."""
    mask = reason.notna().to_numpy()
    return pd.DataFrame(
        {
            "source": pd.array([source] * int(mask.sum()), dtype="string"),
            "row": rows(len(reason))[mask],
            "buyer_id": pd.array(buyer_id.to_numpy()[mask], dtype="string"),
            "reason": pd.array(reason.to_numpy()[mask], dtype="string"),
        }
    )


def events(
    source: str,
    keep: np.ndarray,
    buyer_id: pd.Series,
    occurred_at: pd.Series,
    activity: str | pd.Series,
    **extra: str | pd.Series,
) -> pd.DataFrame:
    """Interactions from the ``keep`` rows of one source, with their lineage."""

    def pick(value: str | pd.Series) -> Any:
        return value.to_numpy()[keep] if isinstance(value, pd.Series) else value

    frame = pd.DataFrame(
        {
            "buyer_id": pick(buyer_id),
            "occurred_at": pick(occurred_at),
            "activity": pick(activity),
            **{name: pick(value) for name, value in extra.items()},
        }
    )
    frame[SOURCE_COLUMN] = source
    frame[ROW_COLUMN] = rows(len(keep))[keep]
    return frame


def local_midnight_utc(dates: pd.Series, zone: str) -> pd.Series:
    """Calendar dates (``YYYY-MM-DD`` text) → start of that day in ``zone``, as naive UTC."""
    day = pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce")
    # Where summer time starts at midnight (Brazil until 2019), the day begins at 01:00.
    local = day.dt.tz_localize(zone, nonexistent="shift_forward", ambiguous="raise")
    return local.dt.tz_convert("UTC").dt.tz_localize(None)


def stage_history(
    interactions: pd.DataFrame,
    stage_of: Mapping[str, str],
    stages: Sequence[str],
    exits: Sequence[str] = (),
) -> pd.DataFrame:
    """First instant of every new furthest stage per buyer, from stage-marking activities.

    Same-instant events are applied in taxonomy order, so the furthest one wins. Every
    exit-marking event is recorded (first per buyer and exit), after same-instant stages.
    """
    marks = interactions[interactions["activity"].isin(list(stage_of))]
    frame = pd.DataFrame(
        {
            "buyer_id": marks["buyer_id"].to_numpy(),
            "stage": marks["activity"].map(stage_of).to_numpy(),
            "entered_at": marks["occurred_at"].to_numpy(),
        }
    )
    frame["_rank"] = frame["stage"].map({name: i for i, name in enumerate([*stages, *exits])})
    frame = frame.sort_values(["buyer_id", "entered_at", "_rank"], kind="stable")
    left = frame["stage"].isin(list(exits)).to_numpy()
    ordered = frame[~left]
    best_before = ordered.groupby("buyer_id")["_rank"].cummax().groupby(ordered["buyer_id"]).shift()
    new_max = ordered[best_before.isna() | (ordered["_rank"] > best_before)]
    first_exit = frame[left].drop_duplicates(["buyer_id", "stage"])
    kept = pd.concat([new_max, first_exit]).sort_values(
        ["buyer_id", "entered_at", "_rank"], kind="stable"
    )
    return kept[["buyer_id", "stage", "entered_at"]].reset_index(drop=True)


def default_params(
    windows: Sequence[str], trend: str, horizon: str, every: str, warmup: str
) -> dict[str, Any]:
    """Return the params every import writes, before the export-derived snapshot bounds."""
    return {
        "features": {"windows": list(windows), "trend_window": trend, "stage_history": True},
        "labels": {"horizon": horizon, "label_delay": "0d"},
        "snapshots": {"every": every, "warmup": warmup},
    }
