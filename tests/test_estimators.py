"""Calibration maps of the LightGBM wrapper."""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from stageml.estimators import CenteredIsotonic


def _scores(n: int = 600, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.uniform(0, 1, n)
    y = (rng.uniform(0, 1, n) < 0.1 + 0.5 * score**2).astype(int)
    return score, y


def test_centered_isotonic_keeps_the_ranking_that_isotonic_ties() -> None:
    score, y = _scores()
    iso = IsotonicRegression(out_of_bounds="clip").fit(score, y)
    cir = CenteredIsotonic().fit(score, y)
    fresh = np.random.default_rng(9).uniform(0, 1, 2000)
    inside = (fresh > cir.x_[0]) & (fresh < cir.x_[-1])
    mapped = cir.predict(fresh[inside])
    # Strictly increasing between the outermost step centres: no ties, same order as raw.
    assert len(np.unique(mapped)) == inside.sum()
    assert np.all(np.diff(mapped[np.argsort(fresh[inside])]) > 0)
    assert len(np.unique(iso.predict(fresh[inside]))) < inside.sum() / 10
    # Same values as isotonic at the step centres, and within isotonic's range everywhere.
    assert np.all(np.diff(cir.y_) > 0)
    assert np.isclose(cir.predict(score).mean(), y.mean(), atol=0.02)
    assert cir.predict(fresh).min() >= iso.predict(score).min()
    assert cir.predict(fresh).max() <= iso.predict(score).max()


def test_centered_isotonic_auc_equals_raw_auc_and_respects_bounds() -> None:
    score, y = _scores()
    test_score, test_y = _scores(seed=4)
    cir = CenteredIsotonic(bound=0.01).fit(score, y)
    p = cir.predict(test_score)
    inside = (test_score > cir.x_[0]) & (test_score < cir.x_[-1])
    assert np.isclose(
        roc_auc_score(test_y[inside], p[inside]), roc_auc_score(test_y[inside], test_score[inside])
    )
    assert p.min() >= 0.01 and p.max() <= 0.99
