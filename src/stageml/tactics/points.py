"""Features at per-buyer as-of instants, optionally with a touch appended just before them.

The feature engine computes every buyer at every as-of instant. A trial enrols each buyer at
its own instant, so computing that cross product would waste almost all of it. Instead each
(buyer, as-of) point becomes a pseudo-buyer whose history is shifted in time so that all
points share one as-of instant: every feature is a duration or a count over trailing
windows, so a shift changes none of them, and one engine call serves all points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stageml.data.validate import RECORDED_AT
from stageml.features.engine import KEYS
from stageml.models.bundle import StageModel

TOUCH_GAP = pd.Timedelta(seconds=1)  # an appended touch happens this long before the as-of


def touch_channels(interactions: pd.DataFrame, touches: tuple[str, ...]) -> dict[str, str]:
    """Map each touch to the channel it is usually logged with (``"unknown"`` if never)."""
    if "channel" not in interactions:
        return {t: "unknown" for t in touches}
    seen = interactions[interactions["activity"].isin(touches)]
    usual = seen.groupby("activity", observed=True)["channel"].agg(lambda c: c.mode().iloc[0])
    return {t: str(usual.get(t, "unknown")) for t in touches}


def features_at_points(
    model: StageModel,
    interactions: pd.DataFrame,
    buyers: pd.DataFrame | None,
    points: pd.DataFrame,
    *,
    stage_history: pd.DataFrame | None = None,
    touch: str | None = None,
    channel: str = "unknown",
    threads: int | None = None,
) -> pd.DataFrame:
    """Model features for each (``buyer_id``, ``as_of``) row of ``points``, in its order.

    Parameters
    ----------
    model
        The trained bundle (its vocabulary and feature settings).
    interactions, buyers
        The validated export's tables.
    points
        ``buyer_id`` and ``as_of`` per row.
    stage_history
        The export's recorded stage changes; read only by a model with stage-history
        features (which needs it). Each pseudo-buyer gets its buyer's changes shifted like
        its interactions (``entered_at`` and ``recorded_at``), so what the CRM knew strictly
        before the point is what the pseudo-buyer's features see.
    touch, channel
        If given, an outbound ``touch`` is appended to every point's history at
        ``as_of - 1 s``: it happens "now", so the features (which see interactions strictly
        before the as-of instant) include it.
    threads
        Feature engine threads.

    Returns
    -------
    pandas.DataFrame
        One row per point (points without any history before their instant get NaN
        features), with the original ``buyer_id`` and ``as_of``.

    """
    keys = points[list(KEYS)].reset_index(drop=True)
    as_of = pd.to_datetime(keys["as_of"]).astype("datetime64[us]")
    anchor = as_of.max().ceil("D") + pd.Timedelta(days=1)
    pseudo = pd.Series(np.char.add("p", np.arange(len(keys)).astype(str)), dtype="string")
    owners = pd.DataFrame({"buyer_id": keys["buyer_id"], "_pid": pseudo, "_t": as_of})
    history = interactions.merge(owners, on="buyer_id")
    history = history[history["occurred_at"] < history["_t"]]
    if touch is not None:
        added = owners.assign(
            occurred_at=as_of - TOUCH_GAP, activity=touch, channel=channel, direction="outbound"
        )
        history = pd.concat([history, added[[c for c in added if c in history]]])
    history = _shifted(history, ("occurred_at",), anchor).sort_values(["buyer_id", "occurred_at"])
    attrs = None
    if buyers is not None:
        attrs = keys[["buyer_id"]].assign(_pid=pseudo).merge(buyers, on="buyer_id", how="left")
        attrs = attrs.drop(columns="buyer_id").rename(columns={"_pid": "buyer_id"})
    # Every change is kept: one logged at or after the point stays after the anchor, where
    # the stage features' strictly-before rule leaves it out, as it does for the real buyer.
    changes = None
    if stage_history is not None and model.params.features.stage_history:
        changes = _shifted(
            stage_history.merge(owners, on="buyer_id"), ("entered_at", RECORDED_AT), anchor
        )
    features = model.features(
        history.reset_index(drop=True), [anchor], attrs, stage_history=changes, threads=threads
    )
    features = features.set_index("buyer_id").reindex(pseudo).reset_index(drop=True)
    original = pd.DataFrame({"buyer_id": keys["buyer_id"].to_numpy(), "as_of": as_of.to_numpy()})
    return pd.concat([original, features.drop(columns="as_of")], axis=1)


def _shifted(rows: pd.DataFrame, stamps: tuple[str, ...], anchor: pd.Timestamp) -> pd.DataFrame:
    """Rows of each point (``_pid``, ``_t``) as its pseudo-buyer's, moved by ``anchor - _t``."""
    shift = anchor - rows["_t"]
    moved = {c: rows[c] + shift for c in stamps if c in rows.columns}
    out = rows.assign(buyer_id=rows["_pid"], **moved)
    return out.drop(columns=["_pid", "_t"]).reset_index(drop=True)
