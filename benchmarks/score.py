"""Benchmark batch scoring: local engine (scaling, reasons), Spark engine, per-buyer Spark.

Run ``OMP_WAIT_POLICY=PASSIVE python benchmarks/score.py [--quick] [--sizes 250000 ...]``.

Inputs are simulated once and cached under ``benchmarks/.cache/`` (``score-sim-<n>-seed7``,
about 48 interactions per buyer) with a model trained on 3,000 simulated buyers
(``Params()``, pickled to ``score-model-3000-seed3-<defaults hash>.pkl``). Every measurement
runs in a fresh child process; wall time covers the whole scoring call (read, validate,
features, model, reasons, write). Peak RSS is the larger of the child's own high-water mark
(``VmHWM``) and the RSS of the child and all its worker processes, summed and polled every
0.1 s; for Spark the first is the driver plus the JVM and its Python workers, each at its
own peak, summed (an upper bound: the peaks need not coincide). CPU s is the user + system
time of the child and of the worker processes it reaped (loky workers; not the Spark JVM),
which, unlike wall time, does not grow when other jobs take the shared cores.

Tables:

1. Local engine on each size without reasons (does memory stay flat as the export
   doubles?), and on the largest size with reason codes.
2. Spark engine (``local[2]``) on the largest size.
3. On each ``--compare-sizes`` export (default: 20,000 buyers, ~1M interactions), in one
   SparkSession: the Spark engine against the local engine on the same export (issue
   #15's overhead target, 1.3x): a first round, then ``--warm-repeat`` steady-state
   rounds, each running a native ``groupBy().agg`` of plain counts, the Spark engine and
   the local engine one after the other; medians of the steady rounds.
4. On the 20,000-buyer export, also a per-buyer ``groupBy(buyer_id).cogroup().applyInArrow``
   running the same ``score_tables`` per buyer (on the first ``--per-buyer`` buyers,
   extrapolated linearly per buyer; the table says so). ``--compare-only`` runs only 3-4.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import emit_result, markdown_table, peak_rss_mb, run_child  # noqa: E402
from fit_speed import reference_src  # noqa: E402

CACHE = HERE / ".cache"
RESULTS = HERE / "results"
AS_OF = "2026-03-01"
SEED = 7
TRAIN_BUYERS, TRAIN_SEED = 3000, 3
COMPARE_BUYERS = 20_000  # ~1M interactions
FULL_SIZES = (250_000, 500_000, 1_000_000)
QUICK_SIZES = (20_000,)
TARGET_LOCAL_S, TARGET_RSS_MB = 180.0, 4000.0


# --------------------------------------------------------------------------------------
# Inputs


def export_dir(n: int) -> Path:
    """The cached simulated export of ``n`` buyers (simulated on first use)."""
    from stageml.data.simulate import simulate_to_folder

    folder = CACHE / f"score-sim-{n}-seed{SEED}"
    if not (folder / "interactions.parquet").exists():
        print(f"simulating {n:,} buyers -> {folder}", flush=True)
        simulate_to_folder(n, seed=SEED, out=folder)
    return folder


def model_path() -> Path:
    """The cached pickled StageModel (trained on first use, ~2 min).

    The file name carries a hash of the default ``Params()``, so a change of defaults
    (e.g. model capacity) trains a new model instead of reusing a stale one.
    """
    import hashlib

    from stageml.config import Params
    from stageml.data.io import atomic_path
    from stageml.data.simulate import simulate_to_folder
    from stageml.data.validate import load_export
    from stageml.models.train import train

    defaults = hashlib.sha256(Params().model_dump_json().encode()).hexdigest()[:8]
    path = CACHE / f"score-model-{TRAIN_BUYERS}-seed{TRAIN_SEED}-{defaults}.pkl"
    if not path.exists():
        folder = CACHE / f"score-sim-{TRAIN_BUYERS}-seed{TRAIN_SEED}"
        if not (folder / "interactions.parquet").exists():
            simulate_to_folder(TRAIN_BUYERS, seed=TRAIN_SEED, out=folder)
        print(f"training the benchmark model on {TRAIN_BUYERS:,} buyers", flush=True)
        result = train(load_export(folder), Params())
        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps(result.model))
    return path


def compiled_model_path(plain: Path) -> Path:
    """The same model with both boosters compiled (what registration stores), cached."""
    from stageml.data.io import atomic_path
    from stageml.tracking.runs import compile_bundle

    path = plain.with_name(plain.stem + "-compiled.pkl")
    if not path.exists():
        with open(plain, "rb") as handle:
            model = pickle.load(handle)  # noqa: S301 - our own cache
        print("compiling the benchmark model's boosters", flush=True)
        print(f"  {compile_bundle(model)}", flush=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps(model))
    return path


def interaction_rows(folder: Path) -> int:
    """Rows of the export's interactions table (Parquet metadata only)."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(folder / "interactions.parquet").metadata.num_rows)


