"""Turn real public exports into stageml's data contract, with their own params.yaml.

One mechanism for every kind: read the raw source files, run the kind's *mapping* (a pure
function from the raw frames to contract frames plus rejected rows), derive the stage
history from the activities that mark stages, write the tables, ``import_rejects.csv`` and
a ``params.yaml`` holding the dataset's own taxonomy, windows, horizon and snapshot step,
then validate the result as every stageml command would.

Rows that cannot be mapped honestly are rejected with a reason, never repaired. For every
source file holding one row per buyer or buyer event, ``accepted + rejected == input
rows`` (a row is accepted when at least one interaction comes from it), so every source
buyer is either in the written interactions or in the rejects. The leakage rules are part
of each mapping and written down below; the same text is returned as
:attr:`ImportResult.mapping_doc` for the README.

Rules shared by every kind:

* **Timestamps** are written as UTC with an explicit offset. A date without a time is
  placed at midnight of that date in the time zone stated per kind (the earliest instant
  it can have happened).
* **Stages** are marked by activities (``Importer.stage_of``). The stage history records,
  per buyer, the first instant of every new furthest stage of the ordered taxonomy (a
  step back is not recorded). Every recorded stage change is thus the instant of one of
  the buyer's interactions (:func:`coincidence_rate` = 1): the current stage is readable
  from the history, and the honest task is the *inflection* of buyers who can still
  advance. Kinds whose source records an exit (Maven's lost deals) map it to a terminal
  exit (``Importer.exits``, written to params as ``exits``) at that event's instant.
* **Snapshots** in the generated params start at the later of (first instant + warmup)
  and the first recorded entry into the last stage: before it the export holds no outcome
  at all, so every earlier label would be a 0 by coverage, not by behaviour. They end one
  horizon before the last instant (no test label is censored), or at the last arrival of a
  new buyer when the export stops recording arrivals long before outcomes (Olist).
  ``train.valid_fraction`` is raised where needed so that at least three validation
  instants survive purging.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from stageml.config import Params, load_params
from stageml.data.importers.common import (
    PARAMS_FILE,
    REJECT_COLUMNS,
    REJECTS_FILE,
    ROW_COLUMN,
    SOURCE_COLUMN,
    Importer,
    ImportResult,
    Mapped,
    Source,
    stage_history,
)
from stageml.data.importers.maven import IMPORTER as MAVEN
from stageml.data.importers.maven import MAVEN_DOC
from stageml.data.importers.olist import IMPORTER as OLIST
from stageml.data.importers.olist import OLIST_DOC
from stageml.data.importers.taobao import IMPORTER as TAOBAO
from stageml.data.importers.taobao import TAOBAO_DOC
from stageml.data.io import SUFFIXES, TABLES, atomic_path, write_table
from stageml.data.span import coincidence_rate, snapshot_dates
from stageml.data.validate import TableReport, load_export
from stageml.durations import format_duration, parse_duration
from stageml.errors import ConfigError, ContractError, StageMLError

IMPORTERS: dict[str, Importer] = {i.kind: i for i in (TAOBAO, OLIST, MAVEN)}


def mapping_doc(kind: str) -> str:
    """Return the Markdown description of one importer's mapping."""
    return _importer(kind).doc


def _importer(kind: str) -> Importer:
    if kind not in IMPORTERS:
        raise ConfigError(f"unknown import kind {kind!r}. Fix: use one of {sorted(IMPORTERS)}")
    return IMPORTERS[kind]


# --- reading, writing and checking -----------------------------------------------------


def _read_source(src: Path, spec: Source) -> tuple[Path, pd.DataFrame]:
    """Read one raw file, every column as text (ids such as ``00042`` stay as they are)."""
    found = [src / name for name in spec.files if (src / name).is_file()]
    if not found:
        raise ContractError(
            file=str(src),
            problem=f"none of {list(spec.files)} is in the folder",
            fix="pass --src the folder holding the original files of this data set",
        )
    options: dict[str, Any] = {"dtype": "string", "keep_default_na": False, "na_values": [""]}
    frame = pd.read_csv(found[0], **options)
    if spec.header_optional and str(frame.columns[0]).strip().isdigit():
        frame = pd.read_csv(found[0], header=None, names=list(spec.columns), **options)
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise ContractError(
            file=str(found[0]),
            column=", ".join(missing),
            problem=f"required column missing; the file has {[str(c) for c in frame.columns]}",
            fix="use the data set's original file (column names as published)",
        )
    return found[0], frame


