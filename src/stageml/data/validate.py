"""Load a CRM export and check it against the data contract.

Two kinds of problem are handled differently, because they call for different repairs:

* **Contract problems** mean the export itself is wrong: a missing file or required
  column, an empty table, a timestamp column that is not ISO-8601, stage names outside the
  taxonomy, duplicate stage rows, duplicate buyer ids. They raise
  :class:`~stageml.errors.ContractError` naming the file, column, first rows and the fix,
  since any model built on such an export would be silently wrong.
* **Row problems** (a null id, one unparseable timestamp, a null activity, an invalid
  direction, an exact duplicate interaction) affect single rows. Those rows are skipped and
  recorded in the rejects table with a reason, so every input row is accounted for:
  ``accepted + rejected == input rows`` for every table.

Row numbers, everywhere (messages and the rejects table), are 1-based data rows in file
order; the header is not counted, so "row 3" is the third data row of the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from rich.table import Table

from stageml.config import DEFAULT_STAGES
from stageml.data.io import TABLES, find_table, read_table, write_table
from stageml.data.pandera_quiet import pa
from stageml.errors import ContractError

STRING = pd.StringDtype()
# pandas 3 parses timestamps to microseconds; one unit everywhere keeps merge_asof keys
# compatible and int64 views comparable across tables.
TIMESTAMP = np.dtype("datetime64[us]")
DIRECTIONS = ("inbound", "outbound")
UNKNOWN_CHANNEL = "unknown"
# Above this share of empty or unparseable values a timestamp column is in the wrong
# format (a day-first export, epoch seconds): rejecting most rows would hide that.
MAX_UNPARSEABLE_SHARE = 0.5
_SHOWN = 5
_ROWS_NOTE = "(rows are data rows counted from 1; the header is not counted)"

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "interactions": ("buyer_id", "occurred_at", "activity"),
    "buyers": ("buyer_id",),
    "stage_history": ("buyer_id", "stage", "entered_at"),
}
INTERACTION_KEYS = ("buyer_id", "occurred_at", "activity", "channel", "direction")
STAGE_KEYS = ("buyer_id", "stage", "entered_at")
# Optional stage_history column: when the CRM logged the change (features honour it).
RECORDED_AT = "recorded_at"
REJECT_COLUMNS = ("table", "row", "buyer_id", "reason")


def _exactly(dtype: Any) -> pa.Check:
    # pandera accepts object columns as strings and ignores the datetime unit; downstream
    # code relies on the exact dtype, so check it explicitly.
    return pa.Check(lambda s: s.dtype == dtype, error=f"dtype is exactly {dtype}")


def _column(
    dtype: Any, *checks: pa.Check, nullable: bool = False, unique: bool = False
) -> pa.Column:
    return pa.Column(dtype, [_exactly(dtype), *checks], nullable=nullable, unique=unique)


_RANGE_INDEX = pa.Check(
    lambda df: df.index.equals(pd.RangeIndex(len(df))), error="index is a RangeIndex from 0"
)

InteractionsSchema = pa.DataFrameSchema(
    {
        "buyer_id": _column(STRING),
        "occurred_at": _column(TIMESTAMP),
        "activity": _column(STRING),
        "channel": _column(STRING),
        "direction": _column(STRING, pa.Check.isin(DIRECTIONS), nullable=True),
    },
    checks=[_RANGE_INDEX],
    strict=True,
    ordered=True,
    name="interactions",
)
BuyersSchema = pa.DataFrameSchema(
    {"buyer_id": _column(STRING, unique=True)}, checks=[_RANGE_INDEX], name="buyers"
)
# The stage vocabulary comes from params; load_export adds the taxonomy check per call.
StageHistorySchema = pa.DataFrameSchema(
    {"buyer_id": _column(STRING), "stage": _column(STRING), "entered_at": _column(TIMESTAMP)},
    checks=[_RANGE_INDEX],
    unique=list(STAGE_KEYS),
    strict=True,
    ordered=True,
    name="stage_history",
)


@dataclass(frozen=True)
class TableReport:
    """Row accounting for one table: ``accepted_rows + sum(rejected.values()) == input_rows``."""

    table: str
    path: str
    input_rows: int
    accepted_rows: int
    rejected: dict[str, int]

    @property
    def rejected_rows(self) -> int:
        """Rows rejected for any reason."""
        return sum(self.rejected.values())


@dataclass(frozen=True, eq=False)
class Export:
    """A CRM export that passed the contract checks, plus what was rejected and why.

    Attributes
    ----------
    interactions
        ``buyer_id`` string, ``occurred_at`` datetime64[us] (UTC, tz-naive), ``activity``
        string, ``channel`` string (``"unknown"`` when absent), ``direction`` string
        ``"inbound"``/``"outbound"`` or <NA> when unknown. Sorted by buyer_id, occurred_at,
        activity, channel, direction; RangeIndex.
    buyers
        ``buyer_id`` string (unique) then the attribute columns, text as string and numbers
        kept numeric; sorted by buyer_id. None when the export has no buyers table.
    stage_history
        ``buyer_id`` string, ``stage`` string (in the taxonomy), ``entered_at``
        datetime64[us] (UTC, tz-naive); sorted by buyer_id, entered_at, stage order. None
        when the export has no stage history.
    rejects
        One row per rejected input row: ``table``, ``row`` (1-based data row in its file),
        ``buyer_id`` (may be <NA>), ``reason``.
    reports
        Row accounting per table, in the order interactions, buyers, stage_history.
    warnings
        Problems worth a look that do not stop the run.
    sources
        The file each table was read from.

    """

    interactions: pd.DataFrame
    buyers: pd.DataFrame | None
    stage_history: pd.DataFrame | None
    rejects: pd.DataFrame
    reports: tuple[TableReport, ...]
    warnings: tuple[str, ...]
    sources: dict[str, Path]

    @cached_property
    def buyer_ids(self) -> frozenset[str]:
        """Every buyer id seen in any table, accepted or rejected rows alike.

        Callers check against it that every input buyer ends up scored or explained.
        """
        frames = (self.interactions, self.buyers, self.stage_history, self.rejects)
        ids = pd.concat([f["buyer_id"] for f in frames if f is not None], ignore_index=True)
        return frozenset(ids.dropna().unique().tolist())


class _Checked(NamedTuple):
    """A table after its row checks."""

    clean: pd.DataFrame  # accepted rows, sorted, RangeIndex
    buyer_id: pd.Series  # normalised id of every input row, for the rejects table
    reason: np.ndarray  # per input row: index into ``reasons``, or -1 when accepted
    reasons: tuple[str, ...]


def load_export(
    data: str | Path | Mapping[str, str | Path],
    *,
    stages: Sequence[str] = DEFAULT_STAGES,
    require_stage_history: bool = False,
) -> Export:
    """Read a CRM export, enforce the data contract and set bad rows aside.

    Parameters
    ----------
    data
        A folder holding ``interactions``, and optionally ``buyers`` and ``stage_history``,
        as ``.csv`` or ``.parquet``; or a mapping from those table names to file paths.
    stages
        The ordered stage taxonomy (``params.stages``); stage_history may use no other name.
    require_stage_history
        True for training and evaluation, which need labels; scoring does not.

    Returns
    -------
    Export
        Clean tables (dtypes in :class:`Export`), the rejected rows with reasons, row
        accounting per table and warnings.

    Raises
    ------
    ContractError
        When the export breaks the contract (see the module docstring). Row numbers in
        the message are 1-based data rows; the header is not counted.

    """
    sources = _locate(data, require_stage_history=require_stage_history)
    raw = {name: _read(path) for name, path in sources.items()}
    return validate_frames(raw, sources=sources, stages=stages)


SOURCE_ROW = "_source_row"


def validate_frames(
    raw: Mapping[str, pd.DataFrame],
    *,
    sources: Mapping[str, str | Path],
    stages: Sequence[str] = DEFAULT_STAGES,
) -> Export:
    """Enforce the contract on tables already in memory (one hash partition, one Spark bucket).

    ``sources`` names the file each table came from, for messages. When a table carries a
    ``_source_row`` column (1-based row in the original file, added by the partitioned
    readers), rejects report that row number instead of the position in the partition.
    """
    checkers: dict[str, Callable[[pd.DataFrame, str], _Checked]] = {
        "interactions": _check_interactions,
        "buyers": _check_buyers,
        "stage_history": lambda frame, file: _check_stage_history(frame, file, tuple(stages)),
    }
    schemas = {
        "interactions": InteractionsSchema,
        "buyers": BuyersSchema,
        "stage_history": StageHistorySchema.update_column(
            "stage", checks=[_exactly(STRING), pa.Check.isin(list(stages))]
        ),
    }
    if "stage_history" in raw and RECORDED_AT in raw["stage_history"].columns:
        schemas["stage_history"] = schemas["stage_history"].add_columns(
            {RECORDED_AT: _column(TIMESTAMP, nullable=True)}
        )
    checked: dict[str, _Checked] = {}
    rows: dict[str, np.ndarray | None] = {}
    for name in TABLES:
        if name in raw:
            file = str(sources[name])
            table = raw[name]
            rows[name] = (
                table[SOURCE_ROW].to_numpy(np.int64) if SOURCE_ROW in table.columns else None
            )
            table = table.drop(columns=[SOURCE_ROW], errors="ignore")
            _require_columns(table, name, file)
            if table.empty:
                raise ContractError(
                    file=file,
                    problem="the table has no data rows",
                    fix=f"export the {name} table again; it must hold at least one row",
                )
            result = checkers[name](table, file)
            _require_accepted(result, file)
            # Postcondition, not input validation: a failure here is a stageml bug.
            schemas[name].validate(result.clean)
            checked[name] = result

    paths = {name: Path(str(path)) for name, path in sources.items()}
    reports = tuple(_report(name, str(paths[name]), c) for name, c in checked.items())
    rejects = pd.concat(
        [_rejects(name, c, rows[name]) for name, c in checked.items()], ignore_index=True
    )
    return Export(
        interactions=checked["interactions"].clean,
        buyers=checked["buyers"].clean if "buyers" in checked else None,
        stage_history=checked["stage_history"].clean if "stage_history" in checked else None,
        rejects=rejects,
        reports=reports,
        warnings=tuple(_warnings(checked, paths)),
        sources=paths,
    )


def write_rejects(export: Export, path: str | Path) -> Path:
    """Write the rejects table atomically, as CSV or Parquet by the path's extension."""
    return write_table(export.rejects, path)


