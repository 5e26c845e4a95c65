"""From lifts to each buyer's next touches, and the simple rule they are compared with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stageml.tactics.check import lift_columns


def model_inputs(scores: pd.DataFrame, stages: Sequence[str]) -> pd.DataFrame:
    """Select the uplift learner's inputs: stage probabilities and inflection likelihood."""
    return scores[[*(f"p_{s}" for s in stages), "inflection_probability"]]


def most_frequent_touch(
    interactions: pd.DataFrame, stage_history: pd.DataFrame, touches: Sequence[str]
) -> pd.DataFrame:
    """Share of each touch among the touches logged in each recorded stage (rows: stages).

    The baseline policy: "do what sellers usually do at this stage". Each touch is placed in
    the buyer's last recorded stage at its instant; touches before any record are left out.
    """
    done = interactions.loc[
        interactions["activity"].isin(touches), ["buyer_id", "occurred_at", "activity"]
    ]
    history = stage_history[["buyer_id", "entered_at", "stage"]].rename(
        columns={"entered_at": "occurred_at"}
    )
    placed = pd.merge_asof(
        done.sort_values("occurred_at"),
        history.sort_values("occurred_at"),
        on="occurred_at",
        by="buyer_id",
    ).dropna(subset=["stage"])
    counts = pd.crosstab(placed["stage"], placed["activity"]).reindex(
        columns=list(touches), fill_value=0
    )
    return counts.div(counts.sum(axis=1), axis=0)


def top_touches(
    keys: pd.DataFrame,
    lift: pd.DataFrame,
    low: pd.DataFrame | None,
    high: pd.DataFrame | None,
    *,
    k: int,
) -> pd.DataFrame:
    """List the ``k`` touches of highest estimated lift per row, best first (long format).

    Returns
    -------
    pandas.DataFrame
        ``keys`` columns, ``rank`` (1 = best), ``touch``, ``lift`` and ``lift_low`` /
        ``lift_high`` (NaN without an interval), ``k`` rows per input row.

    """
    columns = lift_columns(lift)
    values = lift[columns].to_numpy()
    k = min(k, len(columns))
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(len(values)), k)
    picked = order.ravel()

    def bound(frame: pd.DataFrame | None) -> np.ndarray:
        if frame is None:
            return np.full(len(rows), np.nan)
        return np.asarray(frame[columns].to_numpy()[rows, picked])

    out = keys.iloc[rows].reset_index(drop=True)
    out["rank"] = np.tile(np.arange(1, k + 1), len(values))
    out["touch"] = pd.array(
        np.asarray([c.removeprefix("lift_") for c in columns])[picked], dtype="string"
    )
    out["lift"] = values[rows, picked]
    out["lift_low"], out["lift_high"] = bound(low), bound(high)
    return out
