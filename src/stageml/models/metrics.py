"""Backtest metrics for the stage and inflection models, and their baselines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)


def expected_calibration_error(
    y: np.ndarray, p: np.ndarray, bins: int = 10, weights: np.ndarray | None = None
) -> float:
    """Weighted mean |observed rate - mean predicted| over equal-width probability bins.

    ``weights`` (row weights, e.g. bootstrap counts) default to one per row.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    which = np.clip(np.digitize(p, np.linspace(0.0, 1.0, bins + 1)[1:-1]), 0, bins - 1)
    mass = np.bincount(which, w, minlength=bins)
    gap = np.bincount(which, w * (y - p), minlength=bins)
    return float(np.abs(gap).sum() / mass.sum()) if mass.sum() else float("nan")


def multiclass_ece(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Mean one-vs-rest ECE over classes (classwise ECE)."""
    return float(
        np.mean(
            [expected_calibration_error(y == k, proba[:, k], bins) for k in range(proba.shape[1])]
        )
    )


def reliability_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Per-bin mean predicted probability, observed rate and count (empty bins dropped)."""
    y = np.asarray(y, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out: dict[str, list[float]] = {"predicted": [], "observed": [], "count": []}
    for b in range(bins):
        mask = which == b
        if mask.any():
            out["predicted"].append(float(p[mask].mean()))
            out["observed"].append(float(y[mask].mean()))
            out["count"].append(float(mask.sum()))
    return out


def stage_metrics(y: np.ndarray, proba: np.ndarray, stages: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1, balanced accuracy, log-loss, classwise ECE, per-stage P/R."""
    y = np.asarray(y, dtype=int)
    labels = list(range(len(stages)))
    pred = proba.argmax(axis=1)
    clipped = np.clip(proba, 1e-12, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "log_loss": float(log_loss(y, clipped, labels=labels)),
        "ece": multiclass_ece(y, proba),
    }
    precision, recall, _, _ = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    for k, stage in enumerate(stages):
        out[f"precision_{stage}"] = float(precision[k])
        out[f"recall_{stage}"] = float(recall[k])
    return out


def stage_confusion(y: np.ndarray, proba: np.ndarray, n_stages: int) -> np.ndarray:
    """Confusion matrix (rows: recorded stage, columns: predicted)."""
    return np.asarray(confusion_matrix(y, proba.argmax(axis=1), labels=list(range(n_stages))))


def inflection_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier, ECE, the rows and positive rate, and the mean probability.

    The mean probability beside the positive rate is calibration in the large: ECE can
    stay small while every buyer is scored too high by the same factor.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "rows": float(len(y)),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_probability": float(p.mean()) if len(p) else float("nan"),
    }


def paired_bootstrap(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    groups: np.ndarray,
    *,
    draws: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """Differences a − b in ROC-AUC and Brier score: point value and a 95 % interval.

    Whole groups (buyers) are resampled, not rows: a buyer appears at many as-of instants
    with correlated labels, so row resampling would understate the uncertainty. Both models
    are scored on the same draws, which is what makes a small difference readable.
    """
    y = np.asarray(y, dtype=int)
    _, member = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(member.max()) + 1 if len(member) else 0
    rng = np.random.default_rng(seed)
    ranked = [_ranked(np.asarray(p, dtype=float)) for p in (p_a, p_b)]
    squared = [(np.asarray(p, dtype=float) - y) ** 2 for p in (p_a, p_b)]

    def differences(weights: np.ndarray) -> tuple[float, float]:
        auc = [_weighted_auc(y, weights, *r) for r in ranked]
        brier = [float(np.average(s, weights=weights)) for s in squared]
        return auc[0] - auc[1], brier[0] - brier[1]

    point = differences(np.ones(len(y)))
    drawn = np.array(
        [
            differences(
                np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[member]
            )
            for _ in range(draws)
        ]
    )
    low, high = np.nanpercentile(drawn, [2.5, 97.5], axis=0)
    return {
        name: (point[i], float(low[i]), float(high[i]))
        for i, name in enumerate(("roc_auc", "brier"))
    }


def bootstrap_metrics(
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    *,
    draws: int = 500,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """ROC-AUC, PR-AUC, Brier and ECE: point value and a 95 % interval over whole buyers.

    Resamples groups (buyers) as :func:`paired_bootstrap` does, for one model's scores.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    _, member = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(member.max()) + 1 if len(member) else 0
    rng = np.random.default_rng(seed)
    ranked = _ranked(p)

    def values(weights: np.ndarray) -> tuple[float, ...]:
        both = (weights * y).sum() > 0 and (weights * (1 - y)).sum() > 0
        return (
            _weighted_auc(y, weights, *ranked),
            float(average_precision_score(y, p, sample_weight=weights)) if both else np.nan,
            float(np.average((p - y) ** 2, weights=weights)),
            expected_calibration_error(y, p, weights=weights),
        )

    point = values(np.ones(len(y)))
    drawn = np.array(
        [
            values(np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[member])
            for _ in range(draws)
        ]
    )
    low, high = np.nanpercentile(drawn, [2.5, 97.5], axis=0)
    return {
        name: (point[i], float(low[i]), float(high[i]))
        for i, name in enumerate(("roc_auc", "pr_auc", "brier", "ece"))
    }


def _ranked(p: np.ndarray) -> tuple[np.ndarray, int]:
    """Each row's tie group among the distinct scores (ascending), and how many there are."""
    distinct, group = np.unique(p, return_inverse=True)
    return group, len(distinct)


def _weighted_auc(y: np.ndarray, weights: np.ndarray, group: np.ndarray, n: int) -> float:
    """ROC-AUC with row weights (ties count one half), in one pass over the score groups."""
    negative = np.bincount(group, weights * (1 - y), minlength=n)
    positive = np.bincount(group, weights * y, minlength=n)
    below = np.cumsum(negative) - negative
    pairs = positive.sum() * negative.sum()
    return float((positive * (below + 0.5 * negative)).sum() / pairs) if pairs else float("nan")
