"""Fault injection: a simulated export written the way real CRM exports arrive.

:func:`write_messy` takes a clean :class:`~stageml.data.simulate.SimulatedExport` and
writes it as CSV carrying the faults that real exports carry (spreadsheet encodings,
separators and date formats, ragged and truncated rows, repeated and contradictory rows,
rows from the future). Faults that a row cannot survive are *added* rows, so the
product's clean tables must equal the clean export exactly (ids renamed to numeric
strings with leading zeros) and its rejects must equal the added rows, reason by reason.
The returned :class:`MessyExport` states both, for tests and for ``stageml simulate
--messy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from stageml.config import DEFAULT_STAGES
from stageml.data.io import atomic_path
from stageml.data.simulate import SimulatedExport

# Same instant, written with these local offsets (hours): +05:30 India, -05:00 US east.
_OFFSETS_H = (2.0, -5.0, 5.5)
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_FUTURE = pd.Timestamp("2099-01-01")
# Faults in the order the README's table lists them; each maps to what the export shows.
FAULTS: dict[str, str] = {
    "bom": "UTF-8 byte-order mark at the start of interactions.csv and buyers.csv",
    "semicolon": "';'-separated interactions.csv and stage_history.csv",
    "mixed_offsets": "the same instant written with +02:00, -05:00 and +05:30 offsets",
    "day_first": "dates written dd/mm/yyyy hh:mm:ss",
    "excel_serial": "dates written as Excel serial days (45292.5)",
    "leading_zeros": "numeric buyer ids with leading zeros (000042)",
    "name_variants": "activity, channel and stage names in other case, padded with spaces",
    "ragged_row": "a row with an extra trailing field",
    "bad_row": "a row with an unparseable timestamp in the middle of the file",
    "future": "interactions dated 2099, after the export was written",
    "duplicate_interactions": "exact repeats of interaction rows",
    "duplicate_stage_rows": "exact repeats of stage-history rows",
    "conflicting_stage_rows": "a stage row at the same buyer and instant, another stage, "
    "listed before the row that corrects it",
    "history_only_buyers": "buyers with stage history and no interactions",
    "truncated": "interactions.csv cut off in the middle of its last row",
}


@dataclass(frozen=True)
class MessyExport:
    """What :func:`write_messy` wrote and what a correct reader must make of it.

    Attributes
    ----------
    paths
        The CSV written per table.
    clean
        The tables a correct reader accepts: the clean export with the new ids, plus the
        stage rows of the history-only buyers. Interactions keep the contract's columns.
    rejected
        Per table, reason -> number of rows a correct reader rejects.
    injected
        Per fault of :data:`FAULTS`, how many rows (or files) carry it.

    """

    paths: dict[str, Path]
    clean: dict[str, pd.DataFrame]
    rejected: dict[str, dict[str, int]]
    injected: dict[str, int] = field(default_factory=dict)


def write_messy(
    export: SimulatedExport,
    out: str | Path,
    *,
    seed: int,
    stages: Sequence[str] = DEFAULT_STAGES,
    share: float = 0.02,
) -> MessyExport:
    """Write ``export`` into ``out`` as messy CSVs (each atomically); return the expectations.

    ``stages`` is the export's taxonomy. ``share`` of the rows carry each per-row fault (at
    least one row each); the row sets are disjoint and drawn from ``seed`` alone.
    """
    rng = np.random.default_rng(seed)
    folder = Path(out)
    ids = _numeric_ids(export)
    inter = export.interactions.assign(buyer_id=export.interactions["buyer_id"].map(ids))
    buyers = export.buyers.assign(buyer_id=export.buyers["buyer_id"].map(ids))
    history = export.stage_history.assign(buyer_id=export.stage_history["buyer_id"].map(ids))
    only = _history_only_buyers(history, len(ids))
    history = pd.concat([history, only], ignore_index=True)

    inter_text, inter_faults = _messy_interactions(inter, rng, share)
    history_text, history_faults = _messy_history(history, stages, rng, share)
    paths = {
        "interactions": _write(inter_text, folder / "interactions.csv", sep=";", bom=True),
        "buyers": _write(buyers, folder / "buyers.csv", sep=",", bom=True),
        "stage_history": _write(history_text, folder / "stage_history.csv", sep=";", bom=False),
    }
    # A copy killed mid-way ends inside a row: here after the minute's first digit, so the
    # row lacks its activity (a cut inside channel or direction would go unnoticed).
    cut = inter.iloc[0]
    with open(paths["interactions"], "a", encoding="utf-8") as handle:
        handle.write(f"{cut['buyer_id']};{cut['occurred_at']:%Y-%m-%d %H:%M:%S}"[:-4])
    injected = {
        "bom": 2,
        "semicolon": 2,
        "leading_zeros": len(ids),
        "history_only_buyers": len(only),
        "truncated": 1,
        **inter_faults,
    }
    for kind, count in history_faults.items():
        injected[kind] = injected.get(kind, 0) + count
    return MessyExport(
        paths=paths,
        clean={"interactions": inter, "buyers": buyers, "stage_history": history},
        rejected={
            "interactions": {
                "missing_activity": 1,  # the truncated row
                "unparseable_occurred_at": inter_faults["bad_row"],
                "occurred_after_export": inter_faults["future"],
                "duplicate_interaction": inter_faults["duplicate_interactions"],
            },
            "buyers": {},
            "stage_history": {
                "conflicting_stage_row": history_faults["conflicting_stage_rows"],
                "duplicate_stage_row": history_faults["duplicate_stage_rows"],
            },
        },
        injected={k: injected[k] for k in FAULTS},
    )


def _numeric_ids(export: SimulatedExport) -> dict[str, str]:
    """B000042 -> 000042: ids that look like numbers and lose their zeros if read as one."""
    ids = pd.Index(export.buyers["buyer_id"]).union(export.interactions["buyer_id"].unique())
    width = len(str(len(ids))) + 2
    return {b: str(i).zfill(width) for i, b in enumerate(sorted(ids), start=1)}


def _history_only_buyers(history: pd.DataFrame, n_known: int) -> pd.DataFrame:
    """Two buyers with a recorded stage and no interactions (a CRM import left them so)."""
    width = len(str(history["buyer_id"].iloc[0]))
    first = history.drop_duplicates("buyer_id").head(2)
    new_ids = [str(n_known + 1 + i).zfill(width) for i in range(len(first))]
    return first.assign(buyer_id=new_ids).reset_index(drop=True)


def _picks(
    rng: np.random.Generator, n: int, share: float, kinds: Sequence[str]
) -> dict[str, np.ndarray]:
    """Disjoint sorted row positions per fault kind, ``share`` of ``n`` each (at least 1)."""
    k = max(1, round(share * n))
    order = rng.permutation(n)[: k * len(kinds)]
    return {kind: np.sort(order[i * k : (i + 1) * k]) for i, kind in enumerate(kinds)}


def _iso(stamps: pd.Series) -> pd.Series:
    return stamps.dt.strftime("%Y-%m-%d %H:%M:%S").astype("string")


def _timestamps(
    stamps: pd.Series, rng: np.random.Generator, share: float
) -> tuple[pd.Series, dict[str, int]]:
    """ISO text, with offset, day-first and Excel-serial spellings of the same instants."""
    text = _iso(stamps)
    picks = _picks(rng, len(stamps), share, ("mixed_offsets", "day_first", "excel_serial"))
    rows = picks["mixed_offsets"]
    hours = np.asarray(_OFFSETS_H)[np.arange(len(rows)) % len(_OFFSETS_H)]
    local = stamps.iloc[rows] + pd.to_timedelta(hours, unit="h")
    offset = [f"{'-' if h < 0 else '+'}{int(abs(h)):02d}:{int(abs(h) % 1 * 60):02d}" for h in hours]
    text.iloc[rows] = local.dt.strftime("%Y-%m-%dT%H:%M:%S").to_numpy() + np.asarray(offset)
    rows = picks["day_first"]
    text.iloc[rows] = stamps.iloc[rows].dt.strftime("%d/%m/%Y %H:%M:%S").to_numpy()
    rows = picks["excel_serial"]
    days = (stamps.iloc[rows] - _EXCEL_EPOCH) / pd.Timedelta(days=1)
    text.iloc[rows] = [f"{d:.8f}" for d in days]
    return text, {kind: len(rows) for kind, rows in picks.items()}


def _variants(names: pd.Series, rows: np.ndarray) -> pd.Series:
    """Upper case, title case and padded spellings of the names at ``rows``."""
    out = names.astype("string").copy()
    spell = (str.upper, lambda s: f"  {s.title()} ", lambda s: f"{s} ")
    out.iloc[rows] = [spell[i % 3](str(v)) for i, v in enumerate(names.iloc[rows])]
    return out


def _messy_interactions(
    inter: pd.DataFrame, rng: np.random.Generator, share: float
) -> tuple[pd.DataFrame, dict[str, int]]:
    n = len(inter)
    picks = _picks(rng, n, share, ("name_variants", "ragged_row"))
    occurred_at, dates = _timestamps(inter["occurred_at"], rng, share)
    text = pd.DataFrame(
        {
            "buyer_id": inter["buyer_id"].astype("string"),
            "occurred_at": occurred_at,
            "activity": _variants(inter["activity"], picks["name_variants"]),
            "channel": _variants(inter["channel"], picks["name_variants"]),
            "direction": inter["direction"].astype("string"),
        }
    )
    # An extra trailing field is ignored (as extra columns are): the row is accepted.
    ragged = picks["ragged_row"]
    text.loc[ragged, "direction"] = text.loc[ragged, "direction"].fillna("") + ";see notes"
    added = _added_rows(text, rng, share)
    keys = np.concatenate(
        [np.arange(n, dtype=np.float64), rng.uniform(0, n, sum(len(a) for a in added.values()))]
    )
    # Added rows scattered through the file; the original rows keep their order.
    frame = pd.concat([text, *added.values()], ignore_index=True)
    frame = frame.iloc[np.argsort(keys, kind="stable")]
    counts = {**dates, "name_variants": len(picks["name_variants"]), "ragged_row": len(ragged)}
    return frame, {**counts, **{k: len(v) for k, v in added.items()}}


def _added_rows(
    text: pd.DataFrame, rng: np.random.Generator, share: float
) -> dict[str, pd.DataFrame]:
    """Rows that a reader must reject, as copies of existing rows with the fault applied."""
    picks = _picks(rng, len(text), share, ("duplicate_interactions", "future", "bad_row"))
    future = text.iloc[picks["future"]].copy()
    future["occurred_at"] = _iso(pd.Series(_FUTURE, index=future.index))
    bad = text.iloc[picks["bad_row"]].copy()
    bad["occurred_at"] = "not a date"
    # An exact repeat of an accepted row: the original is plain ISO text (not a fault row).
    return {
        "duplicate_interactions": text.iloc[picks["duplicate_interactions"]],
        "future": future,
        "bad_row": bad,
    }


def _messy_history(
    history: pd.DataFrame, stages: Sequence[str], rng: np.random.Generator, share: float
) -> tuple[pd.DataFrame, dict[str, int]]:
    n = len(history)
    picks = _picks(
        rng, n, share, ("name_variants", "duplicate_stage_rows", "conflicting_stage_rows")
    )
    entered_at, dates = _timestamps(history["entered_at"], rng, share)
    text = pd.DataFrame(
        {
            "buyer_id": history["buyer_id"].astype("string"),
            "stage": _variants(history["stage"], picks["name_variants"]),
            "entered_at": entered_at,
        }
    )
    repeats = text.iloc[picks["duplicate_stage_rows"]]
    # A contradicted row names a stage beyond the true one (the last stage's rows are left).
    beyond = picks["conflicting_stage_rows"]
    beyond = beyond[history["stage"].iloc[beyond].to_numpy() != stages[-1]]
    rank = {s: i for i, s in enumerate(stages)}
    wrong = text.iloc[beyond].copy()
    wrong["stage"] = [stages[rank[s] + 1] for s in history["stage"].iloc[beyond]]
    # A repeat follows its row; a contradicted row comes just before the row correcting it.
    order = np.concatenate(
        [
            np.arange(n, dtype=np.float64),
            picks["duplicate_stage_rows"] + 0.5,
            beyond - 0.5,
        ]
    )
    frame = pd.concat([text, repeats, wrong], ignore_index=True)
    frame = frame.iloc[np.argsort(order, kind="stable")]
    return frame, {
        **dates,
        "name_variants": len(picks["name_variants"]),
        "duplicate_stage_rows": len(repeats),
        "conflicting_stage_rows": len(wrong),
    }


def _write(frame: pd.DataFrame, path: Path, *, sep: str, bom: bool) -> Path:
    """Join the cells with ``sep`` and no quoting, as a careless export does."""
    cells = frame.astype("string").fillna("")
    line = cells.iloc[:, 0]
    for column in cells.columns[1:]:
        line = line + sep + cells[column]
    text = "\n".join([sep.join(map(str, frame.columns)), *line.tolist()]) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8-sig" if bom else "utf-8")
    return path


def injected_table(result: MessyExport, *, title: str) -> Table:
    """Per fault, the rows (or files) carrying it; then what a correct reader rejects."""
    table = Table(title=title)
    for column in ("fault", "rows or files", "what the export shows"):
        table.add_column(column, justify="right" if column == "rows or files" else "left")
    for fault, count in result.injected.items():
        table.add_row(fault, f"{count:,}", FAULTS[fault], end_section=fault == list(FAULTS)[-1])
    for name, reasons in result.rejected.items():
        for reason, count in reasons.items():
            table.add_row(f"{name}: {reason}", f"{count:,}", "rows a correct reader rejects")
    return table