def _refuse_stale(out: Path, suffix: str, writing: set[str]) -> None:
    """Refuse a contract table left by another import: stageml would read it with ours."""
    for name in TABLES:
        for other in SUFFIXES:
            path = out / f"{name}{other}"
            if path.exists() and (name not in writing or other != suffix):
                raise ContractError(
                    file=str(path),
                    problem="the output folder already holds a table this "
                    "import would not overwrite, and stageml would read it with the new ones",
                    fix="import into an empty folder, or delete that file first",
                )


def _account(
    importer: Importer,
    paths: Mapping[str, Path],
    raw: Mapping[str, pd.DataFrame],
    mapped: Mapped,
) -> tuple[TableReport, ...]:
    """Check that every counted source row is accepted or rejected, never both."""
    reports = []
    for spec in (s for s in importer.sources if s.counted):
        n = len(raw[spec.name])
        used = set(
            mapped.interactions.loc[mapped.interactions[SOURCE_COLUMN] == spec.name, ROW_COLUMN]
        )
        rejected = mapped.rejects[mapped.rejects["source"] == spec.name]
        dropped = set(rejected["row"])
        if used & dropped or len(used) + len(dropped) != n or len(dropped) != len(rejected):
            raise StageMLError(
                f"importer bug ({importer.kind}, {paths[spec.name]}): {len(used):,} rows used "
                f"and {len(dropped):,} rejected do not partition the {n:,} input rows"
            )
        reports.append(
            TableReport(
                table=spec.name,
                path=str(paths[spec.name]),
                input_rows=n,
                accepted_rows=len(used),
                rejected={str(k): int(v) for k, v in rejected["reason"].value_counts().items()},
            )
        )
    return tuple(reports)


def _derived_params(
    interactions: pd.DataFrame, history: pd.DataFrame, importer: Importer, seed: int
) -> dict[str, Any]:
    """Build params.yaml: the kind's own settings plus snapshot bounds fitted to the data.

    See the module docstring for the rules behind ``snapshots.start``/``end`` and
    ``train.valid_fraction``.
    """
    stamps = pd.concat([interactions["occurred_at"], history["entered_at"]])
    outcome = history.loc[history["stage"] == importer.stages[-1], "entered_at"]
    start = stamps.min() + parse_duration(importer.params["snapshots"]["warmup"])
    if len(outcome):
        start = max(start, outcome.min())
    end = stamps.max() - parse_duration(importer.params["labels"]["horizon"])
    if importer.arrival is not None:
        end = min(
            end, interactions.loc[interactions["activity"] == importer.arrival, "occurred_at"].max()
        )
    raw: dict[str, Any] = {
        "stages": list(importer.stages),
        "exits": list(importer.exits),
        "seed": seed,
        **importer.params,
        "snapshots": {
            **importer.params["snapshots"],
            "start": str(pd.Timestamp(start)),
            "end": str(pd.Timestamp(end)),
        },
    }
    params = Params.model_validate(raw)
    try:
        instants = snapshot_dates(params, stamps.min(), stamps.max())
    except ConfigError as exc:
        raise ConfigError(
            f"{importer.kind}: the data spans {stamps.min()} to {stamps.max()}, too short for "
            f"warmup {format_duration(params.snapshots.warmup)} and horizon "
            f"{format_duration(params.labels.horizon)} with as-of instants left between "
            f"{start} and {end}. Fix: import the complete data set"
        ) from exc
    # time_split purges validation instants whose label window reaches the test period;
    # a validation period shorter than the horizon would be purged empty.
    reach = params.labels.horizon + params.labels.label_delay
    purged = math.ceil(reach / params.snapshots.every)
    needed = math.ceil(100 * (purged + 2) / len(instants)) / 100
    raw["train"] = {
        "valid_fraction": max(params.train.valid_fraction, needed),
        "test_fraction": params.train.test_fraction,
    }
    return raw


