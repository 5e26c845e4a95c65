"""Reason-code cost: LightGBM pred_contrib vs shap.TreeExplainer, in-process vs worker processes.

Measured on one trained model and the same rows, in one process:

1. ms/row of ``reason_table`` (predicted stage + inflection: TreeSHAP + top-k + text) and
   of its TreeSHAP alone (``class_contributions`` + ``contributions``);
2. ms/row of the contributions of every stage class + inflection by LightGBM
   ``pred_contrib`` (1 thread and its own OpenMP threads) and by
   ``shap.TreeExplainer(booster).shap_values`` (which, for a LightGBM Booster without
   background data, itself calls ``pred_contrib``: the gap is shap's overhead);
3. ``reason_table`` on ``--parallel-rows`` rows in-process and with its default
   ``workers`` (a worker process per free core above ``PARALLEL_MIN_ROWS``), the first
   call including the pool's start-up, the second reusing the pool;
4. the largest difference between ``pred_contrib`` and shap's values, and between the
   predicted-class-only contributions and the full model's (exactness);
5. the projected time for 1,000,000 buyers: from wall time, and from CPU time as if the
   2 cores were free (own CPU + workers' CPU / 2: the main process's share is serial),
   since on a shared machine other jobs take cores from the workers.

Run with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/explain.py \
        --model /tmp/explain_model.pkl --frame /tmp/explain_test_frame.pkl

Without ``--model``/``--frame`` an export (``--buyers``, default 1,500) is simulated and
trained first with the default params. Results also go to ``benchmarks/results/explain.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import shap

sys.path.insert(0, str(Path(__file__).parent))

from _common import markdown_table  # noqa: E402

from stageml.explain.contributions import class_contributions, contributions, default_workers
from stageml.explain.reasons import reason_table
from stageml.models.bundle import StageModel  # noqa: E402

MILLION = 1_000_000
RESULTS = Path(__file__).resolve().parent / "results"


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its live children (the worker pool)."""
    me = psutil.Process()
    own = me.cpu_times()
    children = 0.0
    for child in me.children(recursive=True):
        try:
            t = child.cpu_times()
            children += t.user + t.system
        except psutil.Error:
            pass
    return own.user + own.system, children


