"""Calibration maps of the LightGBM wrapper."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from stageml.errors import ModelError
from stageml.explain.contributions import contributions
from stageml.models.choices import half_life_name, one_standard_error
from stageml.models.estimators import CalibratedLGBM, CenteredIsotonic


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


def _counts_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "act_a_all": rng.poisson(3, n).astype(float),
            "act_b_all": rng.poisson(1, n).astype(float),
            "other": rng.normal(size=n),
        }
    )
    margin = 0.8 * np.log1p(X["act_a_all"]) - 0.5 * np.log1p(X["act_b_all"]) + X["other"] ** 2 - 2
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-margin))).astype(int)
    return X, y.to_numpy()


def _linear_model(refit: bool = False) -> tuple[CalibratedLGBM, pd.DataFrame]:
    X, y = _counts_frame(3000, 1)
    Xv, yv = _counts_frame(1000, 2)
    model = CalibratedLGBM(
        n_estimators=40,
        num_leaves=7,
        max_depth=3,
        linear_columns=("act_a_all", "act_b_all"),
        calibration="centered_isotonic",
        refit=refit,
        n_jobs=1,
    ).fit(X, y, X_valid=Xv, y_valid=yv)
    return model, X


def test_linear_base_margin_is_the_init_score_of_the_booster() -> None:
    model, X = _linear_model()
    rows = _counts_frame(200, 3)[0]
    booster = model.booster_.predict(rows, raw_score=True, num_iteration=model.best_iteration_)
    total = model.raw_margin(rows)[:, 0]
    np.testing.assert_allclose(total, booster + model.linear_.margin(rows), atol=1e-12, rtol=0)
    np.testing.assert_allclose(
        model.predict_proba_raw(rows)[:, 1], 1 / (1 + np.exp(-total)), atol=1e-12, rtol=0
    )
    # The linear part alone carries the counts' signal (positive for a, negative for b).
    assert model.linear_.coef_[0] > 0 > model.linear_.coef_[1]
    refitted, _ = _linear_model(refit=True)
    assert refitted.booster_.current_iteration() == refitted.best_iteration_


def test_linear_base_contributions_are_exact_shap_and_add_up_to_the_raw_margin() -> None:
    model, X = _linear_model()
    rows = _counts_frame(50, 4)[0]
    ours = contributions(model, rows, workers=1)[:, 0, :]
    trees = contributions(model, rows, workers=1, linear=False)[:, 0, :]
    # Everything adds up to the model's raw margin (linear + booster), the trees' part to
    # the booster's raw score.
    np.testing.assert_allclose(ours.sum(axis=1), model.raw_margin(rows)[:, 0], atol=1e-9)
    booster = model.booster_.predict(rows, raw_score=True, num_iteration=model.best_iteration_)
    np.testing.assert_allclose(trees.sum(axis=1), booster, atol=1e-9)
    # The linear part is the exact interventional SHAP value of an additive model with the
    # fitting rows as background: f(x) - mean over background b of f(x with x_j := b_j).
    linear = ours - trees
    assert np.all(linear[:, 2] == 0)  # "other" is not a linear input
    f = model.linear_.margin
    for j, column in enumerate(("act_a_all", "act_b_all")):
        for i in range(5):
            swapped = pd.DataFrame(np.repeat(rows.iloc[[i]].to_numpy(), len(X), axis=0))
            swapped.columns = rows.columns
            swapped[column] = X[column].to_numpy()
            expected = f(rows.iloc[[i]])[0] - f(swapped).mean()
            assert np.isclose(linear[i, j], expected, atol=1e-9)


def test_linear_base_survives_pickling_and_needs_a_binary_model() -> None:
    model, _ = _linear_model(refit=True)
    rows = _counts_frame(100, 5)[0]
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))
    X, y = _counts_frame(300, 6)
    with pytest.raises(ModelError, match="binary"):
        CalibratedLGBM(n_classes=3, linear_columns=("act_a_all",), n_estimators=5).fit(
            X, y + (X["other"].to_numpy() > 1), X_valid=X, y_valid=y + (X["other"].to_numpy() > 1)
        )


@pytest.mark.parametrize("n_classes", [2, 4])
def test_blocked_prediction_equals_lightgbm_in_one_pass(n_classes: int) -> None:
    # More rounds than one block of trees holds, so the margin is a sum over blocks; a
    # categorical column (its codes are computed once per prediction, not by LightGBM)
    # meets missing values and a level unseen in training.
    X, y = _counts_frame(1500, 7)
    levels = np.random.default_rng(9).choice(["a", "b", "c"], len(X))
    X["channel"] = pd.Categorical(np.where(y == 1, "a", levels))
    y = np.minimum(y + (X["act_a_all"].to_numpy() > 3), n_classes - 1) if n_classes > 2 else y
    model = CalibratedLGBM(
        n_classes=n_classes,
        n_estimators=250,
        early_stopping_rounds=1000,
        n_jobs=1,
        min_data_per_group=10,
    ).fit(X, y, X_valid=X, y_valid=y)
    assert model.best_iteration_ * model.booster_.num_model_per_iteration() > 200
    rows = _counts_frame(300, 8)[0]
    rows["channel"] = pd.Categorical(np.resize(["c", "new", None, "a", "b"], len(rows)))
    rows.loc[::7, "act_a_all"] = np.nan
    lightgbm = model.booster_.predict(rows, num_iteration=model.best_iteration_)
    if n_classes == 2:
        lightgbm = np.column_stack([1 - lightgbm, lightgbm])
    np.testing.assert_allclose(model.predict_proba_raw(rows), lightgbm, atol=1e-12, rtol=0)
    np.testing.assert_allclose(model.predict_proba_raw(rows, threads=2), lightgbm, atol=1e-12)


def test_recency_half_life_follows_the_latest_rows_and_needs_their_as_of() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, 4000)
    recent = np.arange(4000) >= 3000
    # The relationship flips: older rows say high x advances, the latest thousand the opposite.
    y = ((x > 0) != recent).astype(int)
    as_of = np.where(recent, np.datetime64("2024-03-01"), np.datetime64("2024-01-01"))
    X = pd.DataFrame({"x": x})
    Xv = pd.DataFrame({"x": rng.uniform(-1, 1, 500)})
    yv = (Xv["x"] < 0).astype(int).to_numpy()

    def auc_on_recent(half_life: pd.Timedelta | None) -> float:
        model = CalibratedLGBM(
            n_estimators=30, class_weight=None, calibration="none", recency_half_life=half_life
        ).fit(X, y, X_valid=Xv, y_valid=yv, as_of=as_of)
        return float(roc_auc_score(yv, model.predict_proba(Xv)[:, 1]))

    assert auc_on_recent(pd.Timedelta(days=7)) > 0.95  # rows 60 days older weigh 0.5**8.6
    assert auc_on_recent(None) < 0.5
    with pytest.raises(ModelError, match="as-of instants"):
        CalibratedLGBM(n_estimators=5, recency_half_life=pd.Timedelta(days=7)).fit(
            X, y, X_valid=Xv, y_valid=yv
        )


@pytest.mark.parametrize("flips", [True, False])
def test_recency_candidates_weight_only_when_the_validation_period_asks(flips: bool) -> None:
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, 4000)
    recent = np.arange(4000) >= 3000
    # Drifting data: the latest thousand rows flip the relation, and validation follows
    # them; stationary data: one relation throughout, so weighting can only win by chance.
    y = (rng.uniform(size=4000) < np.where((x > 0) != (recent & flips), 0.8, 0.2)).astype(int)
    as_of = np.where(recent, np.datetime64("2024-03-01"), np.datetime64("2024-01-01"))
    xv = rng.uniform(-1, 1, 1500)
    yv = (rng.uniform(size=1500) < np.where((xv > 0) != flips, 0.8, 0.2)).astype(int)
    candidates = (None, pd.Timedelta(days=60), pd.Timedelta(days=7))
    model = CalibratedLGBM(
        n_estimators=40, class_weight=None, calibration="none", recency_half_life=candidates
    ).fit(
        pd.DataFrame({"x": x}),
        y,
        X_valid=pd.DataFrame({"x": xv}),
        y_valid=yv,
        as_of=as_of,
        groups_valid=np.arange(1500) % 300,
    )
    assert list(model.recency_scores_) == ["none", "60d", "7d"]
    assert model.recency_half_life_ == (pd.Timedelta(days=7) if flips else None)


def test_one_standard_error_keeps_the_simplest_candidate_within_the_noise() -> None:
    rng = np.random.default_rng(0)
    base = rng.exponential(size=400)
    noisy = base - 0.001 + rng.normal(scale=0.2, size=400)  # "better" by far less than noise
    clear = base - 0.3  # better on every row
    assert one_standard_error([base, noisy]) == 0
    assert one_standard_error([base, noisy, clear]) == 2
    # 400 rows that are 4 buyers: the clustered error is wider than the rows' one.
    drift = base - 0.05 + np.repeat([0.2, -0.2, 0.2, -0.2], 100)  # whole buyers differ
    groups = np.repeat(np.arange(4), 100)
    assert one_standard_error([base, drift]) == 1
    assert one_standard_error([base, drift], groups) == 0


@pytest.mark.parametrize("linear", [False, True])
def test_recency_candidates_sharing_bins_fit_what_fresh_datasets_fit(linear: bool) -> None:
    # The candidates' first fits reuse one binned Dataset with their own weights (and base
    # margins): each must be the booster a fit of that candidate alone builds, and a
    # candidate after a weighted one must not keep the earlier weights.
    X, y = _counts_frame(3000, 1)
    Xv, yv = _counts_frame(1000, 2)
    as_of = np.where(
        np.arange(3000) >= 2000, np.datetime64("2024-03-01"), np.datetime64("2024-01-01")
    )
    candidates = (pd.Timedelta(days=60), None, pd.Timedelta(days=7))
    settings: dict[str, Any] = {
        "n_estimators": 40,
        "class_weight": None,
        "calibration": "none",
        "n_jobs": 1,
        "linear_columns": ("act_a_all", "act_b_all") if linear else None,
    }
    shared = CalibratedLGBM(recency_half_life=candidates, **settings).fit(
        X, y, X_valid=Xv, y_valid=yv, as_of=as_of
    )
    for half_life in candidates:
        alone = CalibratedLGBM(recency_half_life=half_life, **settings).fit(
            X, y, X_valid=Xv, y_valid=yv, as_of=as_of
        )
        proba = alone.predict_proba_raw(Xv)[np.arange(len(yv)), yv]
        loss = float(-np.log(np.clip(proba, 1e-15, 1.0)).mean())
        assert shared.recency_scores_[half_life_name(half_life)] == loss
        if half_life == shared.recency_half_life_:
            assert shared.booster_.model_to_string() == alone.booster_.model_to_string()