# --------------------------------------------------------------------------------------
# Children


def child(args: argparse.Namespace) -> None:
    """Run one measurement in this (fresh) process and emit its result line."""
    with open(args.model, "rb") as handle:
        model = pickle.load(handle)  # noqa: S301 - our own cache
    out = Path(args.out)
    if args.child == "local":
        from stageml.scoring.local import score_local

        clock = time.perf_counter()
        summary = score_local(args.data, model, AS_OF, out=out, reasons=args.reasons)
        emit_result(
            {
                "seconds": time.perf_counter() - clock,
                "peak_rss_mb": peak_rss_mb(),
                "scored": summary["scored_buyers"],
                "partitions": summary["partitions"],
            }
        )
        return
    from stageml.scoring.spark import score_spark, spark_session

    clock = time.perf_counter()
    spark = spark_session("local[2]")
    started = time.perf_counter() - clock
    result: dict[str, Any] = {"startup_s": started}
    if args.child == "spark":
        clock = time.perf_counter()
        summary = score_spark(args.data, model, AS_OF, out=out, reasons=args.reasons)
        result.update(
            seconds=time.perf_counter() - clock,
            scored=summary["scored_buyers"],
            partitions=summary["partitions"],
        )
    else:  # "compare": the three Spark ways on one export, one session
        from stageml.scoring.local import score_local

        # A first round pays the JVM's and the Python workers' warm-up (imports, model
        # unpickling); then --warm-repeat rounds of the steady state of a session, each
        # running the native aggregation, the Spark engine and the local engine (the same
        # scoring work without Spark, both cores) one after the other: medians.
        runs: dict[str, list[float]] = {"native": [], "bucketed": [], "local": []}
        for _ in range(1 + args.warm_repeat):
            clock = time.perf_counter()
            result["native_rows"] = native_counts(spark, Path(args.data))
            runs["native"].append(time.perf_counter() - clock)
            clock = time.perf_counter()
            summary = score_spark(args.data, model, AS_OF, out=out)
            runs["bucketed"].append(time.perf_counter() - clock)
            clock = time.perf_counter()
            score_local(args.data, model, AS_OF, out=out.with_name(out.stem + "-local.parquet"))
            runs["local"].append(time.perf_counter() - clock)
        for way, seconds in runs.items():
            result[f"{way}_s"] = seconds[0]
            result[f"{way}_warm_s"] = statistics.median(seconds[1:])
            result[f"{way}_all_s"] = seconds
        result["buckets"] = summary["partitions"]
        result["scored"] = summary["scored_buyers"]
        if args.per_buyer:
            clock = time.perf_counter()
            result["per_buyer_buyers"] = per_buyer(spark, Path(args.data), model, args.per_buyer)
            result["per_buyer_s"] = time.perf_counter() - clock
    result["peak_rss_mb"] = peak_rss_mb() + _jvm_peak_mb(spark)
    emit_result(result)
    spark.stop()


