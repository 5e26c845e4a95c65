"""Training snapshots: features and labels at many as-of instants, in one table."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from stageml.config import Params
from stageml.data.span import data_span, snapshot_dates
from stageml.features.engine import KEYS, build_features
from stageml.features.stage_history import add_stage_features
from stageml.features.vocabulary import Vocabulary
from stageml.models.labels import build_labels


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
    features = add_stage_features(features, stage_history, params)
    labels = build_labels(
        features[list(KEYS)],
        stage_history,
        stages=params.stages,
        config=params.labels,
        data_end=end,
        exits=params.exits,
    )
    return pd.concat([features, labels.drop(columns=list(KEYS))], axis=1)
