"""What an export covers in time: its span, its as-of schedule, its stage-change timing.

Facts about the export alone, used by importers, training and scoring alike.
"""

from __future__ import annotations

import math

import pandas as pd

from stageml.config import Params
from stageml.data.validate import Export
from stageml.errors import ConfigError


def data_span(
    interactions: pd.DataFrame, stage_history: pd.DataFrame | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last instant the export covers (interactions and recorded stages)."""
    stamps = [interactions["occurred_at"].min(), interactions["occurred_at"].max()]
    if stage_history is not None and not stage_history.empty:
        stamps += [stage_history["entered_at"].min(), stage_history["entered_at"].max()]
    return pd.Timestamp(min(stamps)), pd.Timestamp(max(stamps))


def snapshot_dates(params: Params, start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    """As-of instants every ``snapshots.every`` from ``start + warmup`` up to ``end``.

    Instants are aligned to midnight UTC when the step is whole days, which keeps the
    feature engine's time buckets a day wide (and the computation cheap).
    """
    config = params.snapshots
    first = config.start if config.start is not None else start + config.warmup
    last = config.end if config.end is not None else end
    if config.every % pd.Timedelta(days=1) == pd.Timedelta(0):
        first = first.ceil("D")
    else:
        first = first.ceil(config.every)
    if first > last:
        raise ConfigError(
            f"snapshots: the first as-of instant {first} is after the last {last}. Fix: lower "
            "snapshots.warmup or set snapshots.start/end inside the data's span"
        )
    return list(pd.date_range(first, last, freq=config.every))


def coincidence_rate(export: Export) -> float:
    """Share of recorded stage changes at the same instant as one of the buyer's interactions.

    Near 1 means the stage history is written from the interaction log itself: the
    current stage can be read off the history, and the open question is the inflection.
    NaN when the export has no stage history.
    """
    history = export.stage_history
    if history is None or history.empty:
        return math.nan
    seen = export.interactions[["buyer_id", "occurred_at"]].drop_duplicates()
    matched = history.merge(
        seen,
        left_on=["buyer_id", "entered_at"],
        right_on=["buyer_id", "occurred_at"],
        how="left",
        indicator=True,
    )
    return float((matched["_merge"] == "both").mean())
