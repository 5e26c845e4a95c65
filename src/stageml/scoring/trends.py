"""Scores against a previous run's: which buyers advanced, regressed, or warmed up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stageml.errors import ContractError


def add_trends(
    scores: pd.DataFrame, previous: pd.DataFrame, stages: tuple[str, ...], threshold: float
) -> pd.DataFrame:
    """``stage_change`` (advanced/same/regressed/new) and ``inflection_trend`` vs a previous run."""
    rank = {s: i for i, s in enumerate(stages)}
    prev = previous[["buyer_id", "stage", "inflection_probability"]].rename(
        columns={"stage": "_prev_stage", "inflection_probability": "_prev_p"}
    )
    prev = prev.assign(buyer_id=prev["buyer_id"].astype("string"))
    merged = scores.merge(prev, on="buyer_id", how="left")
    now = merged["stage"].map(rank).astype("float64")
    before = merged["_prev_stage"].map(rank).astype("float64")
    change = np.select(
        [before.isna(), now > before, now < before], ["new", "advanced", "regressed"], "same"
    )
    delta = merged["inflection_probability"] - merged["_prev_p"].astype("float64")
    trend = np.select(
        [merged["_prev_p"].isna(), delta > threshold, delta < -threshold],
        ["new", "improving", "declining"],
        "steady",
    )
    out = merged.drop(columns=["_prev_stage", "_prev_p"])
    out["stage_change"] = pd.array(change, dtype="string")
    out["inflection_trend"] = pd.array(trend, dtype="string")
    return out


def previous_path(previous: str | Path | None) -> Path | None:
    """Check the previous run's scores file exists (``--previous``)."""
    if previous is None:
        return None
    path = Path(previous)
    if not path.is_file():
        raise ContractError(
            file=str(path),
            problem="the previous scores file does not exist",
            fix="pass the output of an earlier 'stageml score' run, or drop --previous",
        )
    return path
