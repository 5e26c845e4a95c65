"""Training benchmark on a simulated export: backtest tables, TRUE-stage recovery, label delay.

What it measures, on one simulated export (default 20,000 buyers):

1. wall time of ``stageml.models.train.train`` with default params, and its own timings;
2. the backtest metrics of the stage and inflection models beside their baselines;
3. how well the predicted stage recovers the simulator's TRUE stage at each test as-of
   instant, and how noisy the recorded CRM stage (the training label) is against it;
4. whether reading labels ``label_delay`` after the as-of instant helps that recovery;
5. that training twice on the same data and params gives identical metrics.

Run with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train.py --quick
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train.py --buyers 20000 --seed 7

Results go to ``benchmarks/results/train.json`` (``train.quick.json`` with ``--quick``, so a
smoke test never overwrites the full run).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import platform
import pstats
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fit_speed  # noqa: E402
from _common import markdown_table  # noqa: E402

from stageml.config import Params  # noqa: E402
from stageml.data.simulate import simulate, write_export  # noqa: E402
from stageml.data.validate import Export, load_export  # noqa: E402
from stageml.durations import format_duration, parse_duration  # noqa: E402
from stageml.features.engine import feature_columns  # noqa: E402
from stageml.models.baselines import (  # noqa: E402
    LastActivityRule,
    MajorityBaseline,
    fit_quietly,
    logistic_baseline,
)
from stageml.models.metrics import stage_metrics  # noqa: E402
from stageml.models.snapshots import build_snapshots  # noqa: E402
from stageml.models.train import TrainingResult, train  # noqa: E402

CACHE = HERE / ".cache"
RESULTS = HERE / "results"
QUICK_BUYERS = 1_000
CANDIDATES = {  # metric prefix -> row name in the tables
    "": "model (calibrated)",
    "model_raw": "model raw",
    "baseline_majority": "majority",
    "baseline_rule": "rule (last activity)",
    "baseline_logistic": "logistic",
}
STAGE_COLUMNS = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "balanced_accuracy": "balanced acc.",
    "log_loss": "log-loss",
    "ece": "ECE",
}
INFLECTION_COLUMNS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier", "ece": "ECE"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print(
            "warning: OMP_WAIT_POLICY is not PASSIVE; LightGBM may be ~20x slower on a "
            "shared machine",
            file=sys.stderr,
        )
    # OpenBLAS threads spin like OpenMP's: on this shared 2-core machine the logistic
    # baseline's lbfgs ran ~5-8x slower with 2 BLAS threads than with 1 (measured).
    limit = (
        threadpool_limits(args.blas_threads, user_api="blas")
        if args.blas_threads
        else nullcontext()
    )
    with limit, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        report = run(args)
    report["warnings"] = _summarise_warnings(caught)
    for line in report["warnings"]:
        print(f"warning: {line}")
    out = RESULTS / ("train.quick.json" if args.quick else "train.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_jsonable(report), indent=2, allow_nan=False) + "\n")
    print(f"\nwrote {out.relative_to(HERE.parent)}")
    return 0 if report["determinism"].get("identical", True) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--label-delay", default="0d", help="label delay of the main run")
    parser.add_argument(
        "--delays",
        default="3d,7d",
        help="further label delays to compare (comma separated; '' for none)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_BUYERS:,} buyers, only the first of --delays",
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads for the baselines (0: the library default)",
    )
    parser.add_argument("--skip-determinism", action="store_true")
    parser.add_argument(
        "--fit-against",
        default=fit_speed.REFERENCE,
        help="reference commit whose fitting time and metrics are compared ('' to skip)",
    )
    parser.add_argument("--fit-repeat", type=int, default=3, help="fits per side (median)")
    args = parser.parse_args(argv)
    delays = [parse_duration(d, allow_zero=True) for d in args.delays.split(",") if d.strip()]
    args.label_delay = parse_duration(args.label_delay, allow_zero=True)
    if args.quick:
        args.buyers = QUICK_BUYERS
        delays = delays[:1]
        args.fit_repeat = 1
    args.delays = [d for d in dict.fromkeys(delays) if d != args.label_delay]
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    clock = Clock()
    with clock("simulate"):
        sim = simulate(args.buyers, seed=args.seed)
    folder = cache_folder(args.buyers, args.seed)
    with clock("write_export"):
        write_export(sim, folder)
    params = with_delay(Params(), args.label_delay)
    with clock("load_export"):
        export = load_export(folder, stages=params.recorded_stages, require_stage_history=True)
    truth = sim.truth
    print(
        f"simulated {args.buyers:,} buyers (seed {args.seed}): {len(export.interactions):,} "
        f"interactions, {len(sim.stage_history):,} recorded stage changes -> {folder}"
    )

    print(f"\n## Training (label_delay {format_duration(args.label_delay)})")
    main_run, wall = timed_train(export, params)
    clock.seconds["train"] = wall
    rows = recovery_rows(main_run, truth, params.stages)
    with clock("baseline_refit"):
        baselines = refit_baselines(export, params, main_run)
    recovery = true_stage_recovery(main_run, rows, params.stages, baselines["predicted"])

    delay_runs = {format_duration(args.label_delay): delay_summary(main_run, wall, rows, params)}
    for delay in args.delays:
        print(f"\n## Training (label_delay {format_duration(delay)})")
        delayed = with_delay(params, delay)
        result, seconds = timed_train(export, delayed)
        delay_runs[format_duration(delay)] = delay_summary(
            result, seconds, recovery_rows(result, truth, params.stages, like=rows), delayed
        )

    breakdown: dict[str, float] = {}
    if args.skip_determinism:
        determinism: dict[str, Any] = {"skipped": True}
    else:
        print("\n## Determinism: training again on the same export and params (profiled)")
        # Profiled here rather than in the main run, so the reported train time is clean.
        profile = cProfile.Profile()
        again, seconds = timed_train(export, params, profile)
        determinism = compare_runs(main_run, again) | {"second_train_s": seconds}
        breakdown = time_breakdown(profile)

    fit_speed_summary = None
    if args.fit_against:
        print(f"\n## Fitting: {args.fit_against} against this tree, same snapshots")
        data = fit_speed.pickled_data(export, params, f"{args.buyers}-seed{args.seed}")
        fit_speed_summary = fit_speed.compare(
            data, args.fit_against, repeat=args.fit_repeat, timeout=3600
        )

    report = {
        "fit_speed": fit_speed_summary,
        "config": {
            "buyers": args.buyers,
            "seed": args.seed,
            "quick": args.quick,
            "label_delay": format_duration(args.label_delay),
            "blas_threads": args.blas_threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "data": main_run.data_description,
        "split": main_run.split.describe()
        | {f"{k}_instants": len(getattr(main_run.split, k)) for k in ("train", "valid", "test")},
        "train_breakdown_s": breakdown,
        "timings_s": clock.seconds
        | {f"train.{k}": v for k, v in main_run.timings.items()}
        | {
            "train.other_s": wall - sum(main_run.timings.values()),
            "baseline_refit.logistic_fit_s": baselines["logistic_fit_s"],
        },
        "metrics": main_run.metrics,
        "baseline_refit_check": baselines["check"]
        | {k: baselines[k] for k in ("logistic_lbfgs_iterations", "logistic_max_iter")},
        "true_stage_recovery": recovery,
        "label_delay": delay_runs,
        "determinism": determinism,
    }
    print_report(report, params.stages)
    return report


class Clock:
    """Wall seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start


