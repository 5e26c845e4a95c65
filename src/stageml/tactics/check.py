"""How good are estimated touch lifts: against known truth (simulation) or a held-out trial.

* Stage x touch table: the mean lift of each touch over the buyers in each stage.
* Agreement of an estimated table with the true one: rank correlation of the touches within
  each stage (then averaged), mean absolute error, and whether each stage's best touch is
  recovered.
* Qini / AUUC of a policy (a recommended touch and a priority score per buyer), read on
  randomised buyers: for the top ``n`` buyers by score, the gain is
  ``(mean y of those whose random touch was the recommended one - mean y of the control) * n``,
  the extra moves had all ``n`` got their recommended touch. AUUC is the mean gain per buyer
  over the targeting fractions; the Qini coefficient is AUUC minus that of the random
  policy (a random touch, in random order), so random scores 0. With the true lifts known
  the same curve is read without outcome noise (``true_lift``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

FRACTIONS = np.linspace(0.1, 1.0, 10)


def lift_columns(frame: pd.DataFrame) -> list[str]:
    """List the ``lift_<touch>`` columns of a frame."""
    return [c for c in frame.columns if c.startswith("lift_")]


def stage_touch_table(
    frame: pd.DataFrame, stages: Sequence[str], by: str = "stage"
) -> pd.DataFrame:
    """Mean lift per stage (rows, funnel order, only stages present) and touch (columns)."""
    table = frame.groupby(by, observed=True)[lift_columns(frame)].mean()
    table.columns = [c.removeprefix("lift_") for c in table.columns]
    return table.reindex([s for s in stages if s in table.index])


def table_agreement(estimated: pd.DataFrame, true: pd.DataFrame) -> dict[str, float]:
    """Rank correlation within stages (mean), MAE, and the share of stages whose best is found."""
    est = estimated.reindex(index=true.index, columns=true.columns)
    # A stage where either side is constant has no ranking to compare.
    rho = [
        spearmanr(est.loc[s], true.loc[s]).statistic
        if est.loc[s].nunique() > 1 and true.loc[s].nunique() > 1
        else np.nan
        for s in true.index
    ]
    best = (est.idxmax(axis=1) == true.idxmax(axis=1)).to_numpy()
    return {
        "rank_correlation": float(np.nanmean(rho)),
        "mae": float(np.abs(est - true).to_numpy().mean()),
        "best_recovered": float(best.mean()),
    }


def _gain(order: np.ndarray, treated: np.ndarray, control: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gain per buyer at each targeting fraction for buyers taken in ``order``."""
    n = len(order)
    t, c = treated[order], control[order]
    yt, yc = np.cumsum(y[order] * t), np.cumsum(y[order] * c)
    nt, nc = np.cumsum(t), np.cumsum(c)
    out = []
    for f in FRACTIONS:
        k = max(int(round(f * n)), 1) - 1
        diff = yt[k] / max(nt[k], 1) - yc[k] / max(nc[k], 1)
        out.append(diff * (k + 1) / n)
    return np.asarray(out)


def qini(
    recommended: np.ndarray,
    score: np.ndarray,
    arm: np.ndarray,
    y: np.ndarray,
    touches: Sequence[str],
    *,
    control: str = "none",
) -> dict[str, float]:
    """Observed AUUC and Qini coefficient of a policy on randomised buyers."""
    arm, recommended = np.asarray(arm, dtype=object), np.asarray(recommended, dtype=object)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    is_control = arm == control
    auuc = float(_gain(order, arm == recommended, is_control, y).mean())
    everyone = np.arange(len(arm))
    random_total = np.mean([_gain(everyone, arm == t, is_control, y)[-1] for t in touches])
    # The random policy's curve is the straight line to its total: area = half of it.
    return {"auuc": auuc, "qini": auuc - random_total * FRACTIONS.mean()}


def true_qini(
    recommended: np.ndarray, score: np.ndarray, true_lift: pd.DataFrame
) -> dict[str, float]:
    """AUUC and Qini from the true lifts (``lift_<touch>`` per buyer): no outcome noise."""
    recommended = np.asarray(recommended, dtype=object)
    columns = [f"lift_{t}" for t in recommended]
    got = true_lift.to_numpy()[np.arange(len(recommended)), true_lift.columns.get_indexer(columns)]
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    n = len(order)
    gains = np.cumsum(got[order])
    curve = np.asarray([gains[max(int(round(f * n)), 1) - 1] / n for f in FRACTIONS])
    random_total = true_lift.to_numpy().mean()
    return {
        "auuc": float(curve.mean()),
        "qini": float(curve.mean() - random_total * FRACTIONS.mean()),
    }


def interval_coverage(
    bags: np.ndarray, stage: np.ndarray, true_lift: pd.DataFrame, *, interval: float
) -> dict[str, float]:
    """Share of true lifts inside the estimated central ``interval``, and its mean width.

    ``bags`` holds each bootstrap refit's lift per row and touch (``TLearner.predict_bags``),
    ``true_lift`` the true lifts (same rows, touches in the same order). Per stage x touch,
    the interval of the stage's mean lift is read from the spread of the bags' stage means;
    per buyer, from the spread of the bags' lifts for that row.
    """
    tail = (1 - interval) / 2
    truth = true_lift.to_numpy()
    low, high = np.quantile(bags, [tail, 1 - tail], axis=0)
    covered, widths = [], []
    for name in pd.unique(stage):
        rows = np.asarray(stage == name)
        means = bags[:, rows, :].mean(axis=1)
        cell_low, cell_high = np.quantile(means, [tail, 1 - tail], axis=0)
        true_mean = truth[rows].mean(axis=0)
        covered.extend((cell_low <= true_mean) & (true_mean <= cell_high))
        widths.extend(cell_high - cell_low)
    return {
        "stage_touch": float(np.mean(covered)),
        "stage_touch_width": float(np.mean(widths)),
        "buyer": float(((low <= truth) & (truth <= high)).mean()),
        "buyer_width": float((high - low).mean()),
    }
