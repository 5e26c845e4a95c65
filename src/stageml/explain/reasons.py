"""Per-buyer reason codes: the strongest behaviours up and down, in words.

Reason codes for a row are the feature *families* (:mod:`stageml.features.families`: all
windows of one activity, all recency features, the recorded stage, ...) with the largest
positive ("up") and most negative ("down") summed contributions to the predicted stage's
logit, to the inflection log-odds and, when the taxonomy has exits, to the exit log-odds
(:mod:`stageml.explain.contributions`), so they explain the ranking of a buyer, not the
calibrated percentage shown next to it. Family sums still add up to the margin. Under
``train.inflection_fit.final_stage: zero`` the predicted final stage's inflection and exit
reasons are left empty (both are zero there, not the model's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from stageml.errors import ModelError
from stageml.explain.contributions import (
    WorkerPool,
    class_contributions,
    contributions,
    default_workers,
    shared_pool,
)
from stageml.features.engine import KEYS
from stageml.features.families import family_describer, feature_families
from stageml.features.stage_history import STAGE_COLUMNS, describe_stage_family
from stageml.models.bundle import StageModel
from stageml.models.estimators import CalibratedLGBM

# Reason codes are computed in batches so that peak memory is one batch's (n, K, F+1) array.
BATCH_ROWS = 100_000
REASON_COLUMNS = ("row", "model", "direction", "rank", "feature", "value", "contribution", "text")


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


def family_matrix(columns: list[str], families: dict[str, tuple[str, ...]]) -> np.ndarray:
    """Return the (columns × families) 0/1 matrix: contributions @ it = family sums."""
    where = {c: i for i, c in enumerate(columns)}
    matrix = np.zeros((len(columns), len(families)))
    for j, members in enumerate(families.values()):
        matrix[[where[c] for c in members], j] = 1.0
    return matrix


def _task_contrib(
    model: StageModel,
    X: pd.DataFrame,
    predicted: np.ndarray,
    workers: int,
    pool: WorkerPool | None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per task: (contributions explained, shape (n, F); mask of rows the task applies to)."""
    n_features = X.shape[1]
    # Only the predicted stage is explained, so only its trees are walked.
    stage = class_contributions(model.stage_model, X, predicted, workers=workers, _pool=pool)
    explained = np.ones(len(X), dtype=bool)
    if model.params.train.inflection_fit.final_stage == "zero":
        explained = predicted != len(model.stages) - 1
    tasks = {"stage": (stage[:, :n_features], np.ones(len(X), dtype=bool))}
    for task, estimator in _binary_models(model).items():
        values = contributions(estimator, X, workers=workers, _pool=pool)
        tasks[task] = (values[:, 0, :n_features], explained)
    return tasks


def _binary_models(model: StageModel) -> dict[str, CalibratedLGBM]:
    """Return the binary models of a bundle: inflection, and exit if the taxonomy has exits."""
    found = {"inflection": model.inflection_model, "exit": model.exit_model}
    return {task: estimator for task, estimator in found.items() if estimator is not None}


def model_tasks(model: StageModel) -> tuple[str, ...]:
    """Return the tasks reason codes are given for: stage, inflection and (if any) exit."""
    return ("stage", *_binary_models(model))


def model_families(model: StageModel, columns: list[str]) -> dict[str, tuple[str, ...]]:
    """Return the reason families of a model's columns: the engine's, and the recorded stage."""
    families = feature_families(model.vocabulary, model.params.features)  # type: ignore[arg-type]
    recorded = tuple(c for c in STAGE_COLUMNS if c in columns)
    return {**families, "recorded_stage": recorded} if recorded else families


def _batch_table(
    model: StageModel,
    X: pd.DataFrame,
    predicted: np.ndarray,
    offset: int,
    k: int,
    workers: int,
    pool: WorkerPool | None,
    describe: Callable[[str, dict[str, Any]], str],
) -> pd.DataFrame:
    pieces = []
    tasks = _task_contrib(model, X, predicted, workers, pool)
    families = model_families(model, list(X.columns))
    matrix = family_matrix(list(X.columns), families)
    for t, (task, (contrib, applies)) in enumerate(tasks.items()):
        grouped = contrib @ matrix
        for d, (direction, sign) in enumerate((("up", 1), ("down", -1))):
            index, values = _top(grouped, k, sign)
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
    names = list(families)
    table["feature"] = np.asarray(names, dtype=object)[table["col"].to_numpy()]
    # Only the selected families' cells are read: the buyer's values of their members.
    # Values repeat a lot across buyers (counts, recency), so each distinct combination of
    # a family's values is put into words once; its rows share the dict and the text.
    cols = table["col"].to_numpy()
    local = table["row"].to_numpy() - offset
    value = np.empty(len(table), dtype=object)
    text = np.empty(len(table), dtype=object)
    for col in np.unique(cols):
        at = np.flatnonzero(cols == col)
        members = X[list(families[names[col]])].iloc[local[at]]
        same = members.groupby(list(members.columns), dropna=False, observed=True, sort=False)
        codes = same.ngroup().to_numpy()
        _, first = np.unique(codes, return_index=True)
        distinct = members.iloc[first].to_dict(orient="records")
        words = [describe(names[col], values) for values in distinct]
        value[at] = np.asarray(distinct, dtype=object)[codes]
        text[at] = np.asarray(words, dtype=object)[codes]
    table["value"] = value
    table["text"] = [
        f"{words} ({c:+.2f})" for words, c in zip(text, table["contribution"], strict=True)
    ]
    return table.sort_values(["row", "task_order", "dir_order", "rank"], kind="stable")


