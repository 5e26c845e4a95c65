"""Reason-code cost: LightGBM pred_contrib vs shap.TreeExplainer, serial vs worker processes.

Measured on one trained model and the same rows, in one process:

1. ms/row of ``reason_table`` (stage + inflection, TreeSHAP + top-k + text);
2. ms/row of the contributions alone, by LightGBM ``pred_contrib`` and by
   ``shap.TreeExplainer(booster).shap_values`` (which, for a LightGBM Booster without
   background data, itself calls ``pred_contrib``: the gap is shap's overhead);
3. contributions with LightGBM single-threaded, with its own OpenMP threads, and split
   over 2 worker processes (``contributions(workers=2)``);
4. the projected wall time for 1,000,000 buyers.

Run with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/explain.py \
        --model /tmp/explain_model.pkl --frame /tmp/explain_test_frame.pkl

Without ``--model``/``--frame`` a 1,500-buyer export is simulated and trained first.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import shap

sys.path.insert(0, str(Path(__file__).parent))

from _common import markdown_table  # noqa: E402

from stageml.explain import contributions, reason_table  # noqa: E402
from stageml.model import StageModel  # noqa: E402

MILLION = 1_000_000


def _seconds(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    print(f"  ... {best:.2f} s", file=sys.stderr, flush=True)  # progress on long runs
    return best


def _load(args: argparse.Namespace) -> tuple[StageModel, pd.DataFrame]:
    if args.model and args.frame:
        with open(args.model, "rb") as handle:
            model = pickle.load(handle)
        return model, pd.read_pickle(args.frame)
    from stageml.config import Params
    from stageml.simulate import simulate, write_export
    from stageml.train import train
    from stageml.validate import load_export

    folder = Path(tempfile.mkdtemp())
    write_export(simulate(1500, seed=11), folder)
    result = train(load_export(folder), Params())
    return result.model, result.test_frame


def _shap(estimator: object, X: pd.DataFrame) -> np.ndarray:
    explainer = shap.TreeExplainer(estimator.booster_)  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(explainer.shap_values(X, tree_limit=estimator.best_iteration_))  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--frame")
    parser.add_argument("--rows", type=int, default=2000, help="rows for the per-method timings")
    parser.add_argument(
        "--parallel-rows", type=int, default=20_000, help="rows for serial vs workers"
    )
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    model, frame = _load(args)
    X_all = frame[model.feature_names]
    X = X_all.iloc[: args.rows]
    big = X_all.iloc[np.resize(np.arange(len(X_all)), args.parallel_rows)]
    models = (model.stage_model, model.inflection_model)
    n = len(X)

    def both(
        method: Callable[[object, pd.DataFrame], object], rows: pd.DataFrame
    ) -> Callable[[], None]:
        return lambda: [method(m, rows) for m in models] and None

    def lgb_threads(threads: int | None) -> Callable[[object, pd.DataFrame], object]:
        extra = {} if threads is None else {"num_threads": threads}
        return lambda m, rows: m.booster_.predict(  # type: ignore[attr-defined]
            rows,
            pred_contrib=True,
            num_iteration=m.best_iteration_,
            **extra,  # type: ignore[attr-defined]
        )

    timings: list[tuple[str, int, float]] = []
    timings.append(
        (
            "reason_table (stage + inflection, k=3), LightGBM threads",
            n,
            _seconds(lambda: reason_table(model, X, workers=1), args.repeat),
        )
    )
    timings.append(
        ("pred_contrib, LightGBM 1 thread", n, _seconds(both(lgb_threads(1), X), args.repeat))
    )
    timings.append(
        (
            "pred_contrib, LightGBM OpenMP threads (default)",
            n,
            _seconds(both(lgb_threads(None), X), args.repeat),
        )
    )
    timings.append(("shap.TreeExplainer.shap_values", n, _seconds(both(_shap, X), args.repeat)))
    nb = len(big)
    timings.append(
        (
            "contributions(workers=1), LightGBM threads",
            nb,
            _seconds(both(lambda m, r: contributions(m, r, workers=1), big), 1),
        )
    )
    timings.append(("pred_contrib, LightGBM 1 thread", nb, _seconds(both(lgb_threads(1), big), 1)))
    timings.append(
        (
            "contributions(workers=2), 2 processes x 1 thread",
            nb,
            _seconds(both(lambda m, r: contributions(m, r, workers=2), big), 1),
        )
    )
    timings.append(
        ("reason_table(workers=2)", nb, _seconds(lambda: reason_table(model, big, workers=2), 1))
    )

    rows = [
        (
            name,
            f"{count:,}",
            f"{sec:.2f}",
            f"{1000 * sec / count:.3f}",
            f"{MILLION * sec / count / 60:.1f}",
        )
        for name, count, sec in timings
    ]
    print(
        f"Stage model: {model.stage_model.best_iteration_} rounds x "
        f"{model.stage_model.n_classes} classes; inflection: "
        f"{model.inflection_model.best_iteration_} rounds; {len(model.feature_names)} features\n"
    )
    print(
        markdown_table(
            [
                "method (stage + inflection models)",
                "rows",
                "seconds",
                "ms/row",
                "min per 1M buyers",
            ],
            rows,
            numeric=(1, 2, 3, 4),
        )
    )


if __name__ == "__main__":
    main()
