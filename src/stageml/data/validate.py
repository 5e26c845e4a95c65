"""Load a CRM export and check it against the data contract.

Two kinds of problem are handled differently, because they call for different repairs:

* **Contract problems** mean the export itself is wrong: a missing file or required
  column, an empty table, a timestamp column mostly unparseable or written month-first,
  stage names outside the taxonomy, duplicate buyer ids. They raise
  :class:`~stageml.errors.ContractError` naming the file, column, first rows and the fix,
  since any model built on such an export would be silently wrong.
* **Row problems** (a null id, one unparseable timestamp, a null activity, an invalid
  direction, a row dated after its file was written, an exact duplicate interaction or
  stage row, a stage row contradicted by a later-listed one at the same instant) affect
  single rows. Those rows are skipped and
  recorded in the rejects table with a reason, so every input row is accounted for:
  ``accepted + rejected == input rows`` for every table.

Row numbers, everywhere (messages and the rejects table), are 1-based data rows in file
order; the header is not counted, so "row 3" is the third data row of the file. How messy
CSVs are read (encoding, separator, ragged rows) is :func:`stageml.data.io.read_table`'s
business; the row checks themselves live in :mod:`stageml.data.checks`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from stageml.config import DEFAULT_STAGES
from stageml.data.checks import Checked, check_buyers, check_interactions, check_stage_history
from stageml.data.contract import (
    RECORDED_AT,
    REQUIRED_COLUMNS,
    BuyersSchema,
    Export,
    InteractionsSchema,
    StageHistorySchema,
    TableReport,
    column_schema,
    exactly,
)
from stageml.data.io import TABLES, find_table, read_table, write_table
from stageml.data.pandera_quiet import pa
from stageml.data.parse import (
    ROWS_NOTE,
    SHOWN,
    STRING,
    TIMESTAMP,
)
from stageml.errors import ContractError

# Re-exported: callers import the result types from the module that produces them.
__all__ = [
    "RECORDED_AT",
    "SOURCE_ROW",
    "STRING",
    "Export",
    "InteractionsSchema",
    "StageHistorySchema",
    "TableReport",
    "load_export",
    "summary_table",
    "validate_frames",
    "write_rejects",
]


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
    checkers: dict[str, Callable[[pd.DataFrame, str], Checked]] = {
        "interactions": check_interactions,
        "buyers": check_buyers,
        "stage_history": lambda frame, file: check_stage_history(frame, file, tuple(stages)),
    }
    schemas = {
        "interactions": InteractionsSchema,
        "buyers": BuyersSchema,
        "stage_history": StageHistorySchema.update_column(
            "stage", checks=[exactly(STRING), pa.Check.isin(list(stages))]
        ),
    }
    if "stage_history" in raw and RECORDED_AT in raw["stage_history"].columns:
        schemas["stage_history"] = schemas["stage_history"].add_columns(
            {RECORDED_AT: column_schema(TIMESTAMP, nullable=True)}
        )
    checked: dict[str, Checked] = {}
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


def _require_accepted(checked: Checked, file: str) -> None:
    # Every row rejected is a format problem (wrong column filled, say), not bad luck.
    if (checked.reason < 0).any():
        return
    counts = np.bincount(checked.reason, minlength=len(checked.reasons))
    found = ", ".join(f"{r}: {c}" for r, c in zip(checked.reasons, counts, strict=True) if c)
    raise ContractError(
        file=file,
        rows=list(range(1, min(len(checked.reason), SHOWN) + 1)),
        problem=f"none of the {len(checked.reason):,} rows passed the row checks ({found}) "
        f"{ROWS_NOTE}",
        fix="check that the columns hold what the data contract says (see README)",
    )


def _report(table: str, path: str, checked: Checked) -> TableReport:
    rejected = checked.reason[checked.reason >= 0]
    counts = np.bincount(rejected, minlength=len(checked.reasons))
    return TableReport(
        table=table,
        path=path,
        input_rows=len(checked.reason),
        accepted_rows=len(checked.clean),
        rejected={r: int(c) for r, c in zip(checked.reasons, counts, strict=True) if c},
    )


def _rejects(table: str, checked: Checked, source_rows: np.ndarray | None = None) -> pd.DataFrame:
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


def _warnings(checked: Mapping[str, Checked], sources: Mapping[str, Path]) -> list[str]:
    if "stage_history" not in checked:
        return []
    history = checked["stage_history"]
    warnings = []
    counts = np.bincount(history.reason[history.reason >= 0], minlength=len(history.reasons))
    repeats = dict(zip(history.reasons, counts.tolist(), strict=True))
    if repeats["duplicate_stage_row"] or repeats["conflicting_stage_row"]:
        warnings.append(
            f"{sources['stage_history']}: {repeats['duplicate_stage_row']} exact repeat(s) of "
            f"a stage row and {repeats['conflicting_stage_row']} row(s) contradicted by a "
            "later-listed row (same buyer_id and entered_at, an earlier stage: the later-listed "
            "row wins) were set aside (see the rejects file)"
        )
    labelled = pd.Index(history.clean["buyer_id"].unique())
    absent = labelled.difference(pd.Index(checked["interactions"].clean["buyer_id"].unique()))
    if not absent.empty:
        shown = ", ".join(str(b) for b in absent[:10])
        more = f" and {len(absent) - 10} more" if len(absent) > 10 else ""
        warnings.append(
            f"{sources['stage_history']}: {len(absent)} buyer(s) in stage_history have no "
            f"accepted interactions in {sources['interactions']}: {shown}{more}. They have "
            "stage labels but no features; check that both tables come from the same export"
        )
    return warnings
