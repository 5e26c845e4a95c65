"""LightGBM classifiers with time-respecting early stopping and held-out calibration.

Commercial scores are ranks dressed as percentages; ours are probabilities. The booster is
trained on early as-of instants, stops on a later validation period, and its raw scores
are then mapped to calibrated probabilities on that same later period (isotonic per class,
renormalised), so a 0.7 means seven buyers in ten. Optionally the booster is then refitted
on train + validation with the early-stopped number of rounds (the calibration map still
comes from the first fit's out-of-time validation predictions).

A binary model can start from a linear base margin (:class:`LinearBase`): a regularised
logistic regression on log-counts, with the trees boosted from its log-odds
(``init_score``) so that they learn only what the smooth linear fit misses.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from stageml.errors import ModelError
from stageml.models.choices import half_life_name, one_standard_error
from stageml.models.compiled import as_matrix, compiled_margin

# Re-exported: bundles pickled before the moves name them here.
from stageml.models.isotonic import CenteredIsotonic
from stageml.models.linear_base import LinearBase

Calibration = Literal["isotonic", "centered_isotonic", "sigmoid", "none"]
# Trees per pass over the rows in prediction (see CalibratedLGBM._booster_margin).
_TREES_PER_BLOCK = 200


def free_threads() -> int:
    """Cores this process may use: LightGBM slows ~20x when it asks for more than are free."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, int(cores or 1))


