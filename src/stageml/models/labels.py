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
* ``exit``: 1 if the buyer's first recorded exit (``params.exits``, e.g. lost) within
  ``(t + d, t + d + H]`` comes before any entry into a later stage; censored like
  ``inflection``, and <NA> for a buyer already in an exit.
* ``exited``: the latest record at ``t + d`` is an exit. A stage recorded after an exit
  re-opens the buyer; ``stage`` stays the last ordered stage recorded.
* ``can_advance``: the stage is not the last one and the buyer is not in an exit, so an
  inflection is possible at all.
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
    exits: Sequence[str] = (),
) -> pd.DataFrame:
    """Stage, inflection and exit labels for each (buyer_id, as_of) row of ``points``.

    Parameters
    ----------
    points
        Frame with ``buyer_id`` and ``as_of`` (one row per pair; other columns ignored).
    stage_history
        Validated recorded stage changes (``buyer_id``, ``stage``, ``entered_at``); the
        ``stage`` may also be one of ``exits``.
    stages
        The ordered taxonomy.
    config
        Horizon and label delay.
    data_end
        Last instant the export covers; horizons ending after it are censored.
    exits
        Terminal exits (``params.exits``) besides the ordered stages.

    Returns
    -------
    pandas.DataFrame
        ``buyer_id``, ``as_of``, ``stage`` (string, <NA> if unlabeled), ``stage_index``
        (Int64), ``inflection`` and ``exit`` (Int64, <NA> if unknown or censored),
        ``exited`` and ``can_advance`` (boolean), and the event times the horizon labels
        derive from: ``advance_after`` and ``exit_after`` (time from ``t + d`` to the
        first later-stage entry and to the first exit, NaT when none is recorded) and
        ``observed_for`` (``data_end - (t + d)``).

    """
    rank = stage_rank(stages)
    exit_rank = {name: len(stages) + i for i, name in enumerate(exits)}
    keys = points[["buyer_id", "as_of"]].reset_index(drop=True).copy()
    keys["as_of"] = pd.to_datetime(keys["as_of"]).astype("datetime64[us]")
    keys["buyer_id"] = keys["buyer_id"].astype("string")
    keys["_row"] = np.arange(len(keys))
    keys["_t"] = (keys["as_of"] + config.label_delay).astype("datetime64[us]")

    history = stage_history[["buyer_id", "stage", "entered_at"]].copy()
    history["buyer_id"] = history["buyer_id"].astype("string")
    history["entered_at"] = pd.to_datetime(history["entered_at"]).astype("datetime64[us]")
    history["stage_index"] = history["stage"].map({**rank, **exit_rank}).astype("int64")
    history["is_exit"] = history["stage_index"] >= len(stages)
    # Same-instant records are applied in taxonomy order (exits last), so the furthest wins.
    history = history.sort_values(["entered_at", "stage_index"], kind="stable")
    ordered = history[~history["is_exit"]]

    by_t = keys.sort_values("_t")
    current = _as_of(by_t, ordered, "stage_index")
    latest = _as_of(by_t, history, "is_exit")
    stage_index = current["stage_index"].astype("Int64").reset_index(drop=True)
    # In an exit: the latest record is an exit; any later stage record re-opens the buyer.
    exited = latest["is_exit"].astype("boolean").fillna(False).reset_index(drop=True)
    first_later = _first_after(current, ordered, later_only=True)
    first_exit = _first_after(current, history[history["is_exit"]], later_only=False)
    horizon_end = current["_t"] + config.horizon
    censored = (horizon_end > pd.Timestamp(data_end)).to_numpy()
    unknown = stage_index.isna().to_numpy() | censored
    entered = first_later.notna() & (first_later <= horizon_end)
    inflection = pd.array(entered.astype("int64"), dtype="Int64")
    inflection[unknown] = pd.NA
    # An exit counts when it comes first: a later stage entered before it is an advance.
    left = first_exit.notna() & (first_exit <= horizon_end)
    left &= first_later.isna() | (first_exit < first_later)
    exit_label = pd.array(left.astype("int64"), dtype="Int64")
    exit_label[unknown | exited.to_numpy(bool)] = pd.NA

    out = keys[["buyer_id", "as_of"]].copy()
    out["stage"] = stage_index.map(dict(enumerate(stages))).astype("string")
    out["stage_index"] = stage_index
    out["inflection"] = inflection
    out["exit"] = exit_label
    out["exited"] = exited
    out["can_advance"] = ((stage_index < len(stages) - 1) & ~exited).astype("boolean")
    out["advance_after"] = (first_later - current["_t"]).to_numpy()
    out["exit_after"] = (first_exit - current["_t"]).to_numpy()
    out["observed_for"] = (pd.Timestamp(data_end) - current["_t"]).to_numpy()
    return out


def _as_of(keys: pd.DataFrame, history: pd.DataFrame, column: str) -> pd.DataFrame:
    """Read the latest record's ``column`` at or before each key's ``_t`` (in row order)."""
    return pd.merge_asof(
        keys,
        history.rename(columns={"entered_at": "_t"})[["buyer_id", "_t", column]],
        on="_t",
        by="buyer_id",
        direction="backward",
        allow_exact_matches=True,
    ).sort_values("_row")


def _first_after(current: pd.DataFrame, history: pd.DataFrame, *, later_only: bool) -> pd.Series:
    """Earliest record after ``_t`` (into a stage later than the current one if ``later_only``).

    Vectorised via a join on buyer: histories are short (a handful of rows per buyer).
    """
    left = current[["_row", "buyer_id", "_t", "stage_index"]].dropna(subset=["stage_index"])
    pairs = left.merge(
        history[["buyer_id", "entered_at", "stage_index"]],
        on="buyer_id",
        suffixes=("", "_next"),
    )
    after = pairs["entered_at"] > pairs["_t"]
    if later_only:
        after &= pairs["stage_index_next"] > pairs["stage_index"]
    first = pairs[after].groupby("_row")["entered_at"].min()
    return pd.Series(
        first.reindex(current["_row"]).to_numpy(dtype="datetime64[us]"), index=current.index
    )


def horizon_label(labels: pd.DataFrame, event: str, horizon: pd.Timedelta) -> pd.Series:
    """``event`` (``advance`` or ``exit``) within ``horizon`` of ``t + d``, censored as usual.

    One definition for every horizon of the multi-horizon model, read off the event times
    :func:`build_labels` returns; at ``labels.horizon`` it equals the ``inflection`` or
    ``exit`` column (for advances; exits there also need to come first).
    """
    after = labels[f"{event}_after"]
    value = pd.array((after.notna() & (after <= horizon)).astype("int64"), dtype="Int64")
    unknown = (
        labels["stage_index"].isna().to_numpy() | (labels["observed_for"] < horizon).to_numpy()
    )
    value[unknown] = pd.NA
    return pd.Series(value, index=labels.index)