def summary_table(export: Export) -> Table:
    """Per table: input rows, accepted rows, and rejected rows by reason (one line each)."""
    table = Table(title="CRM export check")
    table.add_column("table", no_wrap=True)
    table.add_column("input", justify="right", no_wrap=True)
    table.add_column("accepted", justify="right", no_wrap=True)
    table.add_column("rejected because", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    for report in export.reports:
        lines = list(report.rejected.items()) or [("-", 0)]
        for index, (reason, count) in enumerate(lines):
            first = index == 0
            table.add_row(
                report.table if first else "",
                f"{report.input_rows:,}" if first else "",
                f"{report.accepted_rows:,}" if first else "",
                reason,
                f"{count:,}",
                end_section=index == len(lines) - 1,
            )
    return table


# --- locating and reading ------------------------------------------------------------


def _locate(
    data: str | Path | Mapping[str, str | Path], *, require_stage_history: bool
) -> dict[str, Path]:
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(TABLES))
        if unknown:
            raise ContractError(
                file=", ".join(str(data[k]) for k in unknown),
                problem=f"unknown table name(s) {unknown}",
                fix=f"name each path by one of {list(TABLES)}",
            )
        sources = {name: Path(data[name]) for name in TABLES if name in data}
        for name, path in sources.items():
            if not path.is_file():
                raise ContractError(
                    file=str(path),
                    problem=f"the {name} file does not exist",
                    fix="check the path, or export the table there",
                )
        where = "the paths given"
    else:
        folder = Path(data)
        if not folder.is_dir():
            raise ContractError(
                file=str(folder),
                problem="the export folder does not exist",
                fix="pass the folder holding interactions.csv or interactions.parquet",
            )
        sources = {name: p for name in TABLES if (p := find_table(folder, name)) is not None}
        where = str(folder)
    required = ("interactions", "stage_history") if require_stage_history else ("interactions",)
    for name in required:
        if name not in sources:
            why = "training and evaluation need stage labels" if name == "stage_history" else ""
            raise ContractError(
                file=where,
                problem=f"no {name} table ({name}.csv or {name}.parquet)"
                + (f"; {why}" if why else ""),
                fix=f"add {name}.csv or {name}.parquet to the export",
            )
    return sources


