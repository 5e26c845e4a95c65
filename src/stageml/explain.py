"""Per-buyer reason codes from LightGBM's native TreeSHAP (``pred_contrib=True``).

Contributions are in the booster's **raw margin units**: log-odds for the binary
inflection model, the per-class softmax logit for the multiclass stage model. They add up
(with the bias) to the raw score *before* calibration, so they explain the ranking of a
buyer, not the calibrated percentage shown next to it.

Reason codes for a row are the features with the largest positive ("up") and most
negative ("down") contributions to the predicted stage's logit and to the inflection
log-odds. The final stage has no inflection (its likelihood is zero by definition in
:meth:`StageModel.predict_features`), so its inflection reasons are left empty.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from stageml.errors import ModelError
from stageml.estimators import CalibratedLGBM
from stageml.feature_text import describer
from stageml.features import KEYS
from stageml.model import StageModel

# Reason codes are computed in batches so that peak memory is one batch's (n, K, F+1) array.
BATCH_ROWS = 100_000
TASKS = ("stage", "inflection")
REASON_COLUMNS = ("row", "model", "direction", "rank", "feature", "value", "contribution", "text")

_worker_booster: lgb.Booster | None = None


def _init_worker(model_string: str) -> None:
    global _worker_booster
    _worker_booster = lgb.Booster(model_str=model_string)


def _worker_contrib(X: pd.DataFrame, num_iteration: int) -> np.ndarray:
    assert _worker_booster is not None, "worker initialiser did not run"
    return np.asarray(
        _worker_booster.predict(X, pred_contrib=True, num_iteration=num_iteration, num_threads=1)
    )


def _raw_contrib(estimator: CalibratedLGBM, X: pd.DataFrame, workers: int) -> np.ndarray:
    if workers <= 1 or len(X) < 2:
        return np.asarray(
            estimator.booster_.predict(
                X, pred_contrib=True, num_iteration=estimator.best_iteration_
            )
        )
    bounds = np.linspace(0, len(X), min(workers, len(X)) + 1).astype(int)
    chunks = [X.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    # "spawn", not fork: a forked child of a process that already ran OpenMP can hang.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=len(chunks),
        mp_context=context,
        initializer=_init_worker,
        initargs=(estimator.booster_.model_to_string(),),
    ) as pool:
        parts = list(pool.map(_worker_contrib, chunks, [estimator.best_iteration_] * len(chunks)))
    return np.concatenate(parts, axis=0)


def contributions(
    estimator: CalibratedLGBM, X: pd.DataFrame, *, workers: int | None = None
) -> np.ndarray:
    """TreeSHAP contributions of every feature, in raw margin units.

    Parameters
    ----------
    estimator
        A fitted :class:`CalibratedLGBM` (its ``best_iteration_`` trees are explained).
    X
        Feature rows with the training columns and dtypes.
    workers
        Worker processes, each running LightGBM single-threaded on a slice of rows.
        ``None`` or ``1`` runs in this process, where LightGBM already spreads rows over
        its OpenMP threads; on the 2-core benchmark machine the process pool was no
        faster (see ``benchmarks/explain.py``), so it is opt-in.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, K, F + 1)`` for a K-class model, ``(n, 1, F + 1)`` for a binary one;
        the last entry along the final axis is the bias (expected raw score). Summed over
        the final axis this is the raw score ``booster.predict(X, raw_score=True)``.

    """
    estimator._check(X)
    if workers is not None and workers < 1:
        raise ModelError(f"workers must be at least 1, got {workers}")
    if workers is None:
        workers = 1
    n_features = X.shape[1]
    k = 1 if estimator.n_classes == 2 else estimator.n_classes
    if len(X) == 0:
        return np.zeros((0, k, n_features + 1))
    # LightGBM lays multiclass contributions out class by class, each ending in its bias.
    return _raw_contrib(estimator, X, workers).reshape(len(X), k, n_features + 1)


def _top(values: np.ndarray, k: int, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest ``sign * values`` per row."""
    k = min(k, values.shape[1])
    scored = sign * values
    part = (
        np.argpartition(-scored, k - 1, axis=1)[:, :k]
        if k < values.shape[1]
        else np.argsort(-scored, axis=1)
    )
    order = np.argsort(-np.take_along_axis(scored, part, axis=1), axis=1, kind="stable")
    index = np.take_along_axis(part, order, axis=1)
    return index, np.take_along_axis(values, index, axis=1)