def native_counts(spark: Any, folder: Path) -> int:
    """Plain per-buyer counts as of the instant with Spark's own aggregation, to pandas."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(str(folder / "interactions.parquet"))
    past = frame.where(F.col("occurred_at") < F.lit(AS_OF).cast("timestamp"))
    counts = past.groupBy(F.trim("buyer_id").alias("buyer_id")).agg(
        F.count("*").alias("interactions"),
        F.countDistinct("activity").alias("activities"),
        F.sum(F.when(F.col("direction") == "inbound", 1).otherwise(0)).alias("inbound"),
        F.max("occurred_at").alias("last_at"),
    )
    return len(counts.toPandas())


def per_buyer(spark: Any, folder: Path, model: Any, limit: int) -> int:
    """The naive layout: one ``score_tables`` call per buyer, on the first ``limit`` buyers."""
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import functions as F

    from stageml.data.validate import SOURCE_ROW
    from stageml.scoring.spark import _score_bucket
    from stageml.scoring.staging import arrow_to_frame

    sources = {name: str(folder / f"{name}.parquet") for name in ("interactions", "buyers")}
    # Only buyers with an interaction before the instant: a group with nothing to score
    # makes LightGBM raise on an empty frame inside score_tables (reported, not fixed here).
    ids = (
        spark.read.parquet(sources["interactions"])
        .where(F.col("occurred_at") < F.lit(AS_OF).cast("timestamp"))
        .select("buyer_id")
        .distinct()
        .orderBy("buyer_id")
        .limit(limit)
    )
    # Spark's own rows, numbered from the file; one cogroup per buyer.
    tables = {
        name: spark.read.parquet(path)
        .select("*", (F.col("_metadata.row_index") + 1).alias(SOURCE_ROW))
        .join(ids, "buyer_id", "left_semi")
        for name, path in sources.items()
    }
    blob = spark.sparkContext.broadcast(pickle.dumps(model))
    as_of = pd.Timestamp(AS_OF)

    def naive(table: pa.Table) -> pd.DataFrame:  # Spark's UTC-tagged times, naive
        schema = pa.schema(
            pa.field(f.name, pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) else f
            for f in table.schema
        )
        return arrow_to_frame(table.cast(schema))

    def one(left: pa.Table, right: pa.Table) -> pa.Table:
        # A buyer without a buyers row: no table, as in an export without one (an empty
        # table is a validation error).
        frames = {"interactions": naive(left)} | ({"buyers": naive(right)} if len(right) else {})
        result = _score_bucket(
            frames,
            _cached(blob.value),
            bucket=0,
            as_of=as_of,
            sources=sources,
            reasons=0,
            sample_rows=1,
        )
        return pa.table({"n": [len(result.scores)]})

    done = (
        tables["interactions"]
        .groupBy("buyer_id")
        .cogroup(tables["buyers"].groupBy("buyer_id"))
        .applyInArrow(one, "n long")
    )
    return int(done.agg(F.sum("n")).collect()[0][0] or 0)


def _cached(blob: bytes) -> Any:
    import hashlib

    from stageml.scoring.spark import _model

    return _model(hashlib.sha256(blob).hexdigest(), blob)


def _jvm_peak_mb(spark: Any) -> float:
    """Peak RSS of the JVM and its descendants (Python workers), each at its own peak."""
    import psutil

    try:
        jvm = psutil.Process(spark.sparkContext._gateway.proc.pid)
    except (AttributeError, psutil.Error):
        return 0.0
    total = 0.0
    for process in [jvm, *jvm.children(recursive=True)]:
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024 / 1e6
        except OSError:
            continue
    return total


# --------------------------------------------------------------------------------------
# Parent


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare inputs, run every measurement in a child, print the tables."""
    plain = model_path()
    # "reference": the compiled model scored by the reference commit's code.
    compiled = compiled_model_path(plain)
    models = {"lightgbm": plain, "compiled": compiled, "reference": compiled}
    code = {"reference": {"PYTHONPATH": str(reference_src(args.ref))}} if args.ref else {}
    sizes = sorted(args.sizes)
    wanted = {*args.compare_sizes} | (set() if args.compare_only else set(sizes))
    exports = {n: export_dir(n) for n in sorted(wanted)}
    rows = {n: interaction_rows(folder) for n, folder in exports.items()}
    work = CACHE / "score-out"
    work.mkdir(parents=True, exist_ok=True)
    script = Path(__file__).resolve()

    def measure(
        kind: str, n: int, reasons: int = 0, path: str = "compiled", **extra: Any
    ) -> dict[str, Any]:
        out = work / f"{kind}-{n}-r{reasons}.parquet"
        argv = [
            "--child",
            kind,
            "--data",
            str(exports[n]),
            "--model",
            str(models[path]),
            "--out",
            str(out),
            "--reasons",
            str(reasons),
        ]
        argv += [a for k, v in extra.items() for a in (f"--{k.replace('_', '-')}", str(v))]
        print(f"running {kind} on {n:,} buyers (reasons={reasons}, {path})", flush=True)
        result = run_child(script, argv, timeout=args.timeout, env=code.get(path))
        result.update(engine=kind, buyers=n, interactions=rows[n], reasons=reasons, path=path)
        if path == "reference":
            result["path"] = f"reference {args.ref}"
        if "seconds" in result:
            result["rows_per_s"] = rows[n] / result["seconds"]
        print(f"  -> {json.dumps(result, default=str)}", flush=True)
        return result

    def compared(kind: str, n: int, reasons: int = 0) -> list[dict[str, Any]]:
        """Each prediction path ``--repeat`` times, alternating; the median run of each."""
        paths = (args.reasons_paths or args.paths) if reasons else args.paths
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
        for _ in range(args.repeat):
            for path in paths:
                runs[path].append(measure(kind, n, reasons, path))
        return [_median_run(found) for found in runs.values()]

    report: dict[str, Any] = {
        "quick": args.quick,
        "as_of": AS_OF,
        "machine": _machine(),
        "repeat": args.repeat,
    }
    report["local"], report["local_reasons"], report["spark"] = [], [], []
    if not args.compare_only:
        report["local"] = [r for n in sizes for r in compared("local", n)]
        if args.reasons and _reasons_available():
            report["local_reasons"] = compared("local", sizes[-1], reasons=args.reasons)
        elif args.reasons:
            report["reasons_note"] = "stageml.explain.reasons.reason_codes not importable: skipped"
        report["spark"] = [] if args.skip_spark else [measure("spark", sizes[-1])]
    report["compare"] = (
        []
        if args.skip_spark
        else [
            measure(
                "compare",
                n,
                per_buyer=args.per_buyer if n == COMPARE_BUYERS else 0,
                warm_repeat=args.warm_repeat,
            )
            for n in args.compare_sizes
        ]
    )
    report["tables"] = tables(report)
    print("\n" + report["tables"])
    return report


