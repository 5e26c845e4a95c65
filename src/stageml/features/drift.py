"""Input drift: population stability index (PSI) of scoring features vs training.

The reference (bin edges and shares per feature) is computed on the training rows and
stored in the model, so a nightly job can warn when the export no longer looks like what
the model learned from (a new CRM field mapping, a tracking outage, a campaign burst).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_EPS = 1e-4
MISSING = "<missing>"


@dataclass(frozen=True)
class FeatureReference:
    """Training distribution of one feature: numeric bin edges or categories, and shares."""

    edges: tuple[float, ...] | None
    categories: tuple[str, ...] | None
    shares: tuple[float, ...]


def _numeric_shares(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    data = values.to_numpy(dtype=float)
    missing = np.isnan(data)
    counts = np.bincount(
        np.searchsorted(edges, data[~missing], side="right"), minlength=len(edges) + 1
    )
    total = np.append(counts, missing.sum()).astype(float)
    return total / max(len(data), 1)


def _categorical_shares(values: pd.Series, categories: tuple[str, ...]) -> np.ndarray:
    text = values.astype("string").fillna(MISSING)
    counts = text.value_counts().reindex(list(categories), fill_value=0).to_numpy(float)
    other = len(text) - counts.sum()
    return np.append(counts, other) / max(len(text), 1)


def fit_reference(
    features: pd.DataFrame, columns: list[str], bins: int = 10
) -> dict[str, FeatureReference]:
    """Per-feature training distribution: quantile bins for numbers, levels for categories."""
    reference: dict[str, FeatureReference] = {}
    for column in columns:
        series = features[column]
        if isinstance(series.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(
            series
        ):
            categories = tuple(series.astype("string").fillna(MISSING).value_counts().index[:50])
            shares = _categorical_shares(series, categories)
            reference[column] = FeatureReference(None, categories, tuple(shares))
        else:
            finite = series.to_numpy(dtype=float)
            finite = finite[~np.isnan(finite)]
            edges = (
                np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
                if len(finite)
                else np.array([])
            )
            reference[column] = FeatureReference(
                tuple(edges), None, tuple(_numeric_shares(series, edges))
            )
    return reference


def psi_table(reference: dict[str, FeatureReference], features: pd.DataFrame) -> pd.DataFrame:
    """PSI per feature (descending): < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted."""
    rows = []
    for column, ref in reference.items():
        if column not in features:
            continue
        if ref.categories is not None:
            actual = _categorical_shares(features[column], ref.categories)
        else:
            actual = _numeric_shares(features[column], np.asarray(ref.edges, dtype=float))
        expected = np.asarray(ref.shares)
        a, e = np.clip(actual, _EPS, None), np.clip(expected, _EPS, None)
        rows.append({"feature": column, "psi": float(np.sum((a - e) * np.log(a / e)))})
    table = pd.DataFrame(rows, columns=["feature", "psi"])
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