class CalibratedLGBM(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A LightGBM classifier (binary or multiclass) calibrated on later held-out data.

    Parameters
    ----------
    n_classes
        2 for binary, otherwise the number of ordered classes (labels are 0..n-1).
    num_leaves, max_depth, learning_rate, n_estimators, min_child_samples,
    feature_fraction, bagging_fraction, lambda_l2, cat_smooth, cat_l2, min_data_per_group,
    max_cat_threshold
        LightGBM capacity and regularisation (the last four for categorical splits).
    early_stopping_rounds
        Rounds without improvement on the validation period before stopping.
    class_weight
        ``"balanced"`` weights classes inversely to their frequency so that rare stages
        shape the trees; calibration on unweighted held-out data then restores honest
        probabilities. ``None`` trains unweighted.
    recency_half_life
        Weight each training row by ``0.5 ** (age / recency_half_life)``, its age counted
        from the latest as-of instant among the rows being fitted (``fit``'s ``as_of``), so
        that the most recent behaviour weighs most when rates drift. ``None``: no weighting.
        A tuple of candidates (``None`` allowed), simplest first: the first fit is run once
        per candidate and :func:`one_standard_error` picks on the validation log-loss
        (``recency_half_life_``; the mean losses in ``recency_scores_``). How fast an
        export's rates drift is a property of the export, not a constant a default can know.
    calibration
        ``"isotonic"``, ``"centered_isotonic"`` (isotonic step centres joined linearly, so
        the map is strictly increasing between them and keeps the booster's ranking),
        ``"sigmoid"`` or ``"none"``.
    refit
        After early stopping and calibration, refit the booster on train + validation with
        the chosen number of rounds (recent rows matter on short or drifting exports). The
        calibration map is the one fitted on the first booster's out-of-time validation
        predictions.
    linear_columns
        Binary only: columns of a linear base margin (:class:`LinearBase`, a regularised
        logistic regression on their standardised ``log1p``), fitted on the training rows
        with the booster's class weights; the booster is boosted from its log-odds
        (``init_score``) and the model's raw margin is the sum of both. Refitted with the
        booster when ``refit``. ``None`` or empty: trees only.
    linear_c
        Inverse L2 strength of the linear base (scikit-learn's ``C``).
    decreasing_columns
        Columns the model's score may only fall along (LightGBM monotone constraints,
        ``advanced`` method), e.g. time elapsed since the buyer's activity: a prior that
        keeps one period's odd bump (deals of 60-90 days winning most) from being learned
        as a rule. ``None`` or empty: unconstrained.
    ignored_columns
        Columns the model takes but may never split on: they are blanked (missing) while
        fitting, so their contributions are exactly zero and every model of a bundle still
        reads the same feature frame. The stage model ignores the recorded stage: it is
        there to infer the stage from behaviour, not to echo the CRM's (late) record.
    random_state
        Seed for LightGBM (deterministic mode is always on).
    n_jobs
        Threads; default the cores free to this process.

    """

    def __init__(
        self,
        *,
        n_classes: int = 2,
        num_leaves: int = 15,
        max_depth: int = 6,
        learning_rate: float = 0.05,
        n_estimators: int = 400,
        min_child_samples: int = 40,
        feature_fraction: float = 0.8,
        bagging_fraction: float = 0.8,
        lambda_l2: float = 1.0,
        early_stopping_rounds: int = 30,
        cat_smooth: float = 10.0,
        cat_l2: float = 10.0,
        min_data_per_group: int = 100,
        max_cat_threshold: int = 32,
        class_weight: Literal["balanced"] | None = "balanced",
        recency_half_life: pd.Timedelta | None | tuple[pd.Timedelta | None, ...] = None,
        calibration: Calibration = "isotonic",
        refit: bool = False,
        linear_columns: tuple[str, ...] | None = None,
        linear_c: float = 1.0,
        decreasing_columns: tuple[str, ...] | None = None,
        ignored_columns: tuple[str, ...] | None = None,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.n_classes = n_classes
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.early_stopping_rounds = early_stopping_rounds
        self.cat_smooth = cat_smooth
        self.cat_l2 = cat_l2
        self.min_data_per_group = min_data_per_group
        self.max_cat_threshold = max_cat_threshold
        self.class_weight = class_weight
        self.recency_half_life = recency_half_life
        self.calibration = calibration
        self.refit = refit
        self.linear_columns = linear_columns
        self.linear_c = linear_c
        self.decreasing_columns = decreasing_columns
        self.ignored_columns = ignored_columns
        self.random_state = random_state
        self.n_jobs = n_jobs

    def lgb_params(self) -> dict[str, Any]:
        """Return the LightGBM parameter dict (also logged to MLflow)."""
        binary = self.n_classes == 2
        return {
            "objective": "binary" if binary else "multiclass",
            **({} if binary else {"num_class": self.n_classes}),
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "cat_smooth": self.cat_smooth,
            "cat_l2": self.cat_l2,
            "min_data_per_group": self.min_data_per_group,
            "max_cat_threshold": self.max_cat_threshold,
            "seed": self.random_state,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.n_jobs or free_threads(),
            "verbosity": -1,
            **self._monotone(),
        }

    def _monotone(self) -> dict[str, Any]:
        if not self.decreasing_columns:
            return {}
        names = list(self.feature_names_in_)  # set first thing in fit
        missing = sorted(set(self.decreasing_columns) - set(names))
        if missing:
            raise ModelError(f"decreasing_columns not among the features: {missing[:5]}")
        return {
            "monotone_constraints": [-1 if c in self.decreasing_columns else 0 for c in names],
            "monotone_constraints_method": "advanced",
        }

    def _weights(self, y: np.ndarray, as_of: np.ndarray | None = None) -> np.ndarray | None:
        weights = None
        if self.class_weight is not None:
            counts = np.bincount(y, minlength=self.n_classes).astype(float)
            weights = np.asarray((len(y) / (self.n_classes * np.maximum(counts, 1.0)))[y])
        half_life = getattr(self, "recency_half_life_", None)
        if half_life is not None:
            if as_of is None:
                raise ModelError(
                    "recency_half_life is set but fit() got no as-of instants for its rows. "
                    "Fix: pass as_of (and as_of_valid when refit=True)"
                )
            stamps = pd.to_datetime(np.asarray(as_of))
            age = (stamps.max() - stamps) / pd.Timedelta(half_life)
            recency = np.power(0.5, np.asarray(age, dtype=float))
            weights = recency if weights is None else weights * recency
        return weights

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        X_valid: pd.DataFrame,
        y_valid: np.ndarray,
        as_of: np.ndarray | None = None,
        as_of_valid: np.ndarray | None = None,
        groups_valid: np.ndarray | None = None,
    ) -> CalibratedLGBM:
        """Train on (X, y), stop early and calibrate on the later (X_valid, y_valid).

        ``as_of`` and ``as_of_valid`` are the rows' as-of instants, needed (only) for
        ``recency_half_life``; validation rows are never weighted. ``groups_valid`` (the
        validation rows' buyers) makes the recency choice's standard error count a buyer's
        rows at successive instants as one draw, not as independent ones.
        """
        y = np.asarray(y, dtype=int)
        y_valid = np.asarray(y_valid, dtype=int)
        self.compiled_ = None  # compiled at registration (stageml.models.compiled)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.categories_ = {
            c: X[c].cat.categories for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)
        }
        X, X_valid = self._blank(X), self._blank(X_valid)
        candidates = (
            self.recency_half_life
            if isinstance(self.recency_half_life, tuple)
            else (self.recency_half_life,)
        )
        self.classes_ = np.arange(self.n_classes)
        fits, losses = [], []
        binned: tuple[lgb.Dataset, lgb.Dataset] | None = None
        for half_life in candidates:
            self.recency_half_life_ = half_life
            self.booster_, self.linear_, binned = self._first_fit(
                X, y, X_valid, y_valid, as_of, binned
            )
            self.best_iteration_ = int(self.booster_.best_iteration or self.n_estimators)
            raw = self.predict_proba_raw(X_valid)
            fits.append((half_life, self.booster_, self.linear_, raw))
            if len(candidates) > 1:
                proba = raw[np.arange(len(y_valid)), y_valid]
                losses.append(-np.log(np.clip(proba, 1e-15, 1.0)))
        self.recency_scores_ = {
            half_life_name(f[0]): float(loss.mean()) for f, loss in zip(fits, losses, strict=False)
        }
        self.recency_half_life_, self.booster_, self.linear_, raw = fits[
            one_standard_error(losses, groups_valid) if losses else 0
        ]
        self.best_iteration_ = int(self.booster_.best_iteration or self.n_estimators)
        self.calibrators_ = self._fit_calibrators(raw, y_valid)
        if self.refit:
            X_all = pd.concat([X, X_valid])
            y_all = np.concatenate([y, y_valid])
            as_of_all = (
                None
                if as_of is None or as_of_valid is None
                else np.concatenate([as_of, as_of_valid])
            )
            self.linear_ = self._fit_linear(X_all, y_all, as_of_all)
            both = lgb.Dataset(
                X_all,
                label=y_all,
                weight=self._weights(y_all, as_of_all),
                init_score=self._init(X_all),
                free_raw_data=True,
            )
            # Exactly best_iteration_ rounds, so num_iteration=best_iteration_ reads them all.
            self.booster_ = lgb.train(self.lgb_params(), both, num_boost_round=self.best_iteration_)
        return self

    def _blank(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` with ``ignored_columns`` all missing (dtype kept: categories stay known)."""
        if not self.ignored_columns:
            return X
        missing = sorted(set(self.ignored_columns) - set(X.columns))
        if missing:
            raise ModelError(f"ignored_columns not among the features: {missing[:5]}")
        none = np.zeros(len(X), dtype=bool)
        return X.assign(**{c: X[c].where(none) for c in self.ignored_columns})

    def _first_fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        X_valid: pd.DataFrame,
        y_valid: np.ndarray,
        as_of: np.ndarray | None,
        binned: tuple[lgb.Dataset, lgb.Dataset] | None = None,
    ) -> tuple[lgb.Booster, LinearBase | None, tuple[lgb.Dataset, lgb.Dataset]]:
        """Fit on the training period, stopped early on the validation period's log-loss.

        ``binned``: the training and validation Datasets of an earlier candidate, reused
        with this candidate's weights and base margins: LightGBM's bins come from the
        feature values alone, so they are the same, and binning 200,000 rows takes 1-2 s.
        """
        self.linear_ = self._fit_linear(X, y, as_of)
        weight = self._weights(y, as_of)
        unweighted = weight is None or bool(np.all(weight == 1))
        if binned is None or (unweighted and binned[0].get_weight() is not None):
            # LightGBM's set_weight leaves earlier weights in place when given none (or all
            # ones): a fresh Dataset instead.
            train = lgb.Dataset(
                X, label=y, weight=weight, init_score=self._init(X), free_raw_data=True
            )
            valid = lgb.Dataset(
                X_valid, label=y_valid, init_score=self._init(X_valid), reference=train
            )
        else:
            train, valid = binned
            train.set_weight(weight)
            if self.linear_ is not None:
                train.set_init_score(self._init(X))
                valid.set_init_score(self._init(X_valid))
        booster = lgb.train(
            self.lgb_params(),
            train,
            num_boost_round=self.n_estimators,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        return booster, self.linear_, (train, valid)

    def _fit_linear(
        self, X: pd.DataFrame, y: np.ndarray, as_of: np.ndarray | None
    ) -> LinearBase | None:
        if not self.linear_columns:
            return None
        if self.n_classes != 2:
            raise ModelError("a linear base margin is only supported for a binary model")
        return LinearBase(self.linear_columns, c=self.linear_c).fit(
            X, y, sample_weight=self._weights(y, as_of)
        )

    def _init(self, X: pd.DataFrame) -> np.ndarray | None:
        linear = getattr(self, "linear_", None)
        return None if linear is None else linear.margin(X)

    def _fit_calibrators(self, raw: np.ndarray, y: np.ndarray) -> list[Any]:
        if self.calibration == "none":
            return []
        columns = [1] if self.n_classes == 2 else range(self.n_classes)
        fitted: list[Any] = []
        for k in columns:
            target = (y == k).astype(int)
            # Bounded away from 0 and 1: an empty top or bottom bin in the validation
            # period is not proof of certainty, and "0% likely" misleads a seller.
            bound = 0.5 / max(len(y), 1)
            if self.calibration == "isotonic":
                model: Any = IsotonicRegression(out_of_bounds="clip", y_min=bound, y_max=1 - bound)
                model.fit(raw[:, k], target)
            elif self.calibration == "centered_isotonic":
                model = CenteredIsotonic(bound=bound).fit(raw[:, k], target)
            else:
                model = LogisticRegression(C=1e6).fit(_logit(raw[:, k])[:, None], target)
            fitted.append(model)
        return fitted

    def _check(self, X: pd.DataFrame) -> None:
        check_is_fitted(self, "booster_")
        if list(X.columns) != list(self.feature_names_in_):
            missing = sorted(set(self.feature_names_in_) - set(X.columns))
            raise ModelError(
                f"feature columns differ from training (missing: {missing[:5]}). Fix: build "
                "features with the vocabulary stored in the model"
            )

    def predict_proba_raw(self, X: pd.DataFrame, *, threads: int | None = None) -> np.ndarray:
        """Uncalibrated probabilities from the booster, shape (n, n_classes).

        ``threads`` caps LightGBM's threads (1 inside a worker process: asking for more
        threads than are free slows LightGBM down ~20x).
        """
        margin = self.raw_margin(X, threads=threads)
        if self.n_classes == 2:
            scores = 1.0 / (1.0 + np.exp(-margin[:, 0]))
            return np.column_stack([1.0 - scores, scores])
        exp = np.exp(margin - margin.max(axis=1, keepdims=True))
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def raw_margin(self, X: pd.DataFrame, *, threads: int | None = None) -> np.ndarray:
        """Return the raw margin before the link, shape (n, 1) binary or (n, K).

        The booster's raw score plus the linear base margin where there is one (what
        :func:`stageml.explain.contributions.contributions` adds up to).
        """
        self._check(X)
        raw = self._booster_margin(X, threads or free_threads())
        linear = getattr(self, "linear_", None)
        return raw if linear is None else raw + linear.margin(X)[:, None]

    def _booster_margin(self, X: pd.DataFrame, threads: int) -> np.ndarray:
        """Return the raw score: compiled trees where present, else LightGBM in blocks.

        Compiled trees (``compiled_``, :mod:`stageml.models.compiled`) are used while they
        match the booster. Otherwise the raw score is summed over blocks of about
        ``_TREES_PER_BLOCK`` trees: LightGBM walks every tree for one row before the next
        row, and ~2,000 trees do not stay in the CPU cache from row to row; passing all rows
        through one block of trees at a time keeps them there. A 5-class model of 392
        rounds on 15,000 rows predicts 1.5x faster on one thread and 2.8x faster on two;
        the block sums agree with a single pass to ~1e-14.
        """
        compiled = compiled_margin(self, X, threads)
        if compiled is not None:
            return compiled
        per_round = self.booster_.num_model_per_iteration()
        rounds = min(self.best_iteration_, self.booster_.current_iteration())
        step = max(1, _TREES_PER_BLOCK // per_round)
        total = np.zeros((len(X), per_round))
        # Converted once, not once per block: LightGBM turns a frame into this same matrix
        # (training category codes, unknown NaN) on every call, ~10 times per prediction.
        values = as_matrix(X, self.categories_)
        for start in range(0, rounds, step):
            total += np.asarray(
                self.booster_.predict(
                    values,
                    raw_score=True,
                    start_iteration=start,
                    num_iteration=min(step, rounds - start),
                    num_threads=threads,
                )
            ).reshape(len(X), per_round)
        return total

    def predict_proba(self, X: pd.DataFrame, *, threads: int | None = None) -> np.ndarray:
        """Calibrated probabilities, rows summing to one."""
        raw = self.predict_proba_raw(X, threads=threads)
        return self.calibrate(raw)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Map raw booster probabilities to calibrated ones."""
        check_is_fitted(self, "calibrators_")
        if not self.calibrators_:
            return raw
        if self.n_classes == 2:
            p = _apply(self.calibrators_[0], raw[:, 1])
            return np.column_stack([1.0 - p, p])
        cal = np.column_stack([_apply(m, raw[:, k]) for k, m in enumerate(self.calibrators_)])
        total = cal.sum(axis=1, keepdims=True)
        # A row the calibrators zero out entirely falls back to the raw distribution.
        return np.where(total > 0, cal / np.where(total > 0, total, 1.0), raw)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Most probable class (calibrated)."""
        return np.asarray(self.predict_proba(X).argmax(axis=1))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)))


def _apply(model: Any, scores: np.ndarray) -> np.ndarray:
    if isinstance(model, IsotonicRegression | CenteredIsotonic):
        return np.asarray(model.predict(scores))
    return np.asarray(model.predict_proba(_logit(scores)[:, None])[:, 1])
