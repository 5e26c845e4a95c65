"""Training snapshots: features and labels at many as-of instants, in one table."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from stageml.config import Params
from stageml.errors import ConfigError
from stageml.features.engine import KEYS, build_features
from stageml.features.vocabulary import Vocabulary
from stageml.models.labels import build_labels


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


def build_snapshots(
    interactions: pd.DataFrame,
    stage_history: pd.DataFrame,
    *,
    params: Params,
    vocabulary: Vocabulary,
    buyers: pd.DataFrame | None = None,
    as_of: list[pd.Timestamp] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Features + labels for every buyer at every snapshot instant.

    Rows keep unlabeled and censored examples (labels <NA>); the trainer decides which to
    use for which model.
    """
    start, end = data_span(interactions, stage_history)
    instants = as_of if as_of is not None else snapshot_dates(params, start, end)
    features = build_features(
        interactions,
        instants,
        vocabulary=vocabulary,
        config=params.features,
        buyers=buyers,
        progress=progress,
    )
    labels = build_labels(
        features[list(KEYS)],
        stage_history,
        stages=params.stages,
        config=params.labels,
        data_end=end,
    )
    return pd.concat([features, labels.drop(columns=list(KEYS))], axis=1)