def cache_folder(n_buyers: int, seed: int) -> Path:
    # Rewritten every run: the simulator takes about a second for 20k buyers, and a stale
    # export from an older simulator would silently benchmark the wrong world.
    return CACHE / f"train-sim-{n_buyers}-seed{seed}"


def with_delay(params: Params, delay: pd.Timedelta) -> Params:
    return params.model_copy(
        update={"labels": params.labels.model_copy(update={"label_delay": delay})}
    )


def timed_train(
    export: Export, params: Params, profile: cProfile.Profile | None = None
) -> tuple[TrainingResult, float]:
    say = lambda msg: print(f"  {msg}", flush=True)  # noqa: E731
    start = time.perf_counter()
    if profile is None:
        result = train(export, params, progress=say)
    else:
        result = profile.runcall(train, export, params, progress=say)
    seconds = time.perf_counter() - start
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    print(f"  done in {seconds:.1f}s ({steps})", flush=True)
    return result, seconds


# --- TRUE-stage recovery -------------------------------------------------------------


def true_stage_at(keys: pd.DataFrame, truth: pd.DataFrame, stages: tuple[str, ...]) -> np.ndarray:
    """Index of each row's TRUE stage at as_of, -1 if none.

    The TRUE stage is the last truth entry with ``entered_at <= as_of``; same-instant
    entries are applied in taxonomy order, as the labels do for recorded ones.
    """
    rank = {s: i for i, s in enumerate(stages)}
    path = truth[["buyer_id", "stage", "entered_at"]].copy()
    path["buyer_id"] = path["buyer_id"].astype("string")
    path["entered_at"] = pd.to_datetime(path["entered_at"]).astype("datetime64[us]")
    path["true_index"] = path["stage"].map(rank).astype("int64")
    path = path.sort_values(["entered_at", "true_index"], kind="stable")
    left = keys[["buyer_id", "as_of"]].reset_index(drop=True).copy()
    left["buyer_id"] = left["buyer_id"].astype("string")
    left["as_of"] = pd.to_datetime(left["as_of"]).astype("datetime64[us]")
    left["_row"] = np.arange(len(left))
    found = pd.merge_asof(
        left.sort_values("as_of"),
        path.rename(columns={"entered_at": "as_of"})[["buyer_id", "as_of", "true_index"]],
        on="as_of",
        by="buyer_id",
        direction="backward",
        allow_exact_matches=True,
    ).sort_values("_row")
    return np.asarray(found["true_index"].fillna(-1).astype(int).to_numpy())


