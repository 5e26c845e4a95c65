"""Compiled trees: the same raw margins as LightGBM's predict, and a safe fallback."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest

from stageml.models import compiled
from stageml.models.compiled import compile_estimator, compiled_margin
from stageml.models.estimators import CalibratedLGBM


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Counts with missing values and a categorical column (some rows missing)."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(["email", "web", "phone", "event"], n)
    X = pd.DataFrame(
        {
            "visits": rng.poisson(3, n).astype(np.float32),
            "gap": np.where(rng.uniform(size=n) < 0.2, np.nan, rng.exponential(10, n)),
            "channel": pd.Categorical(
                np.where(rng.uniform(size=n) < 0.1, None, channel),
                categories=["email", "web", "phone", "event"],
            ),
        }
    )
    score = 0.5 * X["visits"] - 0.05 * X["gap"].fillna(30) + (X["channel"] == "web") * 1.5
    y = np.digitize(score + rng.normal(size=n), [0.0, 1.0, 2.0])
    return X, y


def _fit(n_classes: int) -> CalibratedLGBM:
    X, y = _frame(2000, 1)
    y = np.minimum(y, n_classes - 1)
    # min_data_per_group small so that the categorical column gets its own splits.
    return CalibratedLGBM(
        n_classes=n_classes,
        n_estimators=60,
        early_stopping_rounds=1000,
        min_data_per_group=10,
        n_jobs=1,
    ).fit(X, y, X_valid=X, y_valid=y)


@pytest.fixture(scope="module", params=[2, 4], ids=["binary", "multiclass"])
def model(request: pytest.FixtureRequest) -> CalibratedLGBM:
    fitted = _fit(request.param)
    fitted.compiled_ = compile_estimator(fitted)
    return fitted


def _rows() -> pd.DataFrame:
    rows = _frame(500, 2)[0]
    # A category unseen in training and every value missing in one row.
    rows["channel"] = rows["channel"].cat.add_categories(["fax"])
    rows.loc[3, "channel"] = "fax"
    rows.loc[4, ["visits", "gap"]] = np.nan
    rows.loc[4, "channel"] = None
    return rows


def test_compiled_margin_equals_lightgbm_predict(model: CalibratedLGBM) -> None:
    rows = _rows()
    # More than one library when there are more trees than one holds.
    per_round = model.booster_.num_model_per_iteration()
    assert len(model.compiled_.libraries) == -(-model.best_iteration_ * per_round // 200)
    # Some trees split on the categorical column.
    assert re.search(r"^num_cat=[1-9]", model.booster_.model_to_string(), re.MULTILINE)
    lightgbm = np.asarray(
        model.booster_.predict(rows, raw_score=True, num_iteration=model.best_iteration_)
    ).reshape(len(rows), per_round)
    ours = compiled_margin(model, rows, threads=1)
    assert ours is not None
    np.testing.assert_allclose(ours, lightgbm, atol=1e-9, rtol=0)
    np.testing.assert_allclose(compiled_margin(model, rows, threads=2), lightgbm, atol=1e-9)
    np.testing.assert_allclose(model.raw_margin(rows), lightgbm, atol=1e-9, rtol=0)


def test_compiled_trees_survive_pickling(model: CalibratedLGBM) -> None:
    rows = _rows()
    again = pickle.loads(pickle.dumps(model))
    assert again.compiled_.libraries == model.compiled_.libraries
    assert compiled_margin(again, rows, threads=1) is not None
    np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))


def test_stale_or_missing_compiled_trees_fall_back_to_lightgbm(model: CalibratedLGBM) -> None:
    rows = _rows()
    other = _fit(model.n_classes)
    assert compiled_margin(other, rows, threads=1) is None  # never compiled
    other.compiled_ = model.compiled_
    # The same libraries are stale for another booster (other rounds, other trees)...
    other.booster_ = other.booster_.__class__(
        model_str=other.booster_.model_to_string(num_iteration=10)
    )
    other.best_iteration_ = 10
    assert compiled_margin(other, rows, threads=1) is None
    # ... so predictions are LightGBM's own for that booster.
    expected = np.asarray(other.booster_.predict(rows, raw_score=True)).reshape(len(rows), -1)
    np.testing.assert_allclose(other.raw_margin(rows), expected, atol=1e-12, rtol=0)


def test_unloadable_libraries_warn_and_fall_back(
    model: CalibratedLGBM, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows()
    broken = pickle.loads(pickle.dumps(model))
    broken.compiled_.libraries = [b"not a shared library"] * len(broken.compiled_.libraries)
    with pytest.warns(RuntimeWarning, match="could not be loaded"):
        margin = broken.raw_margin(rows)
    expected = model.booster_.predict(rows, raw_score=True, num_iteration=model.best_iteration_)
    np.testing.assert_allclose(margin, np.asarray(expected).reshape(margin.shape), atol=1e-12)
    # A refitted estimator drops its compiled trees.
    monkeypatch.setattr(compiled, "_CACHE", {})
    X, y = _frame(300, 3)
    y = np.minimum(y, broken.n_classes - 1)
    assert broken.fit(X, y, X_valid=X, y_valid=y).compiled_ is None
