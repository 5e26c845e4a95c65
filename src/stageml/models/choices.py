"""Per-run fitting choices: which columns a model splits on and how, which half-life.

Kept apart from the estimator and the training loop so that the rules that decide how a
model is fitted (and that the README's validation rule judges) read in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stageml.durations import format_duration
from stageml.errors import StageMLError
from stageml.features.stage_history import STAGE_COLUMNS

if TYPE_CHECKING:
    from stageml.models.estimators import CalibratedLGBM


def linear_columns(rule: str, columns: list[str]) -> tuple[str, ...] | None:
    """Return the columns a linear base margin uses under ``inflection_fit.linear_base``."""
    if rule == "none":
        return None
    if rule == "activity_counts":
        return tuple(c for c in columns if c.startswith("act_"))
    raise StageMLError(f"unknown linear_base {rule!r}")


# Name prefixes of the time-elapsed features: days since an activity, gaps between them,
# days in the recorded stage (time since the last recorded move).
ELAPSED_PREFIXES = ("days_since_", "gap_", "recorded_days_in_stage")


def elapsed_columns(columns: list[str]) -> tuple[str, ...]:
    """Return the time-elapsed features (cooling's decreasing constraints)."""
    return tuple(c for c in columns if c.startswith(ELAPSED_PREFIXES))


def behaviour_only(columns: list[str]) -> tuple[str, ...]:
    """Columns the stage model ignores: the recorded stage, which it must infer, not echo."""
    return tuple(c for c in columns if c in STAGE_COLUMNS)


def recency(
    value: float | None | list[float | None], horizon: pd.Timedelta
) -> pd.Timedelta | None | tuple[pd.Timedelta | None, ...]:
    """Half-life(s) in horizons as durations: a list becomes the candidates of one run."""
    if isinstance(value, list):
        return tuple(None if v is None else v * horizon for v in value)
    return None if value is None else value * horizon


def one_standard_error(losses: list[np.ndarray], groups: np.ndarray | None = None) -> int:
    """Index of the first (simplest) candidate within one standard error of the best.

    ``losses`` are per-row validation losses of candidates ordered simplest first. A more
    complex candidate is kept only when its gain exceeds the noise of the validation rows
    (the standard error of the mean loss difference, clustered by ``groups`` when given),
    so a stationary export keeps the simple choice instead of one that wins by chance.
    """
    means = [float(loss.mean()) for loss in losses]
    best = int(np.argmin(means))
    for i, loss in enumerate(losses[:best]):
        diff = loss - losses[best]
        if diff.mean() <= _standard_error(diff, groups):
            return i
    return best


def _standard_error(values: np.ndarray, groups: np.ndarray | None) -> float:
    """Return the standard error of the mean of ``values`` (cluster-robust over ``groups``)."""
    n = len(values)
    if groups is None:
        return float(values.std(ddof=1) / np.sqrt(n))
    _, index = np.unique(groups, return_inverse=True)
    sums = np.bincount(index, weights=values - values.mean())
    g = len(sums)
    return float(np.sqrt(g / max(g - 1, 1) * np.sum(sums**2)) / n)


def recency_choice(model: CalibratedLGBM) -> str:
    """Describe the recency half-life a fit kept and each candidate's validation log-loss."""
    chosen = half_life_name(model.recency_half_life_)
    scores = getattr(model, "recency_scores_", {})
    if len(scores) < 2:
        return chosen
    return chosen + " (" + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()) + ")"


def half_life_name(half_life: pd.Timedelta | None) -> str:
    """Spell a half-life as in params and feature names (``15d``), or ``none``."""
    return "none" if half_life is None else format_duration(pd.Timedelta(half_life))
