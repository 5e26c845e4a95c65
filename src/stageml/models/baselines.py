"""Baselines every metric is reported beside: majority, a rule, a logistic, a count GBM.

All are fitted on the same training rows and scored on the same test rows as the model;
a model that cannot beat them on its own backtest is not worth promoting.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future
from typing import Any

import numpy as np
import pandas as pd
from joblib.externals.loky import get_reusable_executor
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from stageml.models.estimators import free_threads


class MajorityBaseline(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts the training class frequencies for every row."""

    def __init__(self, *, n_classes: int = 2) -> None:
        self.n_classes = n_classes

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> MajorityBaseline:
        """Store the class frequencies."""
        counts = np.bincount(np.asarray(y, dtype=int), minlength=self.n_classes)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Return the prior for every row."""
        return np.tile(self.prior_, (len(X), 1))


class LastActivityRule(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """The stage most associated with the buyer's most recent activity.

    Learned as P(class | last activity) on the training rows (Laplace-smoothed towards the
    prior); a buyer's prediction is the distribution of its latest activity. This is the
    rule a sales-ops analyst would write: "last thing they did was a demo, so evaluating".
    """

    def __init__(
        self, *, n_classes: int = 2, column: str = "last_activity_1", smoothing: float = 1.0
    ) -> None:
        self.n_classes = n_classes
        self.column = column
        self.smoothing = smoothing

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LastActivityRule:
        """Count classes per last activity."""
        y = np.asarray(y, dtype=int)
        counts = np.bincount(y, minlength=self.n_classes).astype(float)
        self.prior_ = counts / counts.sum()
        key = X[self.column].astype("string").fillna("<none>").to_numpy()
        table = pd.crosstab(key, y).reindex(columns=range(self.n_classes), fill_value=0)
        smoothed = table.to_numpy(float) + self.smoothing * self.prior_
        self.table_ = pd.DataFrame(
            smoothed / smoothed.sum(axis=1, keepdims=True), index=table.index
        )
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class distribution of each row's last activity (prior when unseen)."""
        key = X[self.column].astype("string").fillna("<none>").to_numpy()
        found = self.table_.reindex(key).to_numpy(dtype=float, copy=True)
        missing = np.isnan(found).any(axis=1)
        found[missing] = self.prior_
        return np.asarray(found)


def logistic_baseline(X: pd.DataFrame, *, n_classes: int, random_state: int = 0) -> Pipeline:
    """Logistic regression on the same features: scaled log-counts, one-hot categoricals.

    A binary one is solved by Newton-Cholesky to convergence (a handful of iterations of
    a Hessian the size of the columns squared); a multiclass one by lbfgs, capped.
    """
    categorical = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    numeric = [c for c in X.columns if c not in categorical]
    to_text = FunctionTransformer(_as_text, feature_names_out="one-to-one")
    prepare = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(
                    MedianImputer(),
                    FunctionTransformer(_signed_log1p, feature_names_out="one-to-one"),
                    StandardScaler(),
                ),
                numeric,
            ),
            (
                "cat",
                make_pipeline(to_text, OneHotEncoder(handle_unknown="ignore", min_frequency=20)),
                categorical,
            ),
        ]
    )
    # Multiclass: capped at 300 lbfgs iterations to bound training time on large snapshot
    # tables; it may stop short of full convergence (the README says so beside the baseline
    # figures). Newton-Cholesky's Hessian is (columns x classes) squared there: too costly.
    # Its table in single precision: each iteration is two products with it, bound by
    # memory, so half the bytes fit it 1.75x faster (test metrics within 1e-3, README
    # "Fitting speed"). Binary: Newton-Cholesky converges in ~7 iterations in half lbfgs's
    # capped time, in double precision (its Hessian is solved, not just multiplied).
    solver = "newton-cholesky" if n_classes == 2 else "lbfgs"
    model = LogisticRegression(max_iter=300, C=1.0, solver=solver, random_state=random_state)
    if n_classes == 2:
        return make_pipeline(prepare, model)
    single = FunctionTransformer(_single_precision, feature_names_out="one-to-one")
    return make_pipeline(prepare, single, model)