def recovery_rows(
    result: TrainingResult,
    truth: pd.DataFrame,
    stages: tuple[str, ...],
    like: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """True stage, recorded label and model prediction per test row.

    ``like`` is another run's rows: the test rows must be the same (only labels differ
    between label delays), which is asserted so that delays are compared on equal rows.
    """
    frame = result.test_frame
    if like is not None:
        same = frame[["buyer_id", "as_of"]].equals(like["keys"])
        if not same:
            raise RuntimeError("test rows differ between runs; label delays are not comparable")
    true = like["true"] if like is not None else true_stage_at(frame, truth, stages)
    rank = {s: i for i, s in enumerate(stages)}
    scored = result.model.predict_features(frame)
    predicted = scored["stage"].map(rank).astype(int).to_numpy()
    raw = result.model.stage_model.predict_proba_raw(frame[result.model.feature_names])
    return {
        "keys": frame[["buyer_id", "as_of"]],
        "true": true,
        "recorded": frame["stage_index"].fillna(-1).astype(int).to_numpy(),
        "predicted": {"model (calibrated)": predicted, "model raw": raw.argmax(axis=1)},
    }


def agreement(truth: np.ndarray, guess: np.ndarray, n_stages: int) -> dict[str, float]:
    labels = list(range(n_stages))
    return {
        "rows": int(len(truth)),
        "accuracy": float(accuracy_score(truth, guess)),
        "macro_f1": float(f1_score(truth, guess, labels=labels, average="macro", zero_division=0)),
    }


def true_stage_recovery(
    result: TrainingResult,
    rows: dict[str, Any],
    stages: tuple[str, ...],
    baselines: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Accuracy and macro-F1 against the TRUE stage, on two row sets.

    ``all``: test rows whose buyer has a true stage at as_of (every row the product would
    score). ``labeled``: those that also have a recorded stage, i.e. the rows the backtest
    metrics are computed on; only there can the recorded label itself be compared.
    """
    true, recorded = rows["true"], rows["recorded"]
    has_true = true >= 0
    labeled = has_true & (recorded >= 0)
    guesses = rows["predicted"] | baselines
    n = len(stages)
    out: dict[str, Any] = {
        "test_rows": int(len(true)),
        "rows_without_true_stage": int((~has_true).sum()),
        "rows_true_but_unlabeled": int((has_true & (recorded < 0)).sum()),
        "all": {name: agreement(true[has_true], g[has_true], n) for name, g in guesses.items()},
        "labeled": {name: agreement(true[labeled], g[labeled], n) for name, g in guesses.items()},
    }
    out["labeled"]["recorded label"] = agreement(true[labeled], recorded[labeled], n)
    confusion = pd.crosstab(
        pd.Series(true[labeled], name="true"), pd.Series(recorded[labeled], name="recorded")
    ).reindex(index=range(n), columns=range(n), fill_value=0)
    out["recorded_vs_true_confusion"] = confusion.to_numpy().tolist()
    return out


def refit_baselines(export: Export, params: Params, result: TrainingResult) -> dict[str, Any]:
    """Refit the three baselines on the run's training rows and predict its test rows.

    ``train`` does not return its training rows, so they are rebuilt from the same export,
    vocabulary and as-of instants. The check reproduces ``train``'s own baseline metrics on
    the recorded labels, which shows the rebuilt rows are the ones ``train`` used.
    """
    vocabulary = result.model.vocabulary
    snaps = build_snapshots(
        export.interactions,
        export.stage_history,
        params=params,
        vocabulary=vocabulary,
        buyers=export.buyers,
        as_of=result.split.train,
    )
    columns = feature_columns(vocabulary, params.features)
    labeled = snaps["stage_index"].notna()
    X, y = snaps.loc[labeled, columns], snaps.loc[labeled, "stage_index"].astype(int).to_numpy()
    Xt = result.test_frame[columns]
    n = len(params.stages)
    rule: Any = (
        LastActivityRule(n_classes=n) if "last_activity_1" in X else MajorityBaseline(n_classes=n)
    )
    start = time.perf_counter()
    logistic = fit_quietly(logistic_baseline(X, n_classes=n, random_state=params.seed), X, y)
    fit_s = time.perf_counter() - start
    solver = logistic[-1]
    proba = {
        "baseline_majority": MajorityBaseline(n_classes=n).fit(X, y).predict_proba(Xt),
        "baseline_rule": rule.fit(X, y).predict_proba(Xt),
        "baseline_logistic": logistic.predict_proba(Xt),
    }
    test_labeled = result.test_frame["stage_index"].notna().to_numpy()
    yt = result.test_frame.loc[test_labeled, "stage_index"].astype(int).to_numpy()
    check: dict[str, float] = {}
    for name, p in proba.items():
        mine = stage_metrics(yt, p[test_labeled], params.stages)
        check[name] = max(abs(mine[k] - result.metrics[f"stage.{name}.{k}"]) for k in STAGE_COLUMNS)
    return {
        "predicted": {CANDIDATES[name]: p.argmax(axis=1) for name, p in proba.items()},
        "logistic_fit_s": fit_s,
        "logistic_lbfgs_iterations": int(np.max(solver.n_iter_)),
        "logistic_max_iter": int(solver.max_iter),
        "check": {"max_abs_diff": check, "reproduced": all(v < 1e-9 for v in check.values())},
    }


def delay_summary(
    result: TrainingResult, seconds: float, rows: dict[str, Any], params: Params
) -> dict[str, Any]:
    true, recorded = rows["true"], rows["recorded"]
    has_true = true >= 0
    labeled = has_true & (recorded >= 0)
    n = len(params.stages)
    model = rows["predicted"]["model (calibrated)"]
    return {
        "train_s": seconds,
        "train_instants": len(result.split.train),
        "valid_instants": len(result.split.valid),
        "model_vs_true": agreement(true[has_true], model[has_true], n),
        "model_raw_vs_true": agreement(true[has_true], rows["predicted"]["model raw"][has_true], n),
        "recorded_vs_true": agreement(true[labeled], recorded[labeled], n),
        "model_vs_recorded_macro_f1": result.metrics["stage.macro_f1"],
        "inflection_roc_auc": result.metrics["inflection.roc_auc"],
    }


# Where train() spends its time: cumulative seconds of its main callees, from cProfile.
# Entries nest (booster prediction happens inside the fit, for calibration), so they
# overlap and do not add up to the total.
PROFILED = {
    "build_snapshots (features + labels)": ("stageml/models/snapshots.py", "build_snapshots"),
    "CalibratedLGBM.fit (boosting + calibration)": ("stageml/models/estimators.py", "fit"),
    "  lightgbm.train (boosting)": ("lightgbm/engine.py", "train"),
    "  calibrator fit": ("stageml/models/estimators.py", "_fit_calibrators"),
    "booster predict (valid + test, raw)": ("stageml/models/estimators.py", "predict_proba_raw"),
    "calibrate (apply)": ("stageml/models/estimators.py", "calibrate"),
    # The logistic and count GBM baselines fit in a worker process on two or more cores
    # (stageml.models.baselines.fit_in_background): only the wait for them shows here.
    "waiting for the baselines' worker": ("concurrent/futures/_base.py", "result"),
    "majority + rule predict": ("stageml/models/baselines.py", "predict_proba"),
    "stage metrics": ("stageml/models/metrics.py", "stage_metrics"),
    "inflection metrics": ("stageml/models/metrics.py", "inflection_metrics"),
    "describe_data": ("stageml/models/description.py", "describe_data"),
}


def time_breakdown(profile: cProfile.Profile) -> dict[str, float]:
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for name, (file, function) in PROFILED.items():
        out[name] = sum(
            row[3]
            for (path, _line, func), row in stats.items()
            if func == function and path.replace(os.sep, "/").endswith(file)
        )
    return out


# --- determinism ---------------------------------------------------------------------


def compare_runs(first: TrainingResult, second: TrainingResult) -> dict[str, Any]:
    """Metrics (NaN equal to NaN) and test-row scores must be bit-for-bit identical."""
    a, b = first.metrics, second.metrics
    differing = sorted(
        k for k in a.keys() | b.keys() if k not in a or k not in b or not _same(a[k], b[k])
    )
    scores = [
        m.predict_features(r.test_frame) for m, r in ((first.model, first), (second.model, second))
    ]
    same_scores = scores[0].equals(scores[1])
    identical = not differing and same_scores
    return {
        "identical": identical,
        "metrics_compared": len(a),
        "differing_metrics": differing,
        "test_scores_identical": same_scores,
    }


def _same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == y


# --- output --------------------------------------------------------------------------


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    """The shared table with floats to 4 decimals and every column but the first numeric."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.4f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    return markdown_table(
        header, [[cell(v) for v in row] for row in rows], numeric=range(1, len(header))
    )


def metric_table(
    metrics: dict[str, float], task: str, columns: dict[str, str], suffix: str = ""
) -> str:
    rows = []
    for prefix, name in CANDIDATES.items():
        key = ".".join(p for p in (task, prefix, suffix) if p)
        rows.append([name] + [metrics.get(f"{key}.{c}", float("nan")) for c in columns])
    return markdown(["candidate", *columns.values()], rows)


def print_report(report: dict[str, Any], stages: tuple[str, ...]) -> None:
    metrics, cfg, data = report["metrics"], report["config"], report["data"]
    print(
        f"\n# Training benchmark: {cfg['buyers']:,} buyers, seed {cfg['seed']}, "
        f"label_delay {cfg['label_delay']}"
    )
    print(
        f"\n{data['interactions']:,} interactions; {data['snapshot_rows']:,} snapshot rows "
        f"{data['snapshot_rows_by_period']}; split {report['split']}"
    )

    print("\n## Time (s)\n")
    print(markdown(["step", "seconds"], [[k, v] for k, v in report["timings_s"].items()]))
    if report["train_breakdown_s"]:
        print("\ninside train(), from cProfile of the determinism run (cumulative, nested):\n")
        print(
            markdown(
                ["callee", "seconds"], [[k, v] for k, v in report["train_breakdown_s"].items()]
            )
        )

    if report["fit_speed"]:
        print("\n" + fit_speed.table(report["fit_speed"]))

    test_rows = int(metrics["inflection.rows"])
    print("\n## Stage model (test period, recorded labels)\n")
    print(metric_table(metrics, "stage", STAGE_COLUMNS))
    print(f"\n## Inflection model (test period, all {test_rows:,} labeled rows)\n")
    print(metric_table(metrics, "inflection", INFLECTION_COLUMNS))
    print(
        f"\n## Inflection model (test period, {int(metrics['inflection.can_advance.rows']):,} "
        "can_advance rows)\n"
    )
    print(metric_table(metrics, "inflection", INFLECTION_COLUMNS, suffix="can_advance"))
    check = report["baseline_refit_check"]
    print(
        f"\nbaselines refit outside train() reproduce its metrics: {check['reproduced']} "
        f"(max |diff| {max(check['max_abs_diff'].values()):.2g}); stage logistic baseline "
        f"used {check['logistic_lbfgs_iterations']} of {check['logistic_max_iter']} lbfgs "
        "iterations"
    )

    rec = report["true_stage_recovery"]
    print("\n## TRUE-stage recovery (test period)\n")
    print(
        f"{rec['test_rows']:,} test rows: {rec['rows_without_true_stage']:,} without a true "
        f"stage at as_of (dropped), {rec['rows_true_but_unlabeled']:,} with a true stage but "
        "no recorded one (in 'all' only).\n"
    )
    names = list(rec["labeled"])
    rows = [
        [
            name,
            *(
                rec[s][name][m] if name in rec[s] else float("nan")
                for s in ("all", "labeled")
                for m in ("accuracy", "macro_f1")
            ),
        ]
        for name in names
    ]
    n_all = next(iter(rec["all"].values()))["rows"]
    n_lab = next(iter(rec["labeled"].values()))["rows"]
    print(
        markdown(
            [
                "vs TRUE stage",
                f"acc. (all {n_all:,})",
                f"macro-F1 (all {n_all:,})",
                f"acc. (labeled {n_lab:,})",
                f"macro-F1 (labeled {n_lab:,})",
            ],
            rows,
        )
    )
    print("\nrecorded stage (columns) vs TRUE stage (rows), labeled test rows:\n")
    print(
        markdown(
            ["true \\ recorded", *stages],
            [[s, *row] for s, row in zip(stages, rec["recorded_vs_true_confusion"], strict=True)],
        )
    )

    print("\n## Label delay vs TRUE-stage recovery (same test rows)\n")
    print(
        markdown(
            [
                "label_delay",
                "train s",
                "train/valid instants",
                "model vs TRUE acc.",
                "model vs TRUE macro-F1",
                "raw vs TRUE macro-F1",
                "recorded vs TRUE macro-F1",
                "model vs recorded macro-F1",
                "inflection ROC-AUC",
            ],
            [
                [
                    d,
                    r["train_s"],
                    f"{r['train_instants']}/{r['valid_instants']}",
                    r["model_vs_true"]["accuracy"],
                    r["model_vs_true"]["macro_f1"],
                    r["model_raw_vs_true"]["macro_f1"],
                    r["recorded_vs_true"]["macro_f1"],
                    r["model_vs_recorded_macro_f1"],
                    r["inflection_roc_auc"],
                ]
                for d, r in report["label_delay"].items()
            ],
        )
    )

    det = report["determinism"]
    print("\n## Determinism\n")
    if det.get("skipped"):
        print("skipped (--skip-determinism)")
    else:
        differing = det["differing_metrics"]
        print(
            f"second training ({det['second_train_s']:.1f}s): {det['metrics_compared']} "
            f"metrics identical: {not differing}; test scores identical: "
            f"{det['test_scores_identical']}"
            + (f"; differing: {differing[:10]}" if differing else "")
        )


def _summarise_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    counts: dict[str, int] = {}
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
        counts[text] = counts.get(text, 0) + 1
    return [f"{text} (x{n})" for text, n in counts.items()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