def reason_table(
    model: StageModel,
    features: pd.DataFrame,
    *,
    k: int = 3,
    workers: int | None = None,
    predicted: np.ndarray | None = None,
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
        As for :func:`contributions`; ``None`` chooses from the total row count. One pool
        of worker processes holding both boosters serves every batch, and is kept for the
        next call with the same model (:func:`shared_pool`).
    predicted
        The predicted stage of each row (index into ``model.stages``) when the caller has
        it already, as batch scoring does; ``None`` predicts it.

    Returns
    -------
    pandas.DataFrame
        Columns ``row`` (position in ``features``), ``model`` (``stage``/``inflection``/
        ``exit``), ``direction`` (``up``/``down``), ``rank`` (1 = strongest), ``feature``
        (the family, e.g. ``activity_demo_request``), ``value`` (the buyer's values of the
        family's columns, a dict), ``contribution`` (the family's summed contribution,
        signed, raw margin units: logit of the predicted stage, or log-odds of inflection or
        exit) and ``text``. Only families with a contribution of the direction's sign are
        listed, so a row may have fewer than k.

    """
    if k < 1:
        raise ModelError(f"k must be at least 1, got {k}")
    if workers is not None and workers < 1:
        raise ModelError(f"workers must be at least 1, got {workers}")
    X = features[model.feature_names]
    predicted = predicted_stages(model, X) if predicted is None else np.asarray(predicted)
    n_workers = default_workers(len(X)) if workers is None else workers
    estimators = (model.stage_model, *_binary_models(model).values())
    pool = shared_pool(estimators, n_workers) if n_workers > 1 and len(X) >= 2 else None
    describe_family = family_describer(model.vocabulary, model.params.features)  # type: ignore[arg-type]

    def describe(family: str, values: dict[str, Any]) -> str:
        if family == "recorded_stage":
            return describe_stage_family(values, model.params)
        return describe_family(family, values)

    batches = [
        _batch_table(
            model,
            X.iloc[start : start + BATCH_ROWS],
            predicted[start : start + BATCH_ROWS],
            start,
            k,
            n_workers,
            pool,
            describe,
        )
        for start in range(0, len(X), BATCH_ROWS)
    ]
    if not batches:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REASON_COLUMNS})
    table = pd.concat(batches, ignore_index=True)
    return table[list(REASON_COLUMNS)].reset_index(drop=True)


def reason_codes(
    model: StageModel,
    features: pd.DataFrame,
    *,
    k: int = 3,
    workers: int | None = None,
    predicted: np.ndarray | None = None,
) -> pd.DataFrame:
    """Reason codes in wide format: one row per input row.

    Parameters
    ----------
    model, features, k, workers, predicted
        As for :func:`reason_table`.

    Returns
    -------
    pandas.DataFrame
        The ``buyer_id``/``as_of`` keys when ``features`` has them, the predicted ``stage``,
        then text columns ``stage_up_1`` … ``stage_up_k``, ``stage_down_1`` … ``stage_down_k``,
        ``inflection_up_1`` … ``inflection_down_k`` (and ``exit_up_1`` … ``exit_down_k`` when
        the model has exits), e.g.
        ``"3 × demo request in the last 7 days, none before (+0.61)"``; the number is the signed
        contribution in raw margin units (stage logit / inflection log-odds). Missing where
        fewer than k factors push that way, and for inflection at the predicted final
        stage under ``final_stage: zero``.

    """
    X = features[model.feature_names]
    predicted = predicted_stages(model, X) if predicted is None else np.asarray(predicted)
    table = reason_table(model, features, k=k, workers=workers, predicted=predicted)
    columns = [
        f"{t}_{d}_{r}" for t in model_tasks(model) for d in ("up", "down") for r in range(1, k + 1)
    ]
    wide = pd.DataFrame(index=pd.RangeIndex(len(features)), columns=columns, dtype="string")
    if len(table):
        names = table["model"] + "_" + table["direction"] + "_" + table["rank"].astype(str)
        pivot = pd.Series(
            table["text"].to_numpy(), index=[table["row"].to_numpy(), names.to_numpy()]
        ).unstack()
        wide.loc[pivot.index, pivot.columns] = pivot.astype("string")
    keys = [c for c in KEYS if c in features.columns]
    out = features[keys].reset_index(drop=True).copy()
    out["stage"] = pd.array(np.asarray(model.stages, dtype=object)[predicted], dtype="string")
    return pd.concat([out, wide], axis=1)


def predicted_stages(model: StageModel, X: pd.DataFrame) -> np.ndarray:
    """Index of each row's predicted stage: the argmax that ``predict_features`` shows."""
    return model.stage_model.predict(X) if len(X) else np.zeros(0, dtype=int)