def _read(path: Path) -> pd.DataFrame:
    try:
        return read_table(path)
    except (ValueError, OSError) as exc:  # parser, Arrow and encoding errors
        raise ContractError(
            file=str(path),
            problem=f"the file cannot be read ({type(exc).__name__}: {exc})",
            fix="export it again as UTF-8 CSV with a header row, or as Parquet",
        ) from exc


def _require_columns(raw: pd.DataFrame, table: str, file: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS[table] if c not in raw.columns]
    if not missing:
        return
    found = [str(c) for c in raw.columns]
    # Headers often differ only by case, spaces or hyphens ("Buyer ID"): name the rename.
    normalised = {c.strip().lower().replace(" ", "_").replace("-", "_"): c for c in found}
    renames = []
    for column in missing:
        close = difflib.get_close_matches(column, list(normalised), n=1, cutoff=0.8)
        if close:
            renames.append(f"rename '{normalised[close[0]]}' to '{column}'")
    fix = "; ".join(renames) if renames else f"add the column(s) {missing} to the {table} export"
    raise ContractError(
        file=file,
        column=", ".join(missing),
        problem=f"required column missing; the file has {found}",
        fix=fix,
    )


# --- the row checks, one function per table -----------------------------------------


def _check_interactions(raw: pd.DataFrame, file: str) -> _Checked:
    n = len(raw)
    occurred_at, ts_missing, ts_bad = _parse_timestamps(raw["occurred_at"], file, "occurred_at")
    direction = _optional_text(raw, "direction").str.lower()
    channel = _optional_text(raw, "channel")
    frame = pd.DataFrame(
        {
            "buyer_id": _text(raw["buyer_id"]),
            "occurred_at": occurred_at,
            "activity": _text(raw["activity"]),
            "channel": channel.fillna(UNKNOWN_CHANNEL),
            "direction": direction,
        }
    )
    reasons = (
        "missing_buyer_id",
        "missing_occurred_at",
        "unparseable_occurred_at",
        "missing_activity",
        "invalid_direction",
        "duplicate_interaction",
    )
    reason = _first_failure(
        [
            _isna(frame["buyer_id"]),
            ts_missing,
            ts_bad,
            _isna(frame["activity"]),
            (direction.notna() & ~direction.isin(DIRECTIONS)).to_numpy(dtype=bool),
        ],
        n,
    )
    # Exact repeats (CRM sync artefacts) would double-count activity: keep the first.
    position = np.flatnonzero(reason < 0)
    accepted = frame.iloc[position].reset_index(drop=True)
    ordered = accepted.sort_values(list(INTERACTION_KEYS))  # stable: ties keep file order
    repeat = _repeats_previous_row(ordered, INTERACTION_KEYS)
    reason[position[ordered.index.to_numpy()[repeat]]] = len(reasons) - 1
    clean = ordered.loc[~repeat].reset_index(drop=True)
    return _Checked(clean, frame["buyer_id"], reason, reasons)


