"""What a training run was fitted on, and what its reader should know about its level."""

from __future__ import annotations

from typing import Any

import pandas as pd

from stageml.config import Params
from stageml.data.span import coincidence_rate
from stageml.data.validate import Export


def describe_data(
    export: Export, snaps: pd.DataFrame, period: pd.Series, params: Params
) -> dict[str, Any]:
    """Rows, buyers, date range and class balance: what the run was trained on."""
    inter = export.interactions
    stage_counts = snaps["stage"].value_counts().reindex(list(params.stages), fill_value=0)
    described: dict[str, Any] = {
        "interactions": int(len(inter)),
        "buyers": int(inter["buyer_id"].nunique()),
        "first_interaction": str(inter["occurred_at"].min()),
        "last_interaction": str(inter["occurred_at"].max()),
        "stage_history_rows": int(len(export.stage_history))
        if export.stage_history is not None
        else 0,
        "snapshot_rows": int(len(snaps)),
        "snapshot_rows_by_period": {k: int(v) for k, v in period.value_counts().items()},
        "stage_labeled_share": float(snaps["stage"].notna().mean()),
        "stage_balance": {k: int(v) for k, v in stage_counts.items()},
        "inflection_positive_rate": float(snaps["inflection"].dropna().astype(float).mean()),
        "inflection_censored_or_unlabeled_share": float(snaps["inflection"].isna().mean()),
        # The inflection model's own question per period; a moving rate is what calibration
        # on the validation period cannot follow (see level_note).
        "advance_rate_by_period": _advance_rates(snaps, period),
        # Near 1: the CRM writes stage changes from the interaction log itself, so the
        # current stage is readable from history; the real question is the inflection.
        "stage_change_coincidence_rate": coincidence_rate(export),
    }
    return described


def _advance_rates(snaps: pd.DataFrame, period: pd.Series) -> dict[str, float]:
    labelled = snaps["inflection"].notna() & snaps["can_advance"].fillna(False).astype(bool)
    rates = snaps.loc[labelled, "inflection"].astype(float).groupby(period[labelled]).mean()
    return {name: float(rates[name]) for name in ("train", "valid", "test") if name in rates}


def level_note(
    description: dict[str, Any], metrics: dict[str, float], *, tolerance: float = 0.25
) -> str | None:
    """Say so when the test period's inflection probabilities are off the observed rate.

    Calibration in the large, on buyers who can still advance: the probabilities carry the
    validation period's level, so when the advance rate drifts between periods they can
    miss the test period's by more than ``tolerance`` (relative) even with a small ECE.
    The per-period rates say whether drift is the reason.
    """
    rate = metrics.get("inflection.can_advance.positive_rate", float("nan"))
    mean = metrics.get("inflection.can_advance.mean_probability", float("nan"))
    if not rate > 0 or not abs(mean / rate - 1) > tolerance:
        return None
    rates = description.get("advance_rate_by_period", {})
    shown = " / ".join(f"{name} {r:.1%}" for name, r in rates.items())
    return (
        f"on the test period the inflection probabilities of buyers who can still advance "
        f"average {mean:.1%} against an observed {rate:.1%}. The rate by period is {shown}; "
        "probabilities carry the validation period's level, so a drifting rate shows up "
        "here. If recent behaviour should count more, try "
        "train.inflection_fit.recency_half_life."
    )
