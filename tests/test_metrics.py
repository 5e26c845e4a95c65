"""Backtest metrics: the paired buyer-level bootstrap behind the real-export comparison."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from stageml.models.metrics import (
    bootstrap_metrics,
    expected_calibration_error,
    inflection_metrics,
    paired_bootstrap,
)


def test_paired_bootstrap_brackets_the_difference_and_resamples_whole_buyers() -> None:
    rng = np.random.default_rng(3)
    buyers = np.repeat(np.arange(400), 5)
    y = rng.random(len(buyers)) < 0.3
    informative = y + rng.normal(0, 1.0, len(y))
    noise = rng.random(len(y))
    got = paired_bootstrap(y, informative, noise, buyers, draws=300)
    auc, brier = got["roc_auc"], got["brier"]
    # The point values are the plain metrics' differences (weighted AUC = scikit-learn's).
    assert np.isclose(auc[0], roc_auc_score(y, informative) - roc_auc_score(y, noise))
    assert auc[1] < auc[0] < auc[2] and auc[1] > 0.2
    assert np.isclose(brier[0], np.mean((informative - y) ** 2) - np.mean((noise - y) ** 2))
    same = paired_bootstrap(y, noise, noise, buyers, draws=50)
    assert same["roc_auc"] == (0.0, 0.0, 0.0) and same["brier"] == (0.0, 0.0, 0.0)
    # A buyer's rows move together: with labels and scores shared within each buyer, the
    # interval is wider than if the 2,000 rows were independent (about sqrt(5) times).
    shared = np.repeat(rng.random(400) < 0.3, 5)
    score = shared + np.repeat(rng.normal(0, 1.5, 400), 5) + rng.normal(0, 0.05, len(shared))
    by_buyer = paired_bootstrap(shared, score, noise, buyers, draws=300)["roc_auc"]
    by_row = paired_bootstrap(shared, score, noise, np.arange(len(shared)), draws=300)["roc_auc"]
    assert by_buyer[2] - by_buyer[1] > 1.5 * (by_row[2] - by_row[1])


def test_bootstrap_metrics_points_are_the_plain_metrics_and_intervals_bracket_them() -> None:
    rng = np.random.default_rng(5)
    buyers = np.repeat(np.arange(300), 4)
    y = (rng.random(len(buyers)) < 0.2).astype(int)
    p = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.15, len(y)), 0, 1)
    got = bootstrap_metrics(y, p, buyers, draws=200)
    plain = inflection_metrics(y, p)
    for name in ("roc_auc", "pr_auc", "brier", "ece"):
        point, low, high = got[name]
        assert np.isclose(point, plain[name]) and low <= point <= high and low < high
    # Bootstrap weights are row counts: ECE with weights = ECE on the repeated rows.
    counts = rng.integers(0, 3, len(y))
    assert np.isclose(
        expected_calibration_error(y, p, weights=counts),
        expected_calibration_error(np.repeat(y, counts), np.repeat(p, counts)),
    )