def _check_stage_history(raw: pd.DataFrame, file: str, stages: tuple[str, ...]) -> _Checked:
    entered_at, ts_missing, ts_bad = _parse_timestamps(raw["entered_at"], file, "entered_at")
    frame = pd.DataFrame(
        {"buyer_id": _text(raw["buyer_id"]), "stage": _text(raw["stage"]), "entered_at": entered_at}
    )
    _require_known_stages(frame["stage"], stages, file)
    reasons: tuple[str, ...] = (
        "missing_buyer_id",
        "missing_entered_at",
        "unparseable_entered_at",
        "missing_stage",
    )
    failures = [_isna(frame["buyer_id"]), ts_missing, ts_bad, _isna(frame["stage"])]
    if RECORDED_AT in raw.columns:
        # When the CRM logged the change; empty means "not known", read as entered_at.
        recorded_at, recorded_bad = _optional_timestamps(raw[RECORDED_AT], file, RECORDED_AT)
        frame[RECORDED_AT] = recorded_at
        early = (recorded_at < entered_at).to_numpy(bool)
        reasons += ("unparseable_recorded_at", "recorded_at_before_entered_at")
        failures += [recorded_bad, early]
    reason = _first_failure(failures, len(frame))
    accepted = reason < 0
    repeated = _positions_of_repeats(frame, accepted, STAGE_KEYS)
    if len(repeated):
        raise ContractError(
            file=file,
            column="stage",
            rows=(repeated[:_SHOWN] + 1).tolist(),
            problem=f"{len(repeated)} rows repeat the same (buyer_id, stage, entered_at) "
            f"{_ROWS_NOTE}; duplicated stage history usually means a bad join in the export",
            fix="keep one row per buyer_id, stage and entered_at",
        )
    rank = frame["stage"].map({s: i for i, s in enumerate(stages)})
    clean = (
        frame.loc[accepted]
        .assign(_rank=rank[accepted])
        .sort_values(["buyer_id", "entered_at", "_rank"], ignore_index=True)
        .drop(columns="_rank")
    )
    return _Checked(clean, frame["buyer_id"], reason, reasons)