def _seconds(run: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Best wall seconds of ``repeat`` runs, with that run's CPU seconds (own, workers)."""
    best = (float("inf"), 0.0, 0.0)
    for _ in range(repeat):
        cpu0 = _cpu()
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
        cpu1 = _cpu()
        if wall < best[0]:
            best = (wall, cpu1[0] - cpu0[0], max(0.0, cpu1[1] - cpu0[1]))
    print(f"  ... {best[0]:.2f} s", file=sys.stderr, flush=True)  # progress on long runs
    return best


def _load(args: argparse.Namespace) -> tuple[StageModel, pd.DataFrame]:
    if args.model and args.frame:
        with open(args.model, "rb") as handle:
            model = pickle.load(handle)
        return model, pd.read_pickle(args.frame)
    from stageml.config import Params
    from stageml.data.simulate import simulate, write_export
    from stageml.data.validate import load_export
    from stageml.models.train import train

    folder = Path(tempfile.mkdtemp())
    write_export(simulate(args.buyers, seed=11), folder)
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
        "--parallel-rows", type=int, default=40_000, help="rows for serial vs workers"
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--buyers", type=int, default=1500, help="simulated when no --model")
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

    timings: list[tuple[str, int, tuple[float, float, float]]] = []
    timings.append(
        (
            "reason_table (predicted stage + inflection, k=3), in-process",
            n,
            _seconds(lambda: reason_table(model, X, workers=1), args.repeat),
        )
    )
    predicted = model.stage_model.predict(X)
    timings.append(
        (
            "TreeSHAP of reason codes only: class_contributions + inflection, in-process",
            n,
            _seconds(
                lambda: (
                    class_contributions(model.stage_model, X, predicted, workers=1),
                    contributions(model.inflection_model, X, workers=1),
                ),
                args.repeat,
            ),
        )
    )
    timings.append(
        (
            "pred_contrib, every stage class + inflection, LightGBM 1 thread",
            n,
            _seconds(both(lgb_threads(1), X), args.repeat),
        )
    )
    timings.append(
        (
            "pred_contrib, every stage class + inflection, LightGBM OpenMP threads",
            n,
            _seconds(both(lgb_threads(None), X), args.repeat),
        )
    )
    timings.append(
        (
            "shap.TreeExplainer.shap_values, every stage class + inflection",
            n,
            _seconds(both(_shap, X), args.repeat),
        )
    )
    agreement = {}
    for name, m in zip(("stage", "inflection"), models, strict=True):
        ours = contributions(m, X, workers=1)
        theirs = _shap(m, X)
        theirs = theirs[:, None, :] if theirs.ndim == 2 else theirs.transpose(0, 2, 1)
        agreement[name] = float(np.max(np.abs(ours[:, :, : X.shape[1]] - theirs)))
    full = contributions(model.stage_model, X, workers=1)[np.arange(n), predicted]
    agreement["stage, predicted class only vs full model"] = float(
        np.max(np.abs(class_contributions(model.stage_model, X, predicted, workers=1) - full))
    )
    nb = len(big)
    timings.append(
        (
            "reason_table, in-process (workers=1)",
            nb,
            _seconds(lambda: reason_table(model, big, workers=1), 1),
        )
    )
    timings.append(
        (
            f"reason_table, default workers ({default_workers(nb)}), first call: pool start-up",
            nb,
            _seconds(lambda: reason_table(model, big), 1),
        )
    )
    timings.append(
        (
            f"reason_table, default workers ({default_workers(nb)}), pool already started",
            nb,
            _seconds(lambda: reason_table(model, big), 1),
        )
    )

    rows = [
        (
            name,
            f"{count:,}",
            f"{wall:.2f}",
            f"{own:.1f} + {workers:.1f}",
            f"{1000 * wall / count:.3f}",
            f"{MILLION * wall / count / 60:.1f}",
            f"{MILLION * (own + workers / 2) / count / 60:.1f}",
        )
        for name, count, (wall, own, workers) in timings
    ]
    capacity = {
        task: {
            k: getattr(getattr(model, f"{task}_model"), k)
            for k in ("num_leaves", "max_depth", "learning_rate", "n_estimators")
        }
        | {"rounds_used": getattr(model, f"{task}_model").best_iteration_}
        for task in ("stage", "inflection")
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "explain.json").write_text(
        json.dumps(
            {
                "capacity": capacity,
                "features": len(model.feature_names),
                "cpus": os.cpu_count(),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "max_abs_diff_vs_shap": agreement,
                "load_average": os.getloadavg(),
                "timings": [
                    {
                        "method": name,
                        "rows": count,
                        "wall_s": wall,
                        "cpu_s_own": own,
                        "cpu_s_workers": workers,
                        "ms_row": 1000 * wall / count,
                        "min_per_1m_2_free_cores": MILLION * (own + workers / 2) / count / 60,
                    }
                    for name, count, (wall, own, workers) in timings
                ],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"capacity: {capacity}")
    print(
        "max |pred_contrib - shap| on the same rows: "
        + ", ".join(f"{k} {v:.1e}" for k, v in agreement.items())
    )
    print(
        f"Stage model: {model.stage_model.best_iteration_} rounds x "
        f"{model.stage_model.n_classes} classes; inflection: "
        f"{model.inflection_model.best_iteration_} rounds; {len(model.feature_names)} features\n"
    )
    print(
        markdown_table(
            [
                "method",
                "rows",
                "wall s",
                "CPU s (own + workers)",
                "ms/row (wall)",
                "min per 1M (wall)",
                "min per 1M on 2 free cores",
            ],
            rows,
            numeric=(1, 2, 3, 4, 5, 6),
        )
    )


if __name__ == "__main__":
    main()
