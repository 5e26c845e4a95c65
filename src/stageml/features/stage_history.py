"""Stage-aware features: the CRM's recorded stage history as it was known at the as-of instant.

A real CRM knows each buyer's current stage at scoring time. This source turns the recorded
changes into point-in-time features beside the interaction engine's
(:func:`stageml.features.engine.build_features`), under the same rule: a row for ``t`` sees a
change only if the CRM had logged it strictly before ``t``. When it was logged is
``recorded_at`` where the export has that column (and the cell is filled), otherwise
``entered_at + labels.label_delay``: a CRM writes changes late, and a change is not known
before it is written.

Columns (``recorded_`` prefix; counts are 0 and the rest missing for a buyer without a
known change):

* ``recorded_stage``: position of the latest known ordered stage (0 = first stage).
* ``recorded_exit``: 1 when the latest known change is an exit (lost, disqualified), else 0.
* ``recorded_days_in_stage``: days since the latest known change was entered.
* ``recorded_days_in_previous``: days between the previous known change and the latest.
* ``recorded_moves``: known changes, exits included.
* ``recorded_regressions``: known changes into an earlier ordered stage than the one before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from stageml.config import Params
from stageml.data.validate import RECORDED_AT
from stageml.errors import ContractError

STAGE_COLUMNS = (
    "recorded_stage",
    "recorded_exit",
    "recorded_days_in_stage",
    "recorded_days_in_previous",
    "recorded_moves",
    "recorded_regressions",
)
_DAY = pd.Timedelta(days=1)


def stage_columns(params: Params) -> list[str]:
    """Return the stage-history feature columns a model with these params uses (maybe none)."""
    return list(STAGE_COLUMNS) if params.features.stage_history else []


def known_at(stage_history: pd.DataFrame, label_delay: pd.Timedelta) -> pd.Series:
    """When each recorded change became known: ``recorded_at``, else ``entered_at + delay``."""
    fallback = pd.to_datetime(stage_history["entered_at"]) + label_delay
    if RECORDED_AT not in stage_history.columns:
        return fallback.astype("datetime64[us]")
    logged = pd.to_datetime(stage_history[RECORDED_AT])
    return logged.fillna(fallback).astype("datetime64[us]")


def no_stage_history() -> pd.DataFrame:
    """Return an empty stage history in the contract's types.

    It stands for an export's table none of whose rows belong to the buyers at hand (a
    scoring partition of buyers the CRM never staged).
    """
    return pd.DataFrame(
        {
            "buyer_id": pd.array([], dtype="string"),
            "stage": pd.array([], dtype="string"),
            "entered_at": pd.Series([], dtype="datetime64[us]"),
        }
    )


def build_stage_features(
    keys: pd.DataFrame,
    stage_history: pd.DataFrame,
    *,
    stages: Sequence[str],
    exits: Sequence[str],
    label_delay: pd.Timedelta,
) -> pd.DataFrame:
    """Stage-history features for each (buyer_id, as_of) row of ``keys``, in row order.

    Parameters
    ----------
    keys
        ``buyer_id`` and ``as_of`` (e.g. the interaction features' key columns).
    stage_history
        Validated changes (``buyer_id``, ``stage``, ``entered_at``, optional ``recorded_at``).
    stages, exits
        The ordered taxonomy and the terminal exits (``params.stages``, ``params.exits``).
    label_delay
        How long after ``entered_at`` a change without ``recorded_at`` is known.

    Returns
    -------
    pandas.DataFrame
        :data:`STAGE_COLUMNS` as float64, one row per row of ``keys`` (same order, RangeIndex).

    """
    rank = {name: float(i) for i, name in enumerate(stages)}
    exit_names = set(exits)
    history = pd.DataFrame(
        {
            "buyer_id": pd.array(stage_history["buyer_id"], dtype="string"),
            "_t": known_at(stage_history, label_delay).to_numpy(),
            "entered_at": pd.to_datetime(stage_history["entered_at"]).to_numpy(),
            "stage_index": stage_history["stage"].map(rank).to_numpy(dtype=float),
            "is_exit": stage_history["stage"].isin(exit_names).to_numpy(dtype=float),
        }
    )
    history = history.sort_values(["buyer_id", "_t", "entered_at"], kind="stable")
    buyer = history.groupby("buyer_id", sort=False)
    # Running state after each change, in the order the CRM learned of them.
    ordered = history["stage_index"]
    history["recorded_stage"] = ordered.groupby(history["buyer_id"]).ffill()
    previous_ordered = history.groupby("buyer_id")["recorded_stage"].shift()
    history["recorded_exit"] = history["is_exit"]
    history["recorded_moves"] = buyer.cumcount().astype(float) + 1.0
    back = (ordered < previous_ordered).astype(float)
    history["recorded_regressions"] = back.groupby(history["buyer_id"]).cumsum()
    gap = history["entered_at"] - buyer["entered_at"].shift()
    history["recorded_days_in_previous"] = gap / _DAY

    points = pd.DataFrame(
        {
            "buyer_id": pd.array(keys["buyer_id"], dtype="string"),
            "_t": pd.to_datetime(keys["as_of"]).astype("datetime64[us]").to_numpy(),
            "_row": np.arange(len(keys)),
        }
    )
    state = [c for c in STAGE_COLUMNS if c != "recorded_days_in_stage"]
    # Strictly before t: a change logged at t itself is not yet known (the one time rule).
    joined = pd.merge_asof(
        points.sort_values("_t"),
        history[["buyer_id", "_t", "entered_at", *state]].sort_values("_t"),
        on="_t",
        by="buyer_id",
        direction="backward",
        allow_exact_matches=False,
    ).sort_values("_row")
    out = joined[state].reset_index(drop=True).astype(float)
    out["recorded_days_in_stage"] = ((joined["_t"] - joined["entered_at"]) / _DAY).to_numpy(
        dtype=float
    )
    for count in ("recorded_moves", "recorded_regressions"):
        out[count] = out[count].fillna(0.0)
    return out[list(STAGE_COLUMNS)]


def add_stage_features(
    features: pd.DataFrame,
    stage_history: pd.DataFrame | None,
    params: Params,
    *,
    file: str = "stage_history",
) -> pd.DataFrame:
    """Join the stage-history features beside ``features`` when the params use them.

    A model trained with ``features.stage_history: true`` never saw a buyer whose CRM
    history was withheld from it, so scoring without the table is refused rather than
    silently scored as if no buyer had a recorded stage.
    """
    if not params.features.stage_history:
        return features
    if stage_history is None:
        raise ContractError(
            file=file,
            problem="the model uses stage-history features "
            "(features.stage_history: true) but the export has no stage_history table",
            fix="add stage_history.csv|.parquet (buyer_id, stage, entered_at[, recorded_at]) "
            "to the export, or score with a model trained with features.stage_history: false",
        )
    extra = build_stage_features(
        features,
        stage_history,
        stages=params.stages,
        exits=params.exits,
        label_delay=params.labels.label_delay,
    )
    extra.index = features.index
    return pd.concat([features, extra], axis=1)


def describe_stage_family(values: Mapping[str, Any], params: Params) -> str:
    """Reason-code text for a buyer's recorded stage history: one sentence, its own numbers."""
    stage = values.get("recorded_stage", np.nan)
    if pd.isna(stage):
        return "no stage recorded in the CRM yet"
    days = values.get("recorded_days_in_stage", np.nan)
    since = "" if pd.isna(days) else f" for {days:.0f} days"
    if values.get("recorded_exit", 0) == 1:
        return f"recorded as {' or '.join(params.exits)}{since}"
    text = f"recorded {params.stages[int(stage)]}{since}"
    before = values.get("recorded_days_in_previous", np.nan)
    moves = values.get("recorded_moves", np.nan)
    back = values.get("recorded_regressions", np.nan)
    details = [] if pd.isna(before) else [f"{before:.0f} days in the stage before"]
    if not pd.isna(moves):
        regressions = "none back" if pd.isna(back) or back == 0 else f"{back:.0f} back"
        details.append(f"{moves:.0f} recorded moves, {regressions}")
    return f"{text} ({'; '.join(details)})" if details else text
