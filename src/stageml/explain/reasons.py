"""Per-buyer reason codes from LightGBM's native TreeSHAP (``pred_contrib=True``).

Contributions are in the booster's **raw margin units**: log-odds for the binary
inflection model, the per-class softmax logit for the multiclass stage model. They add up
(with the bias) to the raw score *before* calibration, so they explain the ranking of a
buyer, not the calibrated percentage shown next to it.

Reason codes for a row are the features with the largest positive ("up") and most
negative ("down") contributions to the predicted stage's logit and to the inflection
log-odds. The predicted stage's contributions come from that stage's trees alone
(:func:`class_contributions`: the same TreeSHAP values at a K-th of the cost of explaining
every class), and large batches are split over worker processes (:func:`default_workers`).
The final stage has no inflection (its likelihood is zero by definition in
:meth:`StageModel.predict_features`), so its inflection reasons are left empty.
"""

from __future__ import annotations

import atexit
import multiprocessing
import re
import sys
import weakref
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from stageml.errors import ModelError
from stageml.features.engine import KEYS
from stageml.features.text import describer
from stageml.models.bundle import StageModel
from stageml.models.estimators import CalibratedLGBM, free_threads

# Reason codes are computed in batches so that peak memory is one batch's (n, K, F+1) array.
BATCH_ROWS = 100_000
# With ``workers=None``, batches of at least this many rows are split over worker processes
# (one per free core, LightGBM single-threaded in each: its own threads do not speed
# ``pred_contrib`` up); smaller ones stay in this process, where starting the pool (fresh
# interpreters importing LightGBM, ~5 s on the 2-core benchmark machine) would cost more
# than it saves. The pool is kept for the next call with the same model (``shared_pool``),
# so a scoring job pays that start-up once, not once per partition.
PARALLEL_MIN_ROWS = 10_000
TASKS = ("stage", "inflection")
REASON_COLUMNS = ("row", "model", "direction", "rank", "feature", "value", "contribution", "text")

_worker_boosters: dict[str, lgb.Booster] = {}
# Per multiclass estimator: one booster per class holding only that class's trees.
_class_cache: weakref.WeakKeyDictionary[CalibratedLGBM, tuple[Any, list[lgb.Booster]]] = (
    weakref.WeakKeyDictionary()
)


def _init_worker(model_strings: dict[str, str]) -> None:
    _worker_boosters.clear()
    _worker_boosters.update({k: lgb.Booster(model_str=v) for k, v in model_strings.items()})


def _worker_contrib(key: str, X: pd.DataFrame, num_iteration: int | None) -> np.ndarray:
    assert key in _worker_boosters, "worker initialiser did not run"
    return np.asarray(
        _worker_boosters[key].predict(
            X, pred_contrib=True, num_iteration=num_iteration, num_threads=1
        )
    )


def class_model_strings(estimator: CalibratedLGBM) -> list[str]:
    """LightGBM model strings of one single-output booster per class of a multiclass model.

    Booster ``k`` holds the trees of class ``k`` from the first ``best_iteration_`` rounds
    (LightGBM stores round r's tree for class k at index ``r * K + k``), so its raw score and
    its TreeSHAP values are exactly class k's logit and class k's contributions of the full
    model, at a K-th of the cost. The pandas categorical mapping is kept.
    """
    k_classes = estimator.n_classes
    if k_classes == 2:
        raise ModelError("class_model_strings needs a multiclass model")
    text = estimator.booster_.model_to_string(num_iteration=estimator.best_iteration_)
    head, _, rest = text.partition("\nTree=0\n")
    trees, _, tail = ("Tree=0\n" + rest).partition("\nend of trees\n")
    blocks = [b.strip() for b in re.split(r"(?m)^(?=Tree=\d+$)", trees) if b.strip()]
    if not blocks or len(blocks) % k_classes or not head.startswith("tree"):
        raise ModelError(
            f"unexpected LightGBM model text ({len(blocks)} trees for {k_classes} classes)"
        )
    header = [
        "num_class=1"
        if line.startswith("num_class=")
        else "num_tree_per_iteration=1"
        if line.startswith("num_tree_per_iteration=")
        else "objective=regression"  # raw score; TreeSHAP never applies the link
        if line.startswith("objective=")
        else line
        for line in head.split("\n")
        if not line.startswith("tree_sizes=")  # optional; the byte offsets would be stale
    ]
    categorical = tail[tail.index("pandas_categorical:") :] if "pandas_categorical:" in tail else ""
    out = []
    for k in range(k_classes):
        mine = [
            re.sub(r"^Tree=\d+", f"Tree={j}", block) for j, block in enumerate(blocks[k::k_classes])
        ]
        out.append(
            "\n".join(header)
            + "\n\n"
            + "\n\n\n".join(mine)
            + "\n\n\nend of trees\n\n"
            + categorical
        )
    return out


