"""A simulated CRM export with a known true Buying Stage path: demos, tests, benchmarks.

Each buyer enters the funnel at the first stage on a random day, then moves through a
hidden Markov-ish world, day by day: a stage-specific daily hazard (faster after a
recent seller touch) moves them on, a small hazard makes them go quiet (no more
progress, activity decays), a rarer one sends them one stage back; the last stage is
absorbing. Inbound activity is drawn per stage episode from overlapping stage mixes
(see :mod:`stageml.data.world`); the CRM's ``stage_history`` is the true path
recorded late, sometimes wrong, sometimes not at all.

Time conventions: the export is taken at the instant ``end``; every timestamp ``t``
satisfies ``start <= t < end``, is UTC (naive) and has whole seconds. Buyers live in
regions with their own UTC offset, so events fall at local office/evening hours.

Work is vectorised over buyers; the only Python loops are over days and blocks. Output is
generated in blocks of ``chunk_buyers`` buyers, block ``i`` seeded by
``SeedSequence(seed).spawn(...)[i]``, so :func:`simulate` and :func:`simulate_to_folder`
give identical tables for the same seed and block size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from stageml.config import DEFAULT_STAGES
from stageml.data.buyer_events import (
    BUYER_SHIFT,
    buyer_events,
    draw_buyers,
    event_key,
    label_column,
    stamp_column,
    text_column,
    true_path,
)
from stageml.data.crm_records import record_exits, record_history
from stageml.data.io import atomic_path, find_table, write_table
from stageml.data.trial import trial_tables
from stageml.data.world import (
    DAY,
    INBOUND_HOURS,
    Steps,
    World,
    WorldParams,
    at_hour,
    build_world,
    draw_activities,
    walk,
)
from stageml.errors import ConfigError

DEFAULT_START = "2025-01-01"
DEFAULT_END = "2026-06-30"
FORMATS = ("parquet", "csv")
TABLE_NAMES = ("interactions", "buyers", "stage_history", "truth")
# Written only with a randomised arm: the trial log (who got which touch when, as an
# experiment platform would keep it) and the touch truth (never read by the product).
TRIAL_TABLES = ("trial", "touch_truth")


@dataclass(frozen=True)
class SimulatedExport:
    """The four tables of a simulated export (``truth`` is never read by the product).

    ``truth`` has one row per true stage entry plus ``quiet_at``: when the buyer went
    quiet (NaT if never), repeated on each of the buyer's rows. With a randomised arm,
    ``trial`` has ``buyer_id``, ``assigned_at`` (midnight UTC of the trial day: the as-of
    instant) and ``touch`` ("none" for the control); ``touch_truth`` adds the true
    ``stage`` then and ``lift_<touch>``, the true lift of each candidate touch
    (:func:`stageml.data.world.true_lift`).
    """

    interactions: pd.DataFrame
    buyers: pd.DataFrame
    stage_history: pd.DataFrame
    truth: pd.DataFrame
    trial: pd.DataFrame | None = None
    touch_truth: pd.DataFrame | None = None


def simulate(
    n_buyers: int,
    *,
    seed: int,
    stages: Sequence[str] = DEFAULT_STAGES,
    start: str | pd.Timestamp = DEFAULT_START,
    end: str | pd.Timestamp = DEFAULT_END,
    params: WorldParams | None = None,
    chunk_buyers: int = 200_000,
    exits: Sequence[str] = (),
) -> SimulatedExport:
    """Simulate ``n_buyers`` buyers in memory; same arguments give identical frames.

    Parameters
    ----------
    n_buyers
        Number of buyers (ids ``B000001`` ...).
    seed
        Root seed; the only source of randomness.
    stages
        Ordered taxonomy (at least two stages); the last one is absorbing.
    exits
        Terminal exits the CRM records for buyers who went quiet (see
        :func:`~stageml.data.crm_records.record_exits`); none by default.
    start, end
        The export window ``[start, end)``; buyers enter on days inside it.
    params
        World knobs; defaults to :class:`~stageml.data.world.WorldParams`.
    chunk_buyers
        Buyers per independently seeded block; keep equal to compare with
        :func:`simulate_to_folder`.

    Raises
    ------
    ConfigError
        For a taxonomy of fewer than two unique stages, a window shorter than 7 days, an
        unreadable date, or a non-positive number of buyers or block size.

    """
    parts = list(_blocks(n_buyers, seed, stages, start, end, params, chunk_buyers, exits))
    return SimulatedExport(
        *(
            None
            if getattr(parts[0], f.name) is None
            else pd.concat([getattr(p, f.name) for p in parts], ignore_index=True)
            for f in fields(SimulatedExport)
        )
    )


def write_export(
    export: SimulatedExport, out: str | Path, *, fmt: str = "parquet"
) -> dict[str, Path]:
    """Write the tables as ``<out>/<name>.<fmt>``, each atomically (the trial's if any)."""
    trial = export.trial is not None
    return {
        name: write_table(getattr(export, name), path)
        for name, path in _targets(out, fmt, trial=trial).items()
    }


def simulate_to_folder(
    n_buyers: int,
    *,
    seed: int,
    out: str | Path,
    fmt: str = "parquet",
    chunk_buyers: int = 200_000,
    **kw: Any,
) -> dict[str, Path]:
    """Simulate block by block straight into files, so memory follows ``chunk_buyers``.

    Each table is appended to a temp file beside its target and renamed only when all
    blocks are written. ``kw`` are passed on to the simulation (stages, start, end,
    params). The tables equal ``simulate(n_buyers, seed=seed, chunk_buyers=...)``.
    """
    params = kw.get("params")
    paths = _targets(out, fmt, trial=params is not None and params.randomised_share > 0)
    with ExitStack() as stack:
        tmps = {name: stack.enter_context(atomic_path(p)) for name, p in paths.items()}
        writers: dict[str, pq.ParquetWriter] = {}
        for i, part in enumerate(_blocks(n_buyers, seed, chunk_buyers=chunk_buyers, **kw)):
            for name in paths:
                frame: pd.DataFrame = getattr(part, name)
                if fmt == "csv":
                    frame.to_csv(
                        tmps[name], mode="w" if i == 0 else "a", header=i == 0, index=False
                    )
                    continue
                if name not in writers:
                    schema = pa.Schema.from_pandas(frame, preserve_index=False)
                    # Entered after the temp paths, so closed before they are renamed.
                    writers[name] = stack.enter_context(pq.ParquetWriter(tmps[name], schema))
                writer = writers[name]
                writer.write_table(
                    pa.Table.from_pandas(frame, schema=writer.schema, preserve_index=False)
                )
    return paths


def summarize_folder(folder: str | Path) -> dict[str, Any]:
    """Headline figures of a written export, read column by column to keep memory low.

    Returns buyers, interactions, first/last interaction, the true stage of each buyer at
    the export end (``stage_at_end``, stage -> buyers), the share of buyers who went
    quiet and the share with any recorded stage history.
    """
    found = {name: find_table(folder, name) for name in TABLE_NAMES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise ConfigError(f"{folder}: no table(s) {missing}. Fix: run `stageml simulate` first")
    tables = {name: path for name, path in found.items() if path is not None}
    n_buyers = _scan(tables["buyers"], "buyer_id")[0]
    n_events, first, last = _scan(tables["interactions"], "occurred_at")
    truth = _read_columns(tables["truth"], ["buyer_id", "stage", "quiet_at"])
    current = truth.groupby("buyer_id", sort=False).last()  # rows are in time order
    recorded = _read_columns(tables["stage_history"], ["buyer_id"])["buyer_id"].nunique()
    return {
        "buyers": n_buyers,
        "interactions": n_events,
        "first_interaction": first,
        "last_interaction": last,
        "stage_at_end": {k: int(v) for k, v in current["stage"].value_counts().items()},
        "quiet_share": float(pd.to_datetime(current["quiet_at"]).notna().mean()),
        "recorded_share": recorded / max(n_buyers, 1),
    }


def _dataset(path: Path) -> ds.Dataset:
    return ds.dataset(path, format="csv" if path.suffix == ".csv" else "parquet")


def _scan(path: Path, column: str) -> tuple[int, Any, Any]:
    rows, lo, hi = 0, None, None
    for batch in _dataset(path).scanner(columns=[column]).to_batches():
        rows += batch.num_rows
        if batch.num_rows:
            bounds = pc.min_max(batch.column(0)).as_py()
            lo = bounds["min"] if lo is None else min(lo, bounds["min"])
            hi = bounds["max"] if hi is None else max(hi, bounds["max"])
    return rows, lo, hi


def _read_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    return _dataset(path).to_table(columns=columns).to_pandas()


def _targets(out: str | Path, fmt: str, *, trial: bool = False) -> dict[str, Path]:
    """Output paths; refuses a folder that already holds the tables in the other format.

    Readers take ``<name>.parquet`` or ``<name>.csv`` and reject a folder with both, so
    writing one format beside stale files of the other would leave an unreadable export.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}; expected one of {list(FORMATS)}")
    folder = Path(out)
    stale = [
        folder / f"{name}.{other}"
        for name in TABLE_NAMES
        for other in FORMATS
        if other != fmt and (folder / f"{name}.{other}").exists()
    ]
    if stale:
        raise ConfigError(
            f"{folder} already holds {', '.join(p.name for p in stale)}. Fix: remove them, "
            f"choose another --out, or write --format {stale[0].suffix[1:]}"
        )
    names = TABLE_NAMES + (TRIAL_TABLES if trial else ())
    return {name: folder / f"{name}.{fmt}" for name in names}


def _instant(value: str | pd.Timestamp, name: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}={value!r} is not a date. Fix: use e.g. 2026-06-30") from exc
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _blocks(
    n_buyers: int,
    seed: int,
    stages: Sequence[str] = DEFAULT_STAGES,
    start: str | pd.Timestamp = DEFAULT_START,
    end: str | pd.Timestamp = DEFAULT_END,
    params: WorldParams | None = None,
    chunk_buyers: int = 200_000,
    exits: Sequence[str] = (),
) -> Iterator[SimulatedExport]:
    t0, t1 = _instant(start, "start"), _instant(end, "end")
    if t1 - t0 < pd.Timedelta(days=7):
        raise ConfigError(f"start={t0} must be at least 7 days before end={t1}")
    if n_buyers < 1 or chunk_buyers < 1:
        raise ConfigError(
            f"n_buyers ({n_buyers}) and chunk_buyers ({chunk_buyers}) must be positive"
        )
    world, knobs = build_world(stages), params or WorldParams()
    n_blocks = -(-n_buyers // chunk_buyers)
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n_blocks)):
        first = i * chunk_buyers
        size = min(chunk_buyers, n_buyers - first)
        yield _simulate_block(
            np.random.default_rng(child), first, size, world, knobs, t0, t1, tuple(exits)
        )


def _simulate_block(
    rng: np.random.Generator,
    first_id: int,
    n: int,
    world: World,
    knobs: WorldParams,
    t0: pd.Timestamp,
    t1: pd.Timestamp,
    exits: tuple[str, ...] = (),
) -> SimulatedExport:
    span = int((t1 - t0).total_seconds())
    n_days = span // DAY
    pop = draw_buyers(rng, first_id, n, knobs)
    entry_day = rng.integers(1, n_days - 1, n)
    entry = at_hour(rng, entry_day, pop.offset, INBOUND_HOURS)
    walked = walk(
        rng,
        world,
        knobs,
        entry_day=entry_day,
        n_days=n_days,
        speed=pop.speed,
        seller=pop.seller,
        weekday0=t0.day_of_week,
    )
    truth, quiet = true_path(rng, entry, walked, pop.offset, span)
    key, chosen = buyer_events(
        rng, world, knobs, pop, entry, truth, quiet, walked, span, t0.day_of_week
    )
    buyer, seconds, outbound = key >> BUYER_SHIFT, (key >> 1) & (2**32 - 1), (key & 1) == 1
    stage = truth.stage[np.searchsorted(event_key(truth.buyer, truth.at), key, side="right") - 1]
    activity = draw_activities(rng, world, stage, outbound)
    activity = np.where(chosen >= 0, chosen, activity)  # touches whose effect the walk used
    history = record_history(
        rng, truth, n_buyers=n, n_stages=len(world.stages), span=span, knobs=knobs
    )

    def ids(rows: np.ndarray) -> pd.Series:
        return text_column(pop.ids.take(pa.array(rows)))

    interactions = pd.DataFrame(
        {
            "buyer_id": ids(buyer),
            "occurred_at": stamp_column(t0, seconds),
            "activity": label_column(world.activities, activity),
            "channel": label_column(world.channels, activity),
            "direction": label_column(("inbound", "outbound"), outbound.astype(np.int64)),
        }
    )
    went_quiet = quiet[truth.buyer]
    truth_frame = pd.DataFrame(
        {
            "buyer_id": ids(truth.buyer),
            "stage": label_column(world.stages, truth.stage),
            "entered_at": stamp_column(t0, truth.at),
            "quiet_at": stamp_column(t0, went_quiet).where(went_quiet < span),
        }
    )
    closed = record_exits(
        rng,
        truth,
        quiet,
        n_exits=len(exits),
        n_stages=len(world.stages),
        span=span,
        knobs=knobs,
    )
    records = Steps(*(np.r_[a, b] for a, b in zip(history, closed, strict=True)))
    order = np.argsort(event_key(records.buyer, records.at), kind="stable")
    stage_history = pd.DataFrame(
        {
            "buyer_id": ids(records.buyer[order]),
            "stage": label_column(world.stages + exits, records.stage[order]),
            "entered_at": stamp_column(t0, records.at[order]),
        }
    )
    trial = touch_truth = None
    if walked.trial is not None and knobs.randomised_share > 0:
        enrolled = walked.trial.buyer
        trial, touch_truth = trial_tables(
            world, knobs, walked.trial, buyer_ids=ids(enrolled), speed=pop.speed[enrolled], t0=t0
        )
    return SimulatedExport(interactions, pop.frame, stage_history, truth_frame, trial, touch_truth)