def _params_text(importer: Importer, params: Mapping[str, Any]) -> str:
    header = (
        f"# stageml parameters for the '{importer.kind}' import (written by `stageml import`).\n"
        "# snapshots.start: the later of first instant + warmup and the first recorded entry\n"
        "# into the last stage (no outcome is recorded before it). snapshots.end: one horizon\n"
        "# before the last instant (no censored test label), or the last arrival of a new\n"
        "# buyer where the export stops recording arrivals early. train.valid_fraction: at\n"
        "# least 3 validation instants survive purging. Times are UTC.\n"
    )
    body: str = yaml.safe_dump(dict(params), sort_keys=False)
    return header + body


def _utc_aware(frame: pd.DataFrame) -> pd.DataFrame:
    """Write naive UTC timestamps with an explicit offset, so no reader guesses a zone."""
    out = frame.copy()
    for column in ("occurred_at", "entered_at"):
        if column in out:
            out[column] = pd.to_datetime(out[column]).dt.tz_localize("UTC")
    return out


def import_export(
    kind: str, src: Path, out: Path, *, fmt: str = "csv", seed: int = 7
) -> ImportResult:
    """Map a real public data set onto the data contract and write it with its params.

    Parameters
    ----------
    kind
        One of :data:`IMPORTERS` (``taobao``, ``olist``, ``maven``).
    src
        Folder holding the data set's original files (only read).
    out
        Folder to write ``interactions``, ``stage_history``, optional ``buyers``,
        ``import_rejects.csv`` and ``params.yaml`` into. It must not hold contract tables
        this import would not overwrite.
    fmt
        ``csv`` or ``parquet`` for the contract tables (the rejects are always CSV).
    seed
        The ``seed`` written to params.yaml.

    Returns
    -------
    ImportResult
        Files, rows written, row accounting per source, coincidence rate and mapping doc.

    Raises
    ------
    ConfigError
        For an unknown kind or format.
    ContractError
        When a source file or column is missing, or ``out`` holds a stale table.

    """
    importer = _importer(kind)
    suffix = f".{fmt}"
    if suffix not in SUFFIXES:
        raise ConfigError(f"unknown format {fmt!r}. Fix: use csv or parquet")
    src, out = Path(src), Path(out)
    read = {spec.name: _read_source(src, spec) for spec in importer.sources}
    raw = {name: frame for name, (_, frame) in read.items()}
    paths = {name: path for name, (path, _) in read.items()}
    mapped = importer.mapping(raw)
    reports = _account(importer, paths, raw, mapped)
    interactions = mapped.interactions.drop(columns=[SOURCE_COLUMN, ROW_COLUMN])
    history = stage_history(interactions, importer.stage_of, importer.stages, importer.exits)
    tables = {"interactions": interactions, "stage_history": history}
    if mapped.buyers is not None:
        tables["buyers"] = mapped.buyers
    out.mkdir(parents=True, exist_ok=True)
    _refuse_stale(out, suffix, set(tables))
    written = {
        name: write_table(_utc_aware(frame), out / f"{name}{suffix}")
        for name, frame in tables.items()
    }
    names = {name: path.name for name, path in paths.items()}
    rejects = mapped.rejects.assign(source=mapped.rejects["source"].map(names))
    rejects_path = write_table(rejects[list(REJECT_COLUMNS)], out / REJECTS_FILE)
    params_path = out / PARAMS_FILE
    with atomic_path(params_path) as tmp:
        tmp.write_text(
            _params_text(importer, _derived_params(interactions, history, importer, seed))
        )
    settings = load_params(params_path)
    export = load_export(out, stages=settings.recorded_stages, require_stage_history=True)
    if len(export.rejects):
        raise StageMLError(
            f"importer bug ({kind}): the written export in {out} has {len(export.rejects):,} "
            "rows the contract rejects; the mapping must reject them itself"
        )
    return ImportResult(
        kind=kind,
        out=out,
        tables=written,
        rows={k: len(v) for k, v in tables.items()},
        sources=reports,
        rejects=rejects_path,
        params=params_path,
        coincidence_rate=coincidence_rate(export),
        mapping_doc=importer.doc,
    )


__doc__ = "\n".join([__doc__ or "", TAOBAO_DOC, OLIST_DOC, MAVEN_DOC])
