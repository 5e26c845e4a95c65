"""Labels per (buyer, as-of instant) from the CRM's recorded stage history.

Labels look at the recorded stage changes only; features (``features.py``) look at the
interactions strictly before t. Keeping them in separate modules makes a leakage review a
read of two files.

Conventions, with ``d`` the label delay and ``H`` the horizon:

* ``stage``: the last stage recorded with ``entered_at <= t + d``. Buyers with no recorded
  stage by then are unlabeled (<NA>), never assumed to be in the first stage. ``d > 0``
  compensates for CRMs that record a change days after it happened.
* ``inflection``: 1 if the buyer enters any stage later than ``stage`` within
  ``(t + d, t + d + H]``, else 0; <NA> when ``stage`` is unknown, or when the horizon runs
  past the end of the data (right-censored: we cannot know yet, which is not a "no").
* ``can_advance``: the stage is not the last one, so an inflection is possible at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stageml.config import LabelConfig


def stage_rank(stages: Sequence[str]) -> dict[str, int]:
    """Position of each stage in the ordered taxonomy."""
    return {name: i for i, name in enumerate(stages)}


def build_labels(
    points: pd.DataFrame,
    stage_history: pd.DataFrame,
    *,
    stages: Sequence[str],
    config: LabelConfig,
    data_end: pd.Timestamp,
) -> pd.DataFrame:
    """Stage and inflection labels for each (buyer_id, as_of) row of ``points``.

    Parameters
    ----------
    points
        Frame with ``buyer_id`` and ``as_of`` (one row per pair; other columns ignored).
    stage_history
        Validated recorded stage changes (``buyer_id``, ``stage``, ``entered_at``).
    stages
        The ordered taxonomy.
    config
        Horizon and label delay.
    data_end
        Last instant the export covers; horizons ending after it are censored.

    Returns
    -------
    pandas.DataFrame
        ``buyer_id``, ``as_of``, ``stage`` (string, <NA> if unlabeled), ``stage_index``
        (Int64), ``inflection`` (Int64, <NA> if unknown or censored), ``can_advance``.

    """
    rank = stage_rank(stages)
    keys = points[["buyer_id", "as_of"]].reset_index(drop=True).copy()
    keys["as_of"] = pd.to_datetime(keys["as_of"]).astype("datetime64[us]")
    keys["buyer_id"] = keys["buyer_id"].astype("string")
    keys["_row"] = np.arange(len(keys))
    keys["_t"] = (keys["as_of"] + config.label_delay).astype("datetime64[us]")

    history = stage_history[["buyer_id", "stage", "entered_at"]].copy()
    history["buyer_id"] = history["buyer_id"].astype("string")
    history["entered_at"] = pd.to_datetime(history["entered_at"]).astype("datetime64[us]")
    history["stage_index"] = history["stage"].map(rank).astype("int64")
    # Same-instant records are applied in taxonomy order, so the furthest one wins.
    history = history.sort_values(["entered_at", "stage_index"], kind="stable")

    current = pd.merge_asof(
        keys.sort_values("_t"),
        history.rename(columns={"entered_at": "_t"})[["buyer_id", "_t", "stage_index"]],
        on="_t",
        by="buyer_id",
        direction="backward",
        allow_exact_matches=True,
    ).sort_values("_row")

    stage_index = current["stage_index"].astype("Int64").reset_index(drop=True)
    first_later = _first_later_entry(current, history)
    horizon_end = current["_t"] + config.horizon
    censored = horizon_end > pd.Timestamp(data_end)
    entered = first_later.notna() & (first_later <= horizon_end)
    inflection = pd.array(entered.astype("int64"), dtype="Int64")
    unknown = stage_index.isna().to_numpy() | censored.to_numpy()
    inflection[unknown] = pd.NA

    out = keys[["buyer_id", "as_of"]].copy()
    out["stage"] = stage_index.map(dict(enumerate(stages))).astype("string")
    out["stage_index"] = stage_index
    out["inflection"] = inflection
    out["can_advance"] = (stage_index < len(stages) - 1).astype("boolean")
    return out


def _first_later_entry(current: pd.DataFrame, history: pd.DataFrame) -> pd.Series:
    """Earliest recorded entry after ``_t`` into a stage later than the current one.

    Vectorised via a join on buyer: histories are short (a handful of rows per buyer).
    """
    left = current[["_row", "buyer_id", "_t", "stage_index"]].dropna(subset=["stage_index"])
    pairs = left.merge(
        history[["buyer_id", "entered_at", "stage_index"]],
        on="buyer_id",
        suffixes=("", "_next"),
    )
    later = pairs[
        (pairs["entered_at"] > pairs["_t"]) & (pairs["stage_index_next"] > pairs["stage_index"])
    ]
    first = later.groupby("_row")["entered_at"].min()
    return pd.Series(first.reindex(current["_row"]).to_numpy(), index=current.index)