def class_boosters(estimator: CalibratedLGBM) -> list[lgb.Booster]:
    """Build (once per fitted booster) the per-class boosters of :func:`class_model_strings`."""
    cached = _class_cache.get(estimator)
    if cached is None or cached[0] is not estimator.booster_:
        boosters = [lgb.Booster(model_str=s) for s in class_model_strings(estimator)]
        cached = (estimator.booster_, boosters)
        _class_cache[estimator] = cached
    return cached[1]


def _inside_parallel_worker() -> bool:
    """Whether this is a multiprocessing child or a Spark task (parallel already)."""
    if multiprocessing.parent_process() is not None:
        return True
    if "pyspark" in sys.modules:
        try:
            from pyspark import TaskContext

            return TaskContext.get() is not None
        except Exception:  # noqa: BLE001 - a broken pyspark import must not stop scoring
            return False
    return False


def default_workers(n_rows: int) -> int:
    """Worker processes that ``workers=None`` means for a batch of ``n_rows`` rows.

    One (this process) below :data:`PARALLEL_MIN_ROWS` rows, inside a multiprocessing child
    or inside a Spark task; otherwise one per core free to this process.
    """
    if n_rows < PARALLEL_MIN_ROWS or _inside_parallel_worker():
        return 1
    return free_threads()