class MedianImputer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Missing values replaced by the column's training median; 0 for an all-missing column.

    What ``SimpleImputer(strategy="median", keep_empty_features=True)`` computes, with
    ``np.nanmedian`` instead of masked arrays: 15-30x faster on a 200,000-row snapshot table,
    where the masked sort took 26 s of the logistic baselines' 183 s in a profiled fit.
    """

    def fit(self, X: Any, y: Any = None) -> MedianImputer:
        """Store each column's median over its non-missing values."""
        values = np.asarray(X, dtype=float)
        empty = np.isnan(values).all(axis=0)
        with warnings.catch_warnings():  # all-NaN columns: their median is set to 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(values, axis=0) if len(values) else np.zeros(values.shape[1])
        self.statistics_ = np.where(empty, 0.0, medians)
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Fill each column's missing values with its median."""
        check_is_fitted(self, "statistics_")
        values = np.asarray(X, dtype=float)
        return np.asarray(np.where(np.isnan(values), self.statistics_, values))


def count_columns(columns: list[str]) -> list[str]:
    """Plain counts per activity, per trailing window and over all history (``act_*``)."""
    return [c for c in columns if c.startswith("act_")]


def count_gbm_baseline(columns: list[str], *, random_state: int = 0) -> Pipeline:
    """LightGBM with its default settings on the windowed activity counts only.

    What a data scientist writes in an afternoon without stageml: if the product cannot
    beat it, its other features and its fitting are not paying for themselves. On one
    thread: on the 20,000-buyer backtest's rows it fits as fast as on two (8.7 s against
    9.6 s for the stage rows) with the same probabilities, and it fits beside the boosters.
    """
    counts = ColumnTransformer([("counts", "passthrough", count_columns(columns))])
    model = LGBMClassifier(
        random_state=random_state, deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1
    )
    return make_pipeline(counts, model)


def fitted_probabilities(
    pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame
) -> np.ndarray:
    """Fit a baseline on ``(X, y)``; return its probabilities on ``X_test``.

    A top-level function, so that training can run it in a worker (``fit_in_background``).
    """
    return np.asarray(fit_quietly(pipeline, X, y).predict_proba(X_test))


def fit_in_background(
    pipeline: Pipeline,
    X: pd.DataFrame,
    y: np.ndarray,
    X_test: pd.DataFrame,
    *,
    worker: bool = True,
) -> Future[np.ndarray]:
    """Fit a baseline in a reusable worker process (here if not ``worker`` or on one core).

    The baselines are single-threaded (lbfgs and its preprocessing, the count GBM) while
    the boosters use both cores, so on two or more cores they fit beside the boosters
    instead of after them. The worker is loky's (scikit-learn already depends on it):
    spawned once, reused by later fits, gone after 5 idle minutes; jobs run in the order
    given. The numbers are the ones fitted in-process (one BLAS thread either way).
    """
    if not worker or free_threads() < 2:
        done: Future[np.ndarray] = Future()
        try:
            done.set_result(fitted_probabilities(pipeline, X, y, X_test))
        except Exception as error:  # noqa: BLE001 - raised by .result(), as from a worker
            done.set_exception(error)
        return done
    executor = get_reusable_executor(max_workers=1, timeout=300)
    future: Future[np.ndarray] = executor.submit(fitted_probabilities, pipeline, X, y, X_test)
    return future


def fit_quietly(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    """Fit, muting lbfgs's iteration-cap warning: the cap is deliberate (see above)."""
    # One BLAS thread: on a shared 2-core machine OpenBLAS with 2 threads fit 5-8x slower.
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return pipeline.fit(X, y)


def _single_precision(values: Any) -> Any:
    return values.astype(np.float32)  # a dense array or a sparse matrix


def _as_text(frame: Any) -> np.ndarray:
    return np.asarray(pd.DataFrame(frame).astype("string").fillna("<none>").astype(object))


def _signed_log1p(values: np.ndarray) -> np.ndarray:
    # sign(v) * log1p(|v|), in place: np.sign over a 200,000 x 169 table took ~5 s, 10x this.
    out = np.abs(np.asarray(values, dtype=float))
    np.log1p(out, out=out)
    return np.asarray(np.copysign(out, values, out=out))
