"""TreeSHAP contributions from LightGBM's native ``pred_contrib=True``, fast enough for an export.

Contributions are in the booster's **raw margin units**: log-odds for the binary
inflection model, the per-class softmax logit for the multiclass stage model. They add up
(with the bias) to the raw score *before* calibration. The predicted stage's contributions
come from that stage's trees alone (:func:`class_contributions`: the same TreeSHAP values
at a K-th of the cost of explaining every class), and large batches are split over worker
processes (:func:`default_workers`).
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
from stageml.models.estimators import CalibratedLGBM, free_threads

# With ``workers=None``, batches of at least this many rows are split over worker processes
# (one per free core, LightGBM single-threaded in each: its own threads do not speed
# ``pred_contrib`` up); smaller ones stay in this process, where starting the pool (fresh
# interpreters importing LightGBM, ~5 s on the 2-core benchmark machine) would cost more
# than it saves. The pool is kept for the next call with the same model (``shared_pool``),
# so a scoring job pays that start-up once, not once per partition.
PARALLEL_MIN_ROWS = 10_000

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


class WorkerPool:
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

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers; pending batches are cancelled."""
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
        """All of ``estimator``'s contributions for ``X``, computed by the workers."""
        futures = self.submit(self.keys[id(estimator)], X, estimator.best_iteration_)
        return np.concatenate([f.result() for f in futures], axis=0)


_shared: WorkerPool | None = None


def shared_pool(estimators: Iterable[CalibratedLGBM], workers: int) -> WorkerPool:
    """Return the worker pool for these estimators, started once and kept for later calls.

    A call with other estimators (another model) or another worker count replaces it; the
    idle workers end with this process.
    """
    global _shared
    wanted = tuple(estimators)
    if _shared is None or not _shared.serves(wanted, workers):
        if _shared is not None:
            _shared.close()
        _shared = WorkerPool(wanted, workers)
    return _shared


@atexit.register
def _close_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None


def _raw_contrib(
    estimator: CalibratedLGBM, X: pd.DataFrame, workers: int, pool: WorkerPool | None
) -> np.ndarray:
    if pool is not None and len(X) >= 2:
        return pool.contrib(estimator, X)
    if workers <= 1 or len(X) < 2:
        return np.asarray(
            estimator.booster_.predict(
                X, pred_contrib=True, num_iteration=estimator.best_iteration_
            )
        )
    with WorkerPool([estimator], workers) as own:
        return own.contrib(estimator, X)


def contributions(
    estimator: CalibratedLGBM,
    X: pd.DataFrame,
    *,
    workers: int | None = None,
    linear: bool = True,
    _pool: WorkerPool | None = None,
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
    _pool: WorkerPool | None = None,
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
    _pool: WorkerPool | None = None,
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
        with WorkerPool([estimator], n_workers) as own:
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