class _WorkerPool:
    """Worker processes holding the estimators' boosters (and per-class ones), reused."""

    def __init__(self, estimators: Iterable[CalibratedLGBM], workers: int) -> None:
        # Strong references: the ids below stay unique while the pool lives.
        self.estimators = tuple(estimators)
        self.boosters = tuple(e.booster_ for e in self.estimators)
        self.keys: dict[int, str] = {}
        strings: dict[str, str] = {}
        for i, estimator in enumerate(self.estimators):
            self.keys[id(estimator)] = key = f"m{i}"
            strings[key] = estimator.booster_.model_to_string()
            if estimator.n_classes > 2:
                for k, text in enumerate(class_model_strings(estimator)):
                    strings[f"{key}c{k}"] = text
        self.workers = workers
        # "spawn", not fork: a forked child of a process that already ran OpenMP can hang.
        self.executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(strings,),
        )

    def __enter__(self) -> _WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def serves(self, estimators: tuple[CalibratedLGBM, ...], workers: int) -> bool:
        """Whether this live pool holds exactly these fitted estimators with ``workers``."""
        return (
            workers == self.workers
            and not getattr(self.executor, "_broken", False)
            and len(estimators) == len(self.estimators)
            and all(a is b for a, b in zip(estimators, self.estimators, strict=True))
            and all(e.booster_ is b for e, b in zip(estimators, self.boosters, strict=True))
        )

    def submit(self, key: str, X: pd.DataFrame, num_iteration: int | None) -> list[Future[Any]]:
        """Rows split evenly over the workers; ``key`` names a booster (see ``keys``)."""
        bounds = np.linspace(0, len(X), min(self.workers, len(X)) + 1).astype(int)
        return [
            self.executor.submit(_worker_contrib, key, X.iloc[a:b], num_iteration)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    def contrib(self, estimator: CalibratedLGBM, X: pd.DataFrame) -> np.ndarray:
        futures = self.submit(self.keys[id(estimator)], X, estimator.best_iteration_)
        return np.concatenate([f.result() for f in futures], axis=0)


_shared: _WorkerPool | None = None


def shared_pool(estimators: Iterable[CalibratedLGBM], workers: int) -> _WorkerPool:
    """Return the worker pool for these estimators, started once and kept for later calls.

    A call with other estimators (another model) or another worker count replaces it; the
    idle workers end with this process.
    """
    global _shared
    wanted = tuple(estimators)
    if _shared is None or not _shared.serves(wanted, workers):
        if _shared is not None:
            _shared.close()
        _shared = _WorkerPool(wanted, workers)
    return _shared


@atexit.register
def _close_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None


def _raw_contrib(
    estimator: CalibratedLGBM, X: pd.DataFrame, workers: int, pool: _WorkerPool | None
) -> np.ndarray:
    if pool is not None and len(X) >= 2:
        return pool.contrib(estimator, X)
    if workers <= 1 or len(X) < 2:
        return np.asarray(
            estimator.booster_.predict(
                X, pred_contrib=True, num_iteration=estimator.best_iteration_
            )
        )
    with _WorkerPool([estimator], workers) as own:
        return own.contrib(estimator, X)


def contributions(
    estimator: CalibratedLGBM,
    X: pd.DataFrame,
    *,
    workers: int | None = None,
    linear: bool = True,
    _pool: _WorkerPool | None = None,
) -> np.ndarray:
    """TreeSHAP contributions of every feature, in raw margin units.

    For a model with a linear base margin (``CalibratedLGBM.linear_``) the linear part's
    exact SHAP values ``coef_j * (z_j - mean z_j)`` are added to the trees' TreeSHAP values
    and its bias to theirs, so the sum is still the model's raw margin.

    Parameters
    ----------
    estimator
        A fitted :class:`CalibratedLGBM` (its ``best_iteration_`` trees are explained).
    X
        Feature rows with the training columns and dtypes.
    workers
        Worker processes, each running LightGBM single-threaded on a slice of rows.
        ``1`` runs in this process (LightGBM with its own threads). ``None`` (default)
        chooses with :func:`default_workers`: in this process for fewer than
        :data:`PARALLEL_MIN_ROWS` rows, else one worker per free core (LightGBM's own
        threads do not speed ``pred_contrib`` up; see ``benchmarks/explain.py``).
        Results are identical whichever is used.
    linear
        ``False``: the booster's TreeSHAP values only (without the linear base margin).

    Returns
    -------
    numpy.ndarray
        Shape ``(n, K, F + 1)`` for a K-class model, ``(n, 1, F + 1)`` for a binary one;
        the last entry along the final axis is the bias (expected raw score). Summed over
        the final axis this is the model's raw margin ``estimator.raw_margin(X)`` (with
        ``linear=False``: the booster's ``booster.predict(X, raw_score=True)``).

    """
    estimator._check(X)
    if workers is not None and workers < 1:
        raise ModelError(f"workers must be at least 1, got {workers}")
    if workers is None:
        workers = default_workers(len(X))
    n_features = X.shape[1]
    k = 1 if estimator.n_classes == 2 else estimator.n_classes
    if len(X) == 0:
        return np.zeros((0, k, n_features + 1))
    # LightGBM lays multiclass contributions out class by class, each ending in its bias.
    out = _raw_contrib(estimator, X, workers, _pool).reshape(len(X), k, n_features + 1)
    base = getattr(estimator, "linear_", None)
    if linear and base is not None:
        values, bias = base.contributions(X)
        at = [X.columns.get_loc(c) for c in base.columns]
        out[:, 0, at] += values
        out[:, 0, n_features] += bias
    return out


def stage_contributions(
    estimator: CalibratedLGBM,
    X: pd.DataFrame,
    *,
    workers: int | None = None,
    _pool: _WorkerPool | None = None,
) -> np.ndarray:
    """TreeSHAP contributions to every class's logit, shape ``(n, K, F + 1)``, bias last.

    :func:`contributions` of a multiclass model; for a binary one (a two-stage taxonomy,
    one logit ``f`` for class 1) class 0's logit is ``-f``, so its values are negated.
    """
    values = contributions(estimator, X, workers=workers, _pool=_pool)
    return np.concatenate([-values, values], axis=1) if estimator.n_classes == 2 else values


def class_contributions(
    estimator: CalibratedLGBM,
    X: pd.DataFrame,
    classes: np.ndarray,
    *,
    workers: int | None = None,
    _pool: _WorkerPool | None = None,
) -> np.ndarray:
    """TreeSHAP contributions to one class's logit per row, from that class's trees only.

    Equal to ``stage_contributions(estimator, X)[np.arange(n), classes]`` (same algorithm,
    same trees, checked in the tests) at about ``1/K`` of its cost: a multiclass LightGBM
    model grows one tree per class and round, and a row's reason codes need only the class
    it is explained for. A binary model (a two-stage taxonomy) has one set of trees; its
    class 0 is explained by the negated values. Shape ``(n, F + 1)``, bias last;
    ``workers`` as for :func:`contributions`.
    """
    estimator._check(X)
    if estimator.n_classes == 2:  # one set of trees: nothing to save by class
        both = stage_contributions(estimator, X, workers=workers, _pool=_pool)
        return np.asarray(both[np.arange(len(X)), np.asarray(classes)])
    if workers is not None and workers < 1:
        raise ModelError(f"workers must be at least 1, got {workers}")
    classes = np.asarray(classes)
    if classes.shape != (len(X),):
        raise ModelError(f"classes must have one entry per row, got shape {classes.shape}")
    n_workers = default_workers(len(X)) if workers is None else workers
    if _pool is None and n_workers > 1 and len(X) >= 2:
        with _WorkerPool([estimator], n_workers) as own:
            return class_contributions(estimator, X, classes, workers=n_workers, _pool=own)
    out = np.zeros((len(X), X.shape[1] + 1))
    pending = []
    for k in np.unique(classes):
        at = np.flatnonzero(classes == k)
        if _pool is not None:
            key = f"{_pool.keys[id(estimator)]}c{int(k)}"
            pending.append((at, _pool.submit(key, X.iloc[at], None)))
        else:
            booster = class_boosters(estimator)[int(k)]
            out[at] = booster.predict(X.iloc[at], pred_contrib=True)
    for at, futures in pending:
        out[at] = np.concatenate([f.result() for f in futures], axis=0)
    return out


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
    model: StageModel, X: pd.DataFrame, workers: int, pool: _WorkerPool | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per task: (contributions explained, shape (n, F); mask of rows the task applies to)."""
    n_features = X.shape[1]
    # Same argmax of calibrated probabilities as StageModel.predict_features.
    predicted = model.stage_model.predict(X)
    # Only the predicted stage is explained, so only its trees are walked.
    stage = class_contributions(model.stage_model, X, predicted, workers=workers, _pool=pool)
    inflection = contributions(model.inflection_model, X, workers=workers, _pool=pool)
    return {
        "stage": (stage[:, :n_features], np.ones(len(X), dtype=bool)),
        "inflection": (inflection[:, 0, :n_features], predicted != len(model.stages) - 1),
    }


def _batch_table(
    model: StageModel,
    X: pd.DataFrame,
    offset: int,
    k: int,
    workers: int,
    pool: _WorkerPool | None,
) -> pd.DataFrame:
    pieces = []
    tasks = _task_contrib(model, X, workers, pool)
    for t, (task, (contrib, applies)) in enumerate(tasks.items()):
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
        As for :func:`contributions`; ``None`` chooses from the total row count. One pool
        of worker processes holding both boosters serves every batch, and is kept for the
        next call with the same model (:func:`shared_pool`).

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
    if workers is not None and workers < 1:
        raise ModelError(f"workers must be at least 1, got {workers}")
    X = features[model.feature_names]
    n_workers = default_workers(len(X)) if workers is None else workers
    estimators = (model.stage_model, model.inflection_model)
    pool = shared_pool(estimators, n_workers) if n_workers > 1 and len(X) >= 2 else None
    batches = [
        _batch_table(model, X.iloc[start : start + BATCH_ROWS], start, k, n_workers, pool)
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
