"""Boosters compiled to native code (treelite + TL2cgen + gcc), LightGBM's predict as fallback.

A 5-class stage model of ~400 rounds walks ~2,000 trees per buyer. Compiled to C with
quantised thresholds (integer comparisons) in libraries of about ``TREES_PER_LIB`` trees,
one library's code stays in the CPU cache while every row passes through it (the same
blocking as :meth:`CalibratedLGBM._booster_margin`): 2.2x faster than that blocked
LightGBM path on the benchmark model (README, "Compiled prediction"), with the same
numbers (the tests require 1e-9; measured 0.0).

The libraries are compiled once, at registration (:func:`compile_estimator`), and travel
inside the pickled estimator (``compiled_``), so the MLflow model, the local engine's
worker processes and Spark's executors all get them. They are used only while they match
the booster they were compiled from (a SHA-256 of its model text) and can be loaded;
otherwise, and for estimators without them, prediction falls back to LightGBM.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from stageml.models.estimators import CalibratedLGBM

# Trees per compiled library: a library's code then fits the CPU's caches while every row
# passes through it (measured: 2.2x faster than one library holding all ~2,000 trees).
TREES_PER_LIB = 200
# Compiled forests by model hash: registering the same booster twice compiles it once.
_CACHE: dict[str, CompiledForest] = {}
_CACHE_SIZE = 4


class CompileError(RuntimeError):
    """The toolchain (treelite, TL2cgen, a C compiler) could not compile a booster."""


def model_hash(estimator: CalibratedLGBM) -> str:
    """SHA-256 of the trees prediction uses (the first ``best_iteration_`` rounds)."""
    text = estimator.booster_.model_to_string(num_iteration=estimator.best_iteration_)
    return hashlib.sha256(text.encode()).hexdigest()


class CompiledForest:
    """Shared libraries of one booster's trees, in blocks of rounds, and how to run them.

    Pickles as the libraries' bytes; a process that unpickles it writes them to a private
    temporary folder on first use and loads them there.
    """

    def __init__(self, digest: str, n_outputs: int, libraries: list[bytes]) -> None:
        self.digest = digest
        self.n_outputs = n_outputs
        self.libraries = libraries
        self._reset()

    def _reset(self) -> None:
        self._checked: tuple[Any, bool] | None = None  # (booster, matches)
        self._predictors: dict[int, list[Any]] = {}
        self._folder: Path | None = None
        self._broken = False

    def __getstate__(self) -> dict[str, Any]:
        return {"digest": self.digest, "n_outputs": self.n_outputs, "libraries": self.libraries}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def matches(self, estimator: CalibratedLGBM) -> bool:
        """Whether these libraries were compiled from ``estimator``'s current booster."""
        if self._checked is None or self._checked[0] is not estimator.booster_:
            self._checked = (estimator.booster_, model_hash(estimator) == self.digest)
        return self._checked[1]

    def _load(self, threads: int) -> list[Any] | None:
        if self._broken:
            return None
        if threads not in self._predictors:
            try:
                import tl2cgen

                if self._folder is None:
                    self._folder = Path(tempfile.mkdtemp(prefix="stageml-compiled-"))
                    atexit.register(shutil.rmtree, self._folder, True)
                    for i, blob in enumerate(self.libraries):
                        (self._folder / f"block{i}.so").write_bytes(blob)
                self._predictors[threads] = [
                    tl2cgen.Predictor(str(self._folder / f"block{i}.so"), nthread=threads)
                    for i in range(len(self.libraries))
                ]
            except Exception as exc:  # noqa: BLE001 - any load failure means: use LightGBM
                warnings.warn(
                    f"compiled trees could not be loaded ({exc}); predicting with LightGBM",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._broken = True
                return None
        return self._predictors[threads]

    def margin(self, values: np.ndarray, threads: int) -> np.ndarray | None:
        """Raw margin, shape (n, n_outputs), of a float64 matrix; ``None`` if unloadable."""
        predictors = self._load(threads)
        if predictors is None:
            return None
        import tl2cgen

        matrix = tl2cgen.DMatrix(values, dtype="float64")
        total = np.zeros((len(values), self.n_outputs))
        for predictor in predictors:
            total += np.asarray(predictor.predict(matrix, pred_margin=True)).reshape(total.shape)
        return total


def as_matrix(X: pd.DataFrame, categories: dict[str, pd.Index]) -> np.ndarray:
    """Float64 matrix as LightGBM sees a frame: categories as training codes, unknown NaN."""
    columns = []
    for name in X.columns:
        column = X[name]
        if name in categories:
            codes = pd.Index(categories[name]).get_indexer(column)
            columns.append(np.where(codes < 0, np.nan, codes).astype(float))
        else:
            columns.append(column.to_numpy(dtype=float, na_value=np.nan))
    return np.column_stack(columns) if columns else np.zeros((len(X), 0))


def compiled_margin(estimator: CalibratedLGBM, X: pd.DataFrame, threads: int) -> np.ndarray | None:
    """Return the booster's raw margin from its compiled trees, or ``None`` to fall back.

    ``None`` when the estimator carries no compiled trees, when they were compiled from
    another booster (stale), or when they cannot be loaded here (no TL2cgen, another
    platform; warned once).
    """
    forest: CompiledForest | None = getattr(estimator, "compiled_", None)
    if forest is None or not forest.matches(estimator):
        return None
    return forest.margin(as_matrix(X, estimator.categories_), threads)


def compile_estimator(estimator: CalibratedLGBM, *, threads: int = 1) -> CompiledForest:
    """Compile a fitted estimator's booster (its ``best_iteration_`` rounds) to native code.

    Each library holds the trees of about ``TREES_PER_LIB // K`` rounds (K trees per
    round), compiled by TL2cgen with quantised thresholds and gcc (``threads`` compiler
    processes). Raises :class:`CompileError` when treelite, TL2cgen or gcc is missing.
    """
    digest = model_hash(estimator)
    if digest in _CACHE:
        return _CACHE[digest]
    try:
        import tl2cgen
        import treelite
    except ImportError as exc:
        raise CompileError(f"treelite and tl2cgen are needed to compile trees: {exc}") from exc
    booster = estimator.booster_
    per_round = booster.num_model_per_iteration()
    rounds = estimator.best_iteration_
    step = max(1, TREES_PER_LIB // per_round)
    libraries = []
    with tempfile.TemporaryDirectory(prefix="stageml-compile-") as tmp:
        for start in range(0, rounds, step):
            text = booster.model_to_string(
                start_iteration=start, num_iteration=min(step, rounds - start)
            )
            path = Path(tmp) / f"block{start}.so"
            try:
                tl2cgen.export_lib(
                    treelite.frontend.from_lightgbm(lgb.Booster(model_str=text)),
                    toolchain="gcc",
                    libpath=str(path),
                    params={"quantize": 1, "parallel_comp": max(1, threads)},
                    nthread=threads,
                )
            except Exception as exc:  # noqa: BLE001 - toolchain errors have no common type
                raise CompileError(f"compiling the trees failed: {exc}") from exc
            libraries.append(path.read_bytes())
    forest = CompiledForest(digest, per_round, libraries)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[digest] = forest
    return forest