def _check_buyers(raw: pd.DataFrame, file: str) -> _Checked:
    buyer_id = _text(raw["buyer_id"])
    reasons = ("missing_buyer_id",)
    reason = _first_failure([_isna(buyer_id)], len(raw))
    accepted = reason < 0
    repeated = _positions_of_repeats(buyer_id.to_frame(), accepted, ("buyer_id",))
    if len(repeated):
        shown = buyer_id.iloc[repeated].unique()[:_SHOWN].tolist()
        raise ContractError(
            file=file,
            column="buyer_id",
            rows=(repeated[:_SHOWN] + 1).tolist(),
            problem=f"{len(repeated)} rows share a buyer_id with another row, e.g. {shown} "
            f"{_ROWS_NOTE}; a buyer's attributes must be unambiguous",
            fix="keep one row per buyer_id (aggregate or pick the latest attributes first)",
        )
    attributes = raw.drop(columns="buyer_id")
    for column in attributes.columns:
        values = attributes[column]
        if pd.api.types.is_object_dtype(values) or isinstance(
            values.dtype, pd.StringDtype | pd.CategoricalDtype
        ):
            attributes[column] = values.astype(STRING)
    frame = pd.concat([buyer_id.rename("buyer_id"), attributes], axis=1)
    clean = frame.loc[accepted].sort_values("buyer_id", ignore_index=True)
    return _Checked(clean, buyer_id, reason, reasons)


# --- shared pieces --------------------------------------------------------------------


def _text(values: pd.Series) -> pd.Series:
    """Strip and treat blank as missing: "  " is no more an id than an empty cell."""
    return values.astype(STRING).str.strip().replace("", pd.NA)


def _optional_text(raw: pd.DataFrame, column: str) -> pd.Series:
    """Return an optional text column, all <NA> when the export lacks it."""
    if column in raw.columns:
        return _text(raw[column])
    return pd.Series(pd.NA, index=raw.index, dtype=STRING)


def _isna(values: pd.Series) -> np.ndarray:
    mask: np.ndarray = values.isna().to_numpy(dtype=bool)
    return mask


def _optional_timestamps(raw: pd.Series, file: str, column: str) -> tuple[pd.Series, np.ndarray]:
    """Timestamps of a column that may be empty (NaT there), plus the unparseable mask."""
    present = ~_isna(raw if pd.api.types.is_datetime64_any_dtype(raw) else _text(raw))
    parsed = pd.Series(pd.NaT, index=raw.index, dtype=TIMESTAMP)
    bad = np.zeros(len(raw), dtype=bool)
    if present.any():
        values, _, failed = _parse_timestamps(raw[present], file, column)
        parsed[present] = values
        bad[present] = failed
    return parsed, bad


def _parse_timestamps(
    raw: pd.Series, file: str, column: str
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Timestamps as UTC, tz-naive, plus masks of empty and of unparseable values.

    Offsets are converted to UTC; values without one are taken as UTC. Parquet timestamp
    columns (tz-aware or naive) are used as they are. A column in which no value, or more
    than half of the values, fails to parse is in the wrong format: that raises, rather
    than rejecting most of the table row by row.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        parsed = raw.dt.tz_convert("UTC").dt.tz_localize(None)
        missing = _isna(raw)
    elif pd.api.types.is_datetime64_dtype(raw):
        parsed, missing = raw, _isna(raw)
    else:
        text = _text(raw)
        missing = _isna(text)
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce").dt.tz_localize(
            None
        )
    parsed = parsed.astype(TIMESTAMP)
    bad = _isna(parsed) & ~missing
    failed = int(missing.sum() + bad.sum())
    if failed == len(raw) or failed > MAX_UNPARSEABLE_SHARE * len(raw):
        rows = np.flatnonzero(bad if bad.any() else missing)
        examples = raw[bad].astype(STRING).unique()[:3].tolist()
        raise ContractError(
            file=file,
            column=column,
            rows=(rows[:_SHOWN] + 1).tolist(),
            problem=f"{failed:,} of {len(raw):,} values ({failed / len(raw):.0%}) are not "
            f"ISO-8601 timestamps ({int(bad.sum()):,} unparseable, e.g. {examples}; "
            f"{int(missing.sum()):,} empty) {_ROWS_NOTE}",
            fix="write timestamps as ISO-8601, e.g. 2024-03-01T14:05:00Z or "
            "2024-03-01 14:05:00+01:00 (values without an offset are taken as UTC)",
        )
    return parsed, missing, bad


