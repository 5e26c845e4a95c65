"""Model capacity vs accuracy vs reason-code cost, on one simulated export.

For each booster capacity (``num_leaves`` x ``max_depth`` x ``learning_rate``/``n_estimators``,
the same for the stage and the inflection model) this trains both models exactly as
``stageml.models.train.train`` does (``train`` is ``fit(prepare_training(...))``; the snapshots
are built once and shared by every configuration, since capacity does not change them) and
reports, on the test period:

* stage macro-F1 and log-loss (calibrated), inflection ROC-AUC on the buyers who can still
  advance (``inflection.can_advance.roc_auc``) and on all labeled rows;
* the boosting rounds actually used (early stopping on the validation period);
* ms/row of exact TreeSHAP contributions, LightGBM ``pred_contrib`` with 1 thread on the
  same test rows for every configuration (median of ``--repeat`` interleaved runs after
  all fits, in this one process, so the columns compare configurations even when the
  machine's load changes): the stage model over every class (``contributions``), the
  stage model over the predicted class's trees only (``class_contributions``, what reason
  codes use) and the inflection model;
* the projected minutes per 1,000,000 buyers for stage + inflection reason codes with 2
  worker processes (ms/row x 1M / 2: the ideal split, without process start-up or the
  top-k/text step; see ``benchmarks/explain.py`` for the end-to-end figure), and the same
  if every stage class were explained.

Configurations listed in ``--spread`` are trained again with more model seeds
(``--spread-seeds``; LightGBM's bagging and feature sampling), on the same data: the
seed-to-seed spread is what "no measurable loss of accuracy" is judged against.

Run with ``OMP_WAIT_POLICY=PASSIVE`` (and ``nice`` on a shared machine)::

    OMP_WAIT_POLICY=PASSIVE nice -n 10 .venv/bin/python benchmarks/capacity.py --buyers 5000

The logistic baseline is not refitted per configuration (it does not depend on capacity
and dominates the fit time); ``--with-baselines`` keeps it. Results go to
``benchmarks/results/capacity.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline, make_pipeline

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import markdown_table  # noqa: E402

import stageml.models.train as train_module  # noqa: E402
from stageml.config import Params  # noqa: E402
from stageml.data.simulate import simulate, write_export  # noqa: E402
from stageml.data.validate import load_export  # noqa: E402
from stageml.explain.contributions import class_boosters  # noqa: E402
from stageml.models.baselines import MajorityBaseline  # noqa: E402

CACHE = HERE / ".cache"
RESULTS = HERE / "results"
MILLION = 1_000_000
DEFAULT_GRID = (
    "7x3@0.05/400,15x4@0.05/400,15x6@0.05/400,31x-1@0.05/400,"
    "7x3@0.1/200,15x4@0.1/200,15x6@0.1/200,31x-1@0.1/200,7x3@0.2/100,15x4@0.2/100"
)
METRICS = {
    "stage.macro_f1": "stage macro-F1",
    "stage.log_loss": "stage log-loss",
    "inflection.can_advance.roc_auc": "inflection ROC-AUC (can advance)",
    "inflection.roc_auc": "inflection ROC-AUC (all)",
}


def parse_capacity(spec: str) -> dict[str, Any]:
    """``"15x6@0.05/400"`` -> num_leaves 15, max_depth 6, learning_rate 0.05, n_estimators 400."""
    shape, _, schedule = spec.strip().partition("@")
    leaves, depth = shape.split("x")
    rate, rounds = schedule.split("/")
    return {
        "num_leaves": int(leaves),
        "max_depth": int(depth),
        "learning_rate": float(rate),
        "n_estimators": int(rounds),
    }


def parse_config(spec: str) -> dict[str, dict[str, Any]]:
    """One capacity for both models, or ``"<stage>+<inflection>"`` for one each."""
    stage, _, inflection = spec.strip().partition("+")
    return {"stage": parse_capacity(stage), "inflection": parse_capacity(inflection or stage)}


def _short(capacity: dict[str, Any]) -> str:
    return (
        f"{capacity['num_leaves']}x{capacity['max_depth']}"
        f"@{capacity['learning_rate']:g}/{capacity['n_estimators']}"
    )


def label(config: dict[str, dict[str, Any]]) -> str:
    stage, inflection = _short(config["stage"]), _short(config["inflection"])
    return stage if stage == inflection else f"{stage}+{inflection}"


def with_capacity(params: Params, config: dict[str, dict[str, Any]], seed: int) -> Params:
    stage = params.train.stage.model_copy(update=config["stage"])
    inflection = params.train.inflection.model_copy(update=config["inflection"])
    return params.model_copy(
        update={
            "seed": seed,
            "train": params.train.model_copy(update={"stage": stage, "inflection": inflection}),
        }
    )


def skip_logistic_baseline() -> None:
    """Replace the logistic baseline inside ``fit`` by the majority class (capacity-free)."""

    def majority(_X: pd.DataFrame, *, n_classes: int, random_state: int) -> Pipeline:
        return make_pipeline(MajorityBaseline(n_classes=n_classes))

    train_module.logistic_baseline = majority  # type: ignore[assignment]


def time_explanations(
    models: list[tuple[Any, Any]], rows: pd.DataFrame, repeat: int
) -> list[dict[str, float]]:
    """Median ms/row of TreeSHAP (1 thread) per model and for reason codes, per bundle.

    ``stage_all``: ``pred_contrib`` of the full stage model (every class, what
    ``contributions`` computes); ``stage``: only the predicted class's trees (what
    ``reason_table`` computes, via ``class_contributions``); ``inflection``: the binary
    model. Repeats are interleaved (every bundle once, then again), so that a change in
    the load of this shared machine affects every configuration alike.
    """
    tasks = ("stage_all", "stage", "inflection")
    seconds: list[dict[str, list[float]]] = [{t: [] for t in tasks} for _ in models]
    predicted = [stage.predict(rows) for stage, _ in models]
    for _ in range(repeat):
        for i, (stage, inflection) in enumerate(models):
            for task in tasks:
                start = time.perf_counter()
                if task == "stage":
                    boosters = class_boosters(stage)
                    for k in np.unique(predicted[i]):
                        at = np.flatnonzero(predicted[i] == k)
                        boosters[k].predict(rows.iloc[at], pred_contrib=True, num_threads=1)
                else:
                    estimator = stage if task == "stage_all" else inflection
                    estimator.booster_.predict(
                        rows,
                        pred_contrib=True,
                        num_iteration=estimator.best_iteration_,
                        num_threads=1,
                    )
                seconds[i][task].append(time.perf_counter() - start)
    out = []
    for times in seconds:
        cost = {f"{t}_ms_row": 1000 * statistics.median(v) / len(rows) for t, v in times.items()}
        cost["both_ms_row"] = cost["stage_ms_row"] + cost["inflection_ms_row"]
        cost["both_all_classes_ms_row"] = cost["stage_all_ms_row"] + cost["inflection_ms_row"]
        cost["min_per_1m_2_workers"] = cost["both_ms_row"] * MILLION / 2 / 60_000
        cost["min_per_1m_2_workers_all_classes"] = (
            cost["both_all_classes_ms_row"] * MILLION / 2 / 60_000
        )
        out.append(cost)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=5000)
    parser.add_argument("--data-seed", type=int, default=7, help="simulator seed")
    parser.add_argument("--seed", type=int, default=7, help="model seed of the grid")
    parser.add_argument(
        "--grid",
        default=DEFAULT_GRID,
        help="comma list of LxD@rate/rounds (both models) or <stage>+<inflection>",
    )
    parser.add_argument(
        "--spread", default="", help="configurations to retrain with --spread-seeds (comma list)"
    )
    parser.add_argument("--spread-seeds", default="8,9")
    parser.add_argument("--rows", type=int, default=1000, help="test rows timed per config")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-baselines", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "capacity.json"))
    args = parser.parse_args(argv)
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("warning: OMP_WAIT_POLICY is not PASSIVE", file=sys.stderr)
    if not args.with_baselines:
        skip_logistic_baseline()
    # The feature engine's pandas PerformanceWarnings are not what this measures.
    warnings.simplefilter("ignore", pd.errors.PerformanceWarning)

    runs: list[tuple[dict[str, Any], int]] = [
        (parse_config(s), args.seed) for s in args.grid.split(",") if s.strip()
    ]
    spread_seeds = [int(s) for s in args.spread_seeds.split(",") if s.strip()]
    for spec in (s for s in args.spread.split(",") if s.strip()):
        config = parse_config(spec)
        if all(label(c) != label(config) or seed != args.seed for c, seed in runs):
            runs.append((config, args.seed))
        runs += [(config, seed) for seed in spread_seeds if seed != args.seed]

    folder = CACHE / f"capacity-sim-{args.buyers}-seed{args.data_seed}"
    write_export(simulate(args.buyers, seed=args.data_seed), folder)
    export = load_export(folder)
    base = Params()
    start = time.perf_counter()
    data = train_module.prepare_training(export, base)
    features_s = time.perf_counter() - start
    snaps = data.snapshots
    print(
        f"{args.buyers:,} buyers (data seed {args.data_seed}): {len(export.interactions):,} "
        f"interactions, {len(snaps):,} snapshot rows, features {features_s:.0f} s",
        flush=True,
    )

    records: list[dict[str, Any]] = []
    timed: list[tuple[int, tuple[Any, Any]]] = []  # (record index, boosters) of grid-seed runs
    rows: pd.DataFrame | None = None
    for config, seed in runs:
        params = with_capacity(base, config, seed)
        start = time.perf_counter()
        result = train_module.fit(data, params)
        fit_s = time.perf_counter() - start
        if rows is None:
            # The same test rows for every configuration (the test frame does not depend
            # on capacity); resized so that small exports still give --rows rows.
            frame = result.test_frame[result.model.feature_names]
            rows = frame.iloc[np.resize(np.arange(len(frame)), min(args.rows, len(frame)))]
        m = result.metrics
        if seed == args.seed:
            timed.append((len(records), (result.model.stage_model, result.model.inflection_model)))
        record = {
            "config": label(config),
            "stage_capacity": config["stage"],
            "inflection_capacity": config["inflection"],
            "seed": seed,
            **{k: m[k] for k in METRICS},
            "stage_rounds": int(m["stage.best_iteration"]),
            "inflection_rounds": int(m["inflection.best_iteration"]),
            "stage_trees": int(m["stage.best_iteration"]) * len(base.stages),
            "fit_s": fit_s,
        }
        records.append(record)
        print(
            f"  {record['config']} seed {seed}: macro-F1 {record['stage.macro_f1']:.4f}, "
            f"log-loss {record['stage.log_loss']:.4f}, AUC(can advance) "
            f"{record['inflection.can_advance.roc_auc']:.4f}, rounds "
            f"{record['stage_rounds']}/{record['inflection_rounds']}, fit {fit_s:.0f} s",
            flush=True,
        )
    if rows is not None:
        print(f"timing pred_contrib on {len(rows):,} rows, {args.repeat} interleaved repeats")
        costs = time_explanations([models for _, models in timed], rows, args.repeat)
        for (index, _), cost in zip(timed, costs, strict=True):
            records[index].update(cost)

    spread = spread_table(records)
    report = {
        "config": {
            "buyers": args.buyers,
            "data_seed": args.data_seed,
            "grid_seed": args.seed,
            "spread_seeds": spread_seeds,
            "timed_rows": 0 if rows is None else len(rows),
            "repeat": args.repeat,
            "with_baselines": args.with_baselines,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "cpus": os.cpu_count(),
            "snapshot_rows": len(snaps),
            "test_rows": int(m["inflection.rows"]) if records else 0,
            "features_s": features_s,
        },
        "runs": records,
        "spread": spread,
    }
    print_report(report, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, allow_nan=False, default=float) + "\n")
    print(f"\nwrote {out}")
    return 0


def spread_table(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per configuration run with several seeds: mean, min, max and range of each metric."""
    by_config: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_config.setdefault(r["config"], []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for config, group in by_config.items():
        if len(group) < 2:
            continue
        out[config] = {"seeds": [r["seed"] for r in group]}
        for key in METRICS:
            values = [r[key] for r in group]
            out[config][key] = {
                "mean": statistics.fmean(values),
                "min": min(values),
                "max": max(values),
                "range": max(values) - min(values),
            }
    return out


def print_report(report: dict[str, Any], grid_seed: int) -> None:
    cfg = report["config"]
    print(
        f"\n# Capacity vs accuracy vs reason-code cost: {cfg['buyers']:,} simulated buyers, "
        f"{cfg['test_rows']:,} labeled test rows, pred_contrib timed on {cfg['timed_rows']:,} "
        "rows, 1 thread\n"
    )
    rows = [
        [
            r["config"],
            f"{r['stage.macro_f1']:.4f}",
            f"{r['stage.log_loss']:.4f}",
            f"{r['inflection.can_advance.roc_auc']:.4f}",
            f"{r['stage_rounds']}/{r['inflection_rounds']}",
            f"{r['stage_all_ms_row']:.3f}",
            f"{r['stage_ms_row']:.3f}",
            f"{r['inflection_ms_row']:.3f}",
            f"{r['both_ms_row']:.3f}",
            f"{r['min_per_1m_2_workers']:.1f}",
            f"{r['min_per_1m_2_workers_all_classes']:.1f}",
        ]
        for r in report["runs"]
        if r["seed"] == grid_seed and "both_ms_row" in r
    ]
    print(
        markdown_table(
            [
                "leaves x depth @ lr/max rounds (stage[+inflection])",
                "stage macro-F1",
                "stage log-loss",
                "inflection ROC-AUC (can advance)",
                "rounds used (stage/infl.)",
                "stage ms/row, all classes",
                "stage ms/row, predicted class",
                "infl. ms/row",
                "reason codes ms/row (pred. class + infl.)",
                "min per 1M (2 workers)",
                "min per 1M, all classes",
            ],
            rows,
            numeric=range(1, 11),
        )
    )
    if report["spread"]:
        print("\n## Seed-to-seed spread (same data, model seeds differ)\n")
        lines = []
        for config, s in report["spread"].items():
            lines.append(
                [config, ",".join(str(x) for x in s["seeds"])]
                + [
                    f"{s[k]['mean']:.4f} [{s[k]['min']:.4f}, {s[k]['max']:.4f}]"
                    for k in METRICS
                    if not math.isnan(s[k]["mean"])
                ]
            )
        print(markdown_table(["config", "seeds", *METRICS.values()], lines))


if __name__ == "__main__":
    sys.exit(main())