def tables(report: dict[str, Any]) -> str:
    """The Markdown tables of a report."""

    def fmt(value: Any, spec: str) -> str:
        return "error" if value is None else format(value, spec)

    local = [*report["local"], *report["local_reasons"], *report["spark"]]
    # Speed-ups are against the first path of the run (LightGBM's, or the reference code).
    baseline = local[0].get("path") if local else None
    before = {
        (r["engine"], r["buyers"], r["reasons"]): r.get("seconds")
        for r in local
        if r.get("path") == baseline
    }

    def ratio(r: dict[str, Any]) -> str:
        then = before.get((r["engine"], r["buyers"], r["reasons"]))
        return f"{then / r['seconds']:.2f}x" if then and r.get("seconds") else ""

    first = markdown_table(
        [
            "engine",
            "prediction",
            "buyers",
            "interactions",
            "reasons",
            "wall s",
            "CPU s",
            "rows/s",
            "peak RSS MB",
            "partitions",
            f"speed-up vs {baseline}",
            "note",
        ],
        [
            [
                r["engine"] + (" (local[2])" if r["engine"] == "spark" else ""),
                r.get("path", ""),
                f"{r['buyers']:,}",
                f"{r['interactions']:,}",
                r["reasons"],
                fmt(r.get("seconds"), ".1f"),
                fmt(r.get("cpu_s"), ".0f"),
                fmt(r.get("rows_per_s"), ",.0f"),
                fmt(_peak(r), ",.0f"),
                r.get("partitions", ""),
                ratio(r),
                r.get("error", "")
                or (f"+ {r['startup_s']:.1f} s session start" if "startup_s" in r else ""),
            ]
            for r in local
        ],
        numeric=range(2, 11),
    )
    out = [f"### Scoring engines (median of {report.get('repeat', 1)})\n", first] if local else []
    local_compiled = {
        r["buyers"]: r.get("seconds") for r in report["local"] if r.get("path") == "compiled"
    }
    for r in report["spark"]:
        if r.get("seconds") and local_compiled.get(r["buyers"]):
            out.append(
                f"\nSpark overhead on {r['buyers']:,} buyers: "
                f"{r['seconds'] / local_compiled[r['buyers']]:.2f}x the local engine (target 1.3x)"
            )
    compares = report.get("compare") or []
    done = [c for c in compares if "bucketed_warm_s" in c]
    if done:
        out += [
            "\n### Spark engine against the local engine, one session (local[2]; target 1.3x)\n",
            markdown_table(
                [
                    "buyers",
                    "interactions",
                    "buckets",
                    "Spark warm s",
                    "local s",
                    "Spark / local",
                    "Spark first run s",
                    "rounds",
                ],
                [
                    [
                        f"{c['buyers']:,}",
                        f"{c['interactions']:,}",
                        c["buckets"],
                        f"{c['bucketed_warm_s']:.1f}",
                        f"{c['local_warm_s']:.1f}",
                        f"{c['bucketed_warm_s'] / c['local_warm_s']:.2f}x",
                        f"{c['bucketed_s']:.1f}",
                        f"median of {len(c['bucketed_all_s']) - 1}",
                    ]
                    for c in done
                ],
                numeric=range(6),
            ),
        ]
    out += [_layouts(c) for c in done if "per_buyer_s" in c]
    out += [f"\nSpark comparison: {c.get('error')}" for c in compares if c not in done]
    if report.get("reasons_note"):
        out.append(f"\n{report['reasons_note']}")
    return "\n".join(out)


