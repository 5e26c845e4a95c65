"""The linear base margin a binary booster can start from."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression


class LinearBase:
    """A logistic regression on standardised ``log1p`` counts: a booster's starting margin.

    On weak signals a smooth monotone fit of a few counts ranks buyers better than trees
    do; boosting from its log-odds keeps that and lets trees add interactions and the
    features it does not use. Its exact SHAP values (interventional, with the training rows
    as background; exact for a linear model) are ``coef_j * (z_j - mean_z_j)`` in log-odds,
    with bias ``intercept + coef . mean_z``.
    """

    def __init__(self, columns: tuple[str, ...] | list[str], *, c: float = 1.0) -> None:
        self.columns = tuple(columns)
        self.c = c

    def _log_counts(self, X: pd.DataFrame) -> np.ndarray:
        values = X.loc[:, list(self.columns)].to_numpy(dtype=float, na_value=0.0)
        return np.asarray(np.log1p(np.clip(np.nan_to_num(values, nan=0.0), 0.0, None)))

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Standardised log-counts ``z``, shape (n, len(columns))."""
        return np.asarray((self._log_counts(X) - self.center_) / self.scale_)

    def fit(
        self, X: pd.DataFrame, y: np.ndarray, *, sample_weight: np.ndarray | None = None
    ) -> LinearBase:
        """Fit the scaling on X's rows, then the L2-regularised logistic regression."""
        counts = self._log_counts(X)
        self.center_ = counts.mean(axis=0)
        scale = counts.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        z = self.transform(X)
        model = LogisticRegression(C=self.c, max_iter=5000)
        model.fit(z, np.asarray(y, dtype=int), sample_weight=sample_weight)
        self.coef_ = model.coef_[0].astype(float)
        self.intercept_ = float(model.intercept_[0])
        # The SHAP background: the fitting rows (mean of z, zero up to rounding).
        self.mean_z_ = z.mean(axis=0)
        return self

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds, shape (n,)."""
        return np.asarray(self.intercept_ + self.transform(X) @ self.coef_)

    def contributions(self, X: pd.DataFrame) -> tuple[np.ndarray, float]:
        """Per-column SHAP values (n, len(columns)) and the bias; they sum to the margin."""
        values = (self.transform(X) - self.mean_z_) * self.coef_
        return values, float(self.intercept_ + self.coef_ @ self.mean_z_)