def _task_contrib(
    model: StageModel, X: pd.DataFrame, workers: int | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per task: (contributions explained, shape (n, F); mask of rows the task applies to)."""
    n_features = X.shape[1]
    # Same argmax of calibrated probabilities as StageModel.predict_features.
    predicted = model.stage_model.predict(X)
    stage = contributions(model.stage_model, X, workers=workers)
    inflection = contributions(model.inflection_model, X, workers=workers)
    return {
        "stage": (stage[np.arange(len(X)), predicted, :n_features], np.ones(len(X), dtype=bool)),
        "inflection": (inflection[:, 0, :n_features], predicted != len(model.stages) - 1),
    }


def _batch_table(
    model: StageModel, X: pd.DataFrame, offset: int, k: int, workers: int | None
) -> pd.DataFrame:
    pieces = []
    for t, (task, (contrib, applies)) in enumerate(_task_contrib(model, X, workers).items()):
        for d, (direction, sign) in enumerate((("up", 1), ("down", -1))):
            index, values = _top(contrib, k, sign)
            row, rank = np.nonzero((sign * values > 0) & applies[:, None])
            pieces.append(
                pd.DataFrame(
                    {
                        "row": row + offset,
                        "task_order": t,
                        "model": task,
                        "dir_order": d,
                        "direction": direction,
                        "rank": rank + 1,
                        "col": index[row, rank],
                        "contribution": values[row, rank],
                    }
                )
            )
    table = pd.concat(pieces, ignore_index=True)
    table["feature"] = np.asarray(X.columns, dtype=object)[table["col"].to_numpy()]
    # Only the selected cells are read: one column fetch per feature that appears.
    cols = table["col"].to_numpy()
    local = table["row"].to_numpy() - offset
    value = np.empty(len(table), dtype=object)
    for col in np.unique(cols):
        at = cols == col
        value[at] = X.iloc[:, col].to_numpy(dtype=object)[local[at]]
    table["value"] = value
    return table.sort_values(["row", "task_order", "dir_order", "rank"], kind="stable")


def reason_table(
    model: StageModel, features: pd.DataFrame, *, k: int = 3, workers: int | None = None
) -> pd.DataFrame:
    """Reason codes in long format: one row per (input row, model, direction, rank).

    Parameters
    ----------
    model
        The trained :class:`StageModel`.
    features
        Feature rows (e.g. from :meth:`StageModel.features`); extra columns are ignored.
    k
        Factors per direction.
    workers
        Passed to :func:`contributions`.

    Returns
    -------
    pandas.DataFrame
        Columns ``row`` (position in ``features``), ``model`` (``stage``/``inflection``),
        ``direction`` (``up``/``down``), ``rank`` (1 = strongest), ``feature``, ``value``
        (the buyer's value), ``contribution`` (signed, raw margin units: logit of the
        predicted stage, or log-odds of inflection) and ``text``. Only factors with a
        contribution of the direction's sign are listed, so a row may have fewer than k.

    """
    if k < 1:
        raise ModelError(f"k must be at least 1, got {k}")
    X = features[model.feature_names]
    batches = [
        _batch_table(model, X.iloc[start : start + BATCH_ROWS], start, k, workers)
        for start in range(0, len(X), BATCH_ROWS)
    ]
    if not batches:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REASON_COLUMNS})
    table = pd.concat(batches, ignore_index=True)
    describe_one = describer(model.vocabulary, model.params.features)  # type: ignore[arg-type]
    cache: dict[tuple[str, Any], str] = {}
    texts = []
    for feature, value, contribution in zip(
        table["feature"], table["value"], table["contribution"], strict=True
    ):
        # Counts repeat a lot across buyers, so most texts come from the cache.
        key = (feature, None if pd.isna(value) else value)
        if key not in cache:
            cache[key] = describe_one(feature, value)
        texts.append(f"{cache[key]} ({contribution:+.2f})")
    table["text"] = texts
    return table[list(REASON_COLUMNS)].reset_index(drop=True)


def reason_codes(
    model: StageModel, features: pd.DataFrame, *, k: int = 3, workers: int | None = None
) -> pd.DataFrame:
    """Reason codes in wide format: one row per input row.

    Parameters
    ----------
    model, features, k, workers
        As for :func:`reason_table`.

    Returns
    -------
    pandas.DataFrame
        The ``buyer_id``/``as_of`` keys when ``features`` has them, the predicted ``stage``,
        then text columns ``stage_up_1`` … ``stage_up_k``, ``stage_down_1`` … ``stage_down_k``,
        ``inflection_up_1`` … ``inflection_down_k``, e.g.
        ``"4 × pricing page visit in the last 7 days (+0.61)"``; the number is the signed
        contribution in raw margin units (stage logit / inflection log-odds). Missing where
        fewer than k factors push that way, and for inflection at the final stage.

    """
    table = reason_table(model, features, k=k, workers=workers)
    columns = [f"{t}_{d}_{r}" for t in TASKS for d in ("up", "down") for r in range(1, k + 1)]
    wide = pd.DataFrame(index=pd.RangeIndex(len(features)), columns=columns, dtype="string")
    if len(table):
        names = table["model"] + "_" + table["direction"] + "_" + table["rank"].astype(str)
        pivot = pd.Series(
            table["text"].to_numpy(), index=[table["row"].to_numpy(), names.to_numpy()]
        ).unstack()
        wide.loc[pivot.index, pivot.columns] = pivot.astype("string")
    keys = [c for c in KEYS if c in features.columns]
    out = features[keys].reset_index(drop=True).copy()
    X = features[model.feature_names]
    stages = np.asarray(model.stages, dtype=object)
    out["stage"] = (
        pd.array(stages[model.stage_model.predict(X)], dtype="string")
        if len(X)
        else pd.array([], dtype="string")
    )
    return pd.concat([out, wide], axis=1)
