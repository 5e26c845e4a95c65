"""Multi-horizon inflection: one discrete-time hazard model for every horizon.

Separate models per horizon can say a buyer is likelier to advance within 7 days than
within 30. Here the horizons ``h_1 < ... < h_K`` (``labels.horizons``) cut time after
``t + label_delay`` into intervals; every (buyer, as-of) row still at risk at the start of an
interval and observed through it (or advancing in it) becomes one person-period row, with
the interval as a feature and "advances in this interval" as the label. One LightGBM learns
the hazard of every interval; the probability of advancing within ``h_k`` is
``1 - prod_{j<=k} (1 - hazard_j)``, monotone in the horizon by construction.

A row's observation ends at the end of its period (train rows at the first validation
instant, validation rows at the first test instant), so no label looks into a later period
whatever the horizon. An exit does not end the risk: a later stage recorded after it
re-opens the buyer, as in :func:`stageml.models.labels.horizon_label`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stageml.config import Params
from stageml.durations import format_duration
from stageml.models.estimators import CalibratedLGBM
from stageml.models.labels import horizon_label
from stageml.models.metrics import inflection_metrics

INTERVAL = "hazard_interval"


def probability_column(horizon: pd.Timedelta) -> str:
    """Score column of one horizon, e.g. ``inflection_probability_7d``."""
    return f"inflection_probability_{format_duration(horizon)}"


def person_periods(
    X: pd.DataFrame,
    advance_after: pd.Series,
    observed_for: pd.Series,
    horizons: Sequence[pd.Timedelta],
) -> tuple[pd.DataFrame, np.ndarray]:
    """Expand rows into (row, interval) rows at risk and observed; label = advanced in it.

    ``advance_after``: time from ``t + d`` to the first later-stage entry (NaT if none);
    ``observed_for``: how long after ``t + d`` the row is observed.
    """
    after = pd.to_timedelta(advance_after).to_numpy()
    seen = pd.to_timedelta(observed_for).to_numpy()
    frames, labels = [], []
    start = np.timedelta64(0, "ns")
    for k, end in enumerate(horizons):
        stop = np.timedelta64(pd.Timedelta(end).value, "ns")
        advanced_before = ~pd.isna(after) & (after <= start)
        event = ~pd.isna(after) & (after > start) & (after <= stop) & (after <= seen)
        at_risk = ~advanced_before & (event | (seen >= stop))
        frames.append(_with_interval(X.loc[at_risk], k))
        labels.append(event[at_risk].astype(int))
        start = stop
    return pd.concat(frames), np.concatenate(labels)


def _with_interval(X: pd.DataFrame, k: int) -> pd.DataFrame:
    """``X`` with the interval index as its last column (one concat: X may be fragmented)."""
    return pd.concat([X, pd.Series(float(k), index=X.index, name=INTERVAL)], axis=1)


@dataclass
class HazardModel:
    """The fitted hazard booster and the horizons it answers."""

    horizons: tuple[pd.Timedelta, ...]
    booster: CalibratedLGBM

    def predict(self, X: pd.DataFrame, *, threads: int | None = None) -> np.ndarray:
        """Probabilities of advancing within each horizon, shape (n, K), rising along K."""
        survival = np.ones(len(X))
        out = np.zeros((len(X), len(self.horizons)))
        for k in range(len(self.horizons)):
            rows = _with_interval(X, k)
            hazard = self.booster.predict_proba(rows, threads=threads)[:, 1]
            survival = survival * (1.0 - hazard)
            out[:, k] = 1.0 - survival
        return out


def fit_hazard(
    snaps: pd.DataFrame,
    columns: list[str],
    period: pd.Series,
    period_end: dict[str, pd.Timestamp],
    params: Params,
    *,
    decreasing_columns: tuple[str, ...] | None = None,
) -> HazardModel:
    """Fit the hazard model on the train period, stopping early on the validation period.

    Rows are the buyers who can still advance with a known stage; ``period_end`` maps
    ``train`` and ``valid`` to the instant their observation stops (the next period's
    first as-of instant). ``decreasing_columns`` are the single-horizon inflection model's
    (cooling). Its rows are not weighted by recency: the latest rows' observation stops
    at their period's end, so they hold only the short intervals, and weighting them up
    starved the long horizons (simulated 90-day ECE 0.051 → 0.151).
    """
    horizons = tuple(sorted(params.labels.horizons))
    usable = snaps["can_advance"].fillna(False).astype(bool) & snaps["stage_index"].notna()
    expanded = {}
    for name in ("train", "valid"):
        rows = snaps[usable & (period == name)]
        start = rows["as_of"] + params.labels.label_delay
        seen = np.minimum(
            pd.to_timedelta(rows["observed_for"]).to_numpy(),
            (period_end[name] - start).to_numpy(),
        )
        expanded[name] = person_periods(
            rows[columns], rows["advance_after"], pd.Series(seen, index=rows.index), horizons
        )
    own = params.train.inflection_fit
    booster = CalibratedLGBM(
        n_classes=2,
        **params.train.inflection.model_dump(),
        class_weight=None,
        calibration="none",
        refit=own.refit,
        decreasing_columns=decreasing_columns,
        random_state=params.seed,
    )
    (X, y), (Xv, yv) = expanded["train"], expanded["valid"]
    booster.fit(X, y, X_valid=Xv, y_valid=yv)
    return HazardModel(horizons=horizons, booster=booster)


def horizon_metrics(
    model: HazardModel,
    test: pd.DataFrame,
    columns: list[str],
    as_scored: Callable[[pd.DataFrame, np.ndarray], np.ndarray] | None = None,
) -> dict[str, float]:
    """Test-period metrics per horizon on buyers who can advance (``inflection_<h>.*``).

    ``as_scored(rows, p)`` turns one horizon's probabilities into the product's (the final
    stage's discount, exits), so the metrics describe what users are shown.
    """
    rows = test[test["can_advance"].fillna(False).astype(bool)]
    proba = model.predict(rows[columns]) if len(rows) else np.zeros((0, len(model.horizons)))
    if as_scored is not None and len(rows):
        proba = np.column_stack([as_scored(rows, proba[:, k]) for k in range(proba.shape[1])])
    metrics: dict[str, float] = {}
    for k, horizon in enumerate(model.horizons):
        label = horizon_label(rows, "advance", horizon)
        known = label.notna().to_numpy()
        if known.sum() == 0 or label[known].nunique() < 2:
            continue
        y = label[known].astype(int).to_numpy()
        scores = inflection_metrics(y, proba[known, k])
        name = f"inflection_{format_duration(horizon)}.can_advance"
        metrics.update({f"{name}.{key}": value for key, value in scores.items()})
    return metrics