def _layouts(compare: dict[str, Any]) -> str:
    """The Spark layouts table of one comparison (the per-buyer one is extrapolated)."""
    n, done = compare["buyers"], compare["per_buyer_buyers"]
    per_buyer_full = compare["per_buyer_s"] / max(done, 1) * n
    compare["per_buyer_extrapolated_s"] = per_buyer_full
    bucketed, warm = compare["bucketed_s"], compare["bucketed_warm_s"]
    native_warm = compare["native_warm_s"]
    return "\n".join(
        [
            f"\n### Spark layouts on {compare['interactions']:,} interactions "
            f"({n:,} buyers, local[2], one session)\n",
            markdown_table(
                ["way", "wall s", "vs bucketed", "note"],
                [
                    [
                        "score_spark (buckets of buyers)",
                        f"{bucketed:.1f}",
                        "1.0x",
                        f"{compare['buckets']} buckets, {compare['scored']:,} scored",
                    ],
                    [
                        "groupBy(buyer_id).cogroup().applyInArrow",
                        f"{per_buyer_full:.1f}",
                        f"{per_buyer_full / bucketed:.1f}x slower",
                        f"measured {compare['per_buyer_s']:.1f} s on {done:,} buyers, "
                        "extrapolated per buyer",
                    ],
                    [
                        "native groupBy().agg (plain counts)",
                        f"{compare['native_s']:.1f}",
                        f"{bucketed / compare['native_s']:.1f}x faster",
                        f"{compare['native_rows']:,} buyers; 4 counts only",
                    ],
                    [
                        "score_spark, warm (median)",
                        f"{warm:.1f}",
                        f"{warm / bucketed:.2f}x",
                        f"Python workers warm; native agg warm {native_warm:.1f} s: "
                        f"{warm / native_warm:.1f}x",
                    ],
                    [
                        "local engine (same export, no Spark; median)",
                        f"{compare['local_warm_s']:.1f}",
                        f"{compare['local_warm_s'] / bucketed:.2f}x",
                        "the scoring work itself: staging, validation, features, models",
                    ],
                ],
                numeric=(1,),
            ),
        ]
    )


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time (a failed run counts as slowest)."""
    ordered = sorted(runs, key=lambda r: r.get("seconds", float("inf")))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["all_seconds"] = [r.get("seconds") for r in runs]
    return chosen


def _peak(result: dict[str, Any]) -> float | None:
    """The larger of the child's own high-water mark and the polled sum over its tree."""
    seen = [result.get("peak_rss_mb"), result.get("polled_peak_rss_mb")]
    values = [v for v in seen if v]
    return max(values) if values else None


def _reasons_available() -> bool:
    try:
        from stageml.explain.reasons import reason_codes  # noqa: F401
    except ImportError:
        return False
    return True


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments (the ``--child`` ones are internal)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 buyers only (~3 min)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(FULL_SIZES))
    parser.add_argument("--reasons", type=int, default=3)
    parser.add_argument(
        "--per-buyer",
        type=int,
        default=300,
        help="buyers scored one Python call each (extrapolated)",
    )
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=["lightgbm", "compiled", "reference"],
        default=["lightgbm", "compiled"],
        help="prediction paths: LightGBM's (the code before compilation), compiled trees, and "
        "compiled trees scored by the --ref commit's code",
    )
    parser.add_argument("--ref", help="reference commit for the 'reference' path")
    parser.add_argument(
        "--reasons-paths",
        nargs="+",
        choices=["lightgbm", "compiled", "reference"],
        help="prediction paths of the reason-code runs (default: --paths); each 1M run is long",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per path (median)")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument(
        "--compare-sizes",
        type=int,
        nargs="+",
        default=[COMPARE_BUYERS],
        help="exports (buyers) of the one-session Spark comparison; per-buyer only at 20,000",
    )
    parser.add_argument(
        "--warm-repeat", type=int, default=3, help="steady-state rounds of the comparison (median)"
    )
    parser.add_argument(
        "--compare-only", action="store_true", help="only the one-session Spark comparison"
    )
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--child", choices=["local", "spark", "compare"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if "reference" in [*args.paths, *(args.reasons_paths or [])] and not args.ref:
        parser.error("the 'reference' path needs --ref COMMIT")
    if args.quick:
        args.sizes = list(QUICK_SIZES)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or one child measurement) and write ``results/score*.json``."""
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print(
            "warning: OMP_WAIT_POLICY is not PASSIVE; LightGBM may be ~20x slower on a "
            "shared machine",
            file=sys.stderr,
        )
    report = run(args)
    name = "score.compare" if args.compare_only else "score.quick" if args.quick else "score"
    out = RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {out.relative_to(HERE.parent)}")
    failed = [r for r in [*report["local"], *report["spark"]] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
