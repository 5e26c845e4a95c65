"""Batch scoring on Spark: the local engine's unit of work, run per bucket of buyers.

Two stages, both Python tasks that Spark schedules:

1. **Staging**, one task per split of each table (:mod:`stageml.scoring.blobs`): DuckDB
   reads the split as the local engine reads its export (same reader, row numbers and
   hash of the buyer) and the task emits each bucket's rows as one compressed Arrow blob.
2. **Scoring**: the blobs are grouped by bucket (a shuffle of a few hundred blobs, not of
   millions of rows) and each bucket goes through
   :func:`stageml.scoring.local.score_tables` in one Python call.

Spark never turns the interactions into its own rows. It did before, and moving each row
through Spark's row format, shuffle, sort and Arrow hand-off cost about as much CPU as
scoring it (README, "Spark overhead").

A bucket returns a single row holding its pickled :class:`~stageml.scoring.local.PartitionResult`
(scores, rejects, input counts, drift sample). One payload keeps the four parts of a
bucket together and lets the schema follow ``score_tables`` (reason columns included)
instead of restating it here. The driver runs one job per bucket, a few ahead, and appends
the results in bucket order with the local engine's writer while later buckets are scored;
the scores file appears only when every bucket succeeded, exactly as with ``--engine local``.

Every task reads the export's files by path, so executors must see the export folder at
the driver's path (a shared mount on a cluster).

Parallelism: the buckets are the unit of work, so adaptive execution must not coalesce
their shuffle partitions (it merges small ones into one task, which then scores every
bucket serially), and each bucket uses the task's CPUs (``spark.task.cpus``), not every
core of the executor.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import pickle
import sys
import time
import uuid
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from stageml.data.io import atomic_path
from stageml.models.bundle import StageModel
from stageml.scoring.blobs import (
    BLOB,
    BUCKET,
    ORDER,
    TABLE,
    Split,
    bucket_frames,
    interaction_rows,
    stage_split,
    table_splits,
)
from stageml.scoring.local import (
    _DRIFT_SAMPLE_ROWS,
    ONE_THREAD,
    PartitionResult,
    ScoringRun,
    _append,
    _close,
    finish_run,
    normalise_as_of,
    score_tables,
    scoring_sources,
)
from stageml.scoring.trends import add_trends, previous_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Runtime settings for the scoring job; an active session gets its own values back after.
_JOB_SETTINGS = {"spark.sql.adaptive.coalescePartitions.enabled": "false"}
_SHUFFLE = "spark.sql.shuffle.partitions"
# One unpickled model per Python worker process, keyed by the hash of its bytes.
_MODELS: dict[str, StageModel] = {}
_U32 = 0xFFFFFFFF


def spark_session(master: str = "local[*]", *, shuffle_partitions: int = 8) -> SparkSession:
    """Start (or reuse) a SparkSession configured for scoring (UTC, Arrow, no UI, this interpreter).

    An already active session is returned as is (its settings are the caller's).
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Workers must run this interpreter (with stageml installed), not whatever python3 is
    # on PATH; on a cluster the caller's own setting wins.
    for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        if master.startswith("local"):
            os.environ[name] = sys.executable
        else:
            os.environ.setdefault(name, sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName("stageml-score")
        # Without UTC, timestamps shift by the machine's time zone on the way to pandas.
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        # pandas 3 warns once per group otherwise, flooding the worker logs.
        .config("spark.executorEnv.PYTHONWARNINGS", "ignore::FutureWarning")
        .config("spark.executorEnv.OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    )
    # A task scores on its own CPUs (spark.task.cpus, 1 here): native thread pools must
    # not start one thread per core in every worker, as the local engine's workers don't.
    for name, value in ONE_THREAD.items():
        builder = builder.config(f"spark.executorEnv.{name}", value)
    return builder.getOrCreate()


def score_spark(
    data: str | Path,
    model: StageModel,
    as_of: str | pd.Timestamp,
    *,
    out: str | Path,
    reasons: int = 0,
    previous: str | Path | None = None,
    model_uri: str = "",
    model_version: str = "",
    master: str = "local[*]",
    buckets: int | None = None,
) -> dict[str, Any]:
    """Score an export folder on Spark; write scores, rejects and a summary like the local engine.

    Parameters
    ----------
    data
        Export folder holding ``interactions`` (and optionally ``buyers``) as CSV or Parquet.
        CSV is read with a header and every column as a string.
    model
        The trained model; broadcast to the workers once.
    as_of
        Score as of this instant (UTC if naive); features see interactions strictly before it.
    out
        Scores file (``.parquet`` or ``.csv``), written only when every bucket succeeded.
    reasons
        Reason codes per direction (0: none).
    previous
        Scores of an earlier run, for ``stage_change`` and ``inflection_trend``.
    model_uri, model_version
        Recorded in every score row and in the summary.
    master
        Spark master; ignored when a SparkSession is already active.
    buckets
        Number of buyer buckets; default: enough to keep ``features.partition_rows``
        interactions per bucket, rounded up to a multiple of the session's default
        parallelism (:func:`bucket_count`).

    Returns
    -------
    dict
        The run summary, also written beside the output as JSON.

    """
    clock = time.perf_counter()
    instant = normalise_as_of(as_of)
    sources = scoring_sources(Path(data))  # the input's errors first, before the model's
    if buckets is not None and buckets < 1:
        raise ValueError(f"buckets must be a positive integer or None, got {buckets}")
    out_path = Path(out)
    prev = _previous(previous)
    if model.params.features.stage_history:
        sources = scoring_sources(Path(data), stage_history=True)

    owned = _active() is None
    spark = spark_session(master)
    try:
        rows_per_part = model.params.features.partition_rows
        splits = [
            split
            for name, path in sources.items()
            for split in table_splits(name, path, rows_per_part)
        ]
        n = buckets or bucket_count(
            interaction_rows(splits),
            rows_per_part,
            spark.sparkContext.defaultParallelism,
        )
        with job_settings(spark, n):
            payloads = _bucket_results(
                spark,
                splits,
                n,
                model,
                instant,
                sources={k: str(v) for k, v in sources.items()},
                reasons=reasons,
                sample_rows=max(1, _DRIFT_SAMPLE_ROWS // n),
            )
            parts: list[PartitionResult] = []
            writer_state: dict[str, Any] = {}
            with atomic_path(out_path) as tmp:
                for result in payloads:
                    scores = result.scores
                    if prev is not None:
                        ids = pd.Index(scores["buyer_id"], dtype="string", name="buyer_id")
                        mine = prev.reindex(ids).dropna(subset=["stage"]).reset_index()
                        scores = add_trends(
                            scores, mine, model.stages, model.params.scoring.trend_threshold
                        )
                    scores["model_uri"] = model_uri
                    scores["model_version"] = str(model_version)
                    _append(tmp, out_path.suffix, scores, writer_state)
                    result.scores = scores.head(0)
                    parts.append(result)
                _close(writer_state, tmp, out_path.suffix)
    finally:
        if owned:
            spark.stop()
    run = ScoringRun("spark", instant, sources, out_path, model_uri, str(model_version), clock)
    return finish_run(run, parts, model, n)


def bucket_count(rows: int, partition_rows: int, cores: int) -> int:
    """Buckets of at most ``partition_rows`` interactions, in a whole number of waves of tasks.

    Rounded up to a multiple of ``cores``: 13 buckets on 2 cores run in 7 waves, the last
    with one core idle; 14 smaller ones take the same 7 waves, each shorter.
    """
    return cores * max(1, math.ceil(math.ceil(rows / partition_rows) / cores))


@contextmanager
def job_settings(spark: SparkSession, n: int) -> Iterator[None]:
    """Run the scoring job with ``n`` shuffle partitions and no coalescing of them.

    The session's own values come back afterwards (an active session is the caller's).
    """
    settings = {**_JOB_SETTINGS, _SHUFFLE: str(n)}
    before = {key: spark.conf.get(key, None) for key in settings}
    try:
        for key, value in settings.items():
            spark.conf.set(key, value)
        yield
    finally:
        for key, old in before.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def _active() -> SparkSession | None:
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def _bucket_results(
    spark: SparkSession,
    splits: list[Split],
    n: int,
    model: StageModel,
    as_of: pd.Timestamp,
    *,
    sources: dict[str, str],
    reasons: int,
    sample_rows: int,
) -> Iterator[PartitionResult]:
    """Stage the splits, then run ``score_tables`` once per bucket; yield results one at a time."""
    from pyspark import TaskContext

    blob = pickle.dumps(model)
    key = hashlib.sha256(blob).hexdigest()
    shared = spark.sparkContext.broadcast(blob)
    keys = _bucket_keys(n)
    settings = {"as_of": as_of, "sources": sources, "reasons": reasons, "sample_rows": sample_rows}

    def threads() -> int:
        context = TaskContext.get()  # always set inside a task
        return context.cpus() if context is not None else 1

    def stage(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column(0).to_pylist():
                yield from stage_split(index, splits[index], n, keys, threads())

    def run(staged: pa.Table) -> pa.Table:
        number = staged.column(BUCKET)[0].as_py()
        frames = bucket_frames(staged)
        if "interactions" not in frames:  # only buyers or stage history: no one to score
            return pa.table(
                {BUCKET: pa.array([], pa.int64()), "payload": pa.array([], pa.binary())}
            )
        result = _score_bucket(
            frames, _model(key, shared.value), bucket=number, threads=threads(), **settings
        )
        return pa.table({BUCKET: [number], "payload": [pickle.dumps(result)]})

    staged = spark.range(0, len(splits), 1, numPartitions=max(1, len(splits))).mapInArrow(
        stage, f"{BUCKET} long, {TABLE} string, {ORDER} long, {BLOB} binary"
    )
    done = staged.groupBy(BUCKET).applyInArrow(run, f"{BUCKET} long, payload binary")
    try:
        yield from _in_order(spark, done.rdd)
    finally:
        shared.unpersist()


def _in_order(spark: SparkSession, rdd: Any) -> Iterator[PartitionResult]:
    """Yield each bucket's result in bucket order while later buckets are still being scored.

    One Spark job per bucket, a window of them submitted ahead (they share the staging
    stage, run side by side and hold at most the window's results on the driver): the
    driver writes bucket k while k+1.. are scored, instead of after the last one. A failed
    bucket cancels the rest.
    """
    context = spark.sparkContext
    group = f"stageml-score-{uuid.uuid4().hex}"
    window = 2 * context.defaultParallelism

    def run(partition: int) -> list[bytes]:
        context.setJobGroup(group, f"stageml scoring, bucket {partition}", interruptOnCancel=True)
        return context.runJob(rdd, _payloads, [partition])

    buckets = iter(range(rdd.getNumPartitions()))
    with ThreadPoolExecutor(max_workers=window) as pool:
        pending = deque(pool.submit(run, k) for k in itertools.islice(buckets, window))
        try:
            while pending:
                payloads = pending.popleft().result()
                pending.extend(pool.submit(run, k) for k in itertools.islice(buckets, 1))
                for payload in payloads:
                    yield pickle.loads(payload)  # noqa: S301 - our own workers' output
        except BaseException:
            for future in pending:
                future.cancel()
            context.cancelJobGroup(group)
            raise


def _payloads(rows: Iterable[Any]) -> list[bytes]:
    return [row["payload"] for row in rows]


def _bucket_keys(n: int) -> list[int]:
    """One grouping key per shuffle partition: key ``k`` lands in partition ``k``.

    The shuffle behind ``groupBy(bucket)`` sends a key to partition
    ``pmod(hash(key), n)``; with keys 0..n-1 several buckets share a partition (and its
    task scores them one after the other) while other partitions stay empty. Picking, for
    each partition, the first integer Spark's own hash sends there spreads the buckets one
    per task. The hash is computed here (no Spark job: ~n ln n integers are tried).
    """
    keys: dict[int, int] = {}
    candidate = 0
    while len(keys) < n:
        keys.setdefault(_spark_hash_long(candidate) % n, candidate)  # Python's % is pmod
        candidate += 1
    return [keys[k] for k in range(n)]


def _spark_hash_long(value: int) -> int:
    """Spark's ``hash()`` of a long: Murmur3 x86 32-bit, seed 42, as a signed 32-bit int."""

    def mix(h1: int, k1: int) -> int:
        k1 = (k1 * 0xCC9E2D51) & _U32
        k1 = ((k1 << 15) | (k1 >> 17)) & _U32
        h1 ^= (k1 * 0x1B873593) & _U32
        h1 = ((h1 << 13) | (h1 >> 19)) & _U32
        return (h1 * 5 + 0xE6546B64) & _U32

    h1 = mix(mix(42, value & _U32), (value >> 32) & _U32) ^ 8  # 8: the input's byte length
    h1 = ((h1 ^ (h1 >> 16)) * 0x85EBCA6B) & _U32
    h1 = ((h1 ^ (h1 >> 13)) * 0xC2B2AE35) & _U32
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 >= 1 << 31 else h1


def _score_bucket(
    frames: dict[str, pd.DataFrame],
    model: StageModel,
    *,
    bucket: int,
    as_of: pd.Timestamp,
    sources: dict[str, str],
    reasons: int,
    sample_rows: int,
    threads: int | None = None,
) -> PartitionResult:
    # A table absent from a bucket (none of its buyers has a row in it) is scored as
    # absent: without buyer attributes, or as never staged (score_tables).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return score_tables(
            frames,
            model,
            as_of,
            sources=sources,
            reasons=reasons,
            sample_rows=sample_rows,
            seed=bucket,
            threads=threads,
        )


def _model(key: str, blob: bytes) -> StageModel:
    if key not in _MODELS:
        _MODELS[key] = pickle.loads(blob)  # noqa: S301 - the driver's own model
    return _MODELS[key]


def _previous(previous: str | Path | None) -> pd.DataFrame | None:
    """Previous scores indexed by buyer_id (driver side; one row per buyer, a few columns)."""
    path = previous_path(previous)
    if path is None:
        return None
    columns = ["buyer_id", "stage", "inflection_probability"]
    if path.suffix == ".csv":
        frame = pd.read_csv(path, usecols=columns, dtype={"buyer_id": "string", "stage": "string"})
    else:
        frame = pd.read_parquet(path, columns=columns)
    frame["buyer_id"] = frame["buyer_id"].astype("string").str.strip()
    return frame.set_index("buyer_id")