def _require_known_stages(stage: pd.Series, stages: tuple[str, ...], file: str) -> None:
    unknown = (stage.notna() & ~stage.isin(stages)).to_numpy(dtype=bool)
    if not unknown.any():
        return
    counts = stage[unknown].value_counts()
    found = ", ".join(f"'{name}' ({count} rows)" for name, count in counts.head(_SHOWN).items())
    raise ContractError(
        file=file,
        column="stage",
        rows=(np.flatnonzero(unknown)[:_SHOWN] + 1).tolist(),
        problem=f"{int(unknown.sum())} rows use stage names outside the taxonomy: {found}; "
        f"expected one of {list(stages)} {_ROWS_NOTE}",
        fix="map these names onto the taxonomy in the export, or add them, in buying "
        "order, to 'stages' in params.yaml",
    )


def _first_failure(failures: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Index of the first failed check per row, -1 when all pass.

    One reason per row, so that rejected counts per reason add up to the rejected rows.
    """
    reason = np.full(n, -1, dtype=np.int8)
    for index, failed in enumerate(failures):
        reason[(reason < 0) & failed] = index
    return reason


def _repeats_previous_row(ordered: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
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


def _positions_of_repeats(
    frame: pd.DataFrame, among: np.ndarray, keys: Sequence[str]
) -> np.ndarray:
    """Positions of all ``among`` rows that share ``keys`` with another such row."""
    repeated = np.zeros(len(frame), dtype=bool)
    repeated[among] = frame.loc[among, list(keys)].duplicated(keep=False).to_numpy()
    return np.flatnonzero(repeated)


def _require_accepted(checked: _Checked, file: str) -> None:
    # Every row rejected is a format problem (wrong column filled, say), not bad luck.
    if (checked.reason < 0).any():
        return
    counts = np.bincount(checked.reason, minlength=len(checked.reasons))
    found = ", ".join(f"{r}: {c}" for r, c in zip(checked.reasons, counts, strict=True) if c)
    raise ContractError(
        file=file,
        rows=list(range(1, min(len(checked.reason), _SHOWN) + 1)),
        problem=f"none of the {len(checked.reason):,} rows passed the row checks ({found}) "
        f"{_ROWS_NOTE}",
        fix="check that the columns hold what the data contract says (see README)",
    )


def _report(table: str, path: str, checked: _Checked) -> TableReport:
    rejected = checked.reason[checked.reason >= 0]
    counts = np.bincount(rejected, minlength=len(checked.reasons))
    return TableReport(
        table=table,
        path=path,
        input_rows=len(checked.reason),
        accepted_rows=len(checked.clean),
        rejected={r: int(c) for r, c in zip(checked.reasons, counts, strict=True) if c},
    )


def _rejects(table: str, checked: _Checked, source_rows: np.ndarray | None = None) -> pd.DataFrame:
    positions = np.flatnonzero(checked.reason >= 0)
    reasons = np.asarray(checked.reasons, dtype=object)[checked.reason[positions]]
    rows = source_rows[positions] if source_rows is not None else positions + 1
    return pd.DataFrame(
        {
            "table": pd.array([table] * len(positions), dtype=STRING),
            "row": rows.astype(np.int64),
            "buyer_id": checked.buyer_id.iloc[positions].reset_index(drop=True),
            "reason": pd.array(reasons, dtype=STRING),
        }
    )


def _warnings(checked: Mapping[str, _Checked], sources: Mapping[str, Path]) -> list[str]:
    if "stage_history" not in checked:
        return []
    labelled = pd.Index(checked["stage_history"].clean["buyer_id"].unique())
    absent = labelled.difference(pd.Index(checked["interactions"].clean["buyer_id"].unique()))
    if absent.empty:
        return []
    shown = ", ".join(str(b) for b in absent[:10])
    more = f" and {len(absent) - 10} more" if len(absent) > 10 else ""
    return [
        f"{sources['stage_history']}: {len(absent)} buyer(s) in stage_history have no accepted "
        f"interactions in {sources['interactions']}: {shown}{more}. They have stage labels "
        "but no features; check that both tables come from the same export"
    ]
