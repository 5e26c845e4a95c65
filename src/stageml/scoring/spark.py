"""Batch scoring on Spark: the local engine's unit of work, run per bucket of buyers.

Buyers are hashed into buckets (``pmod(xxhash64(trim(buyer_id)), n)``: trimmed like the
validator, so one buyer's rows never split across buckets). Interactions and buyers are
cogrouped by bucket and each bucket goes through :func:`stageml.scoring.local.score_tables` in
one Python call, so each call handles thousands of buyers, not one.

A bucket returns a single row holding its pickled :class:`~stageml.scoring.local.PartitionResult`
(scores, rejects, input counts, drift sample). One payload keeps the four parts of a
bucket together and lets the schema follow ``score_tables`` (reason columns included)
instead of restating it here. The driver pulls buckets one at a time (``toLocalIterator``,
prefetching the next) and appends them with the local engine's writer, so the scores file
appears only when every bucket succeeded, exactly as with ``--engine local``.

Row numbers in rejects: Parquet files carry them (``_metadata.row_index``). A CSV file has
none, and ``monotonically_increasing_id`` is not one: the CSV is read once more to count
rows per input split, and the original 1-based row is ``rows in earlier splits + position
in split + 1``. This is exact for the contract's one-file tables, whose splits Spark reads
in file order.

Parallelism: the buckets are the unit of work, so adaptive execution must not coalesce
their shuffle partitions (it merges small ones into one task, which then scores every
bucket serially), and each bucket uses the task's CPUs (``spark.task.cpus``), not every
core of the executor.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from stageml.data.io import atomic_path, csv_header
from stageml.data.validate import SOURCE_ROW
from stageml.models.bundle import StageModel
from stageml.scoring.local import (
    _DRIFT_SAMPLE_ROWS,
    PartitionResult,
    ScoringRun,
    _append,
    _close,
    finish_run,
    normalise_as_of,
    score_tables,
    scoring_sources,
)
from stageml.scoring.staging import arrow_to_frame
from stageml.scoring.trends import add_trends, previous_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

BUCKET = "_bucket"
TABLE = "_table"  # which table a row of the cogroup's shared right side came from
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
    return (
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
        .getOrCreate()
    )


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
        tables = {name: _read_numbered(spark, path) for name, path in sources.items()}
        total = tables["interactions"][1]
        n = buckets or bucket_count(
            total, model.params.features.partition_rows, spark.sparkContext.defaultParallelism
        )
        with job_settings(spark, n):
            payloads = _bucket_results(
                spark,
                {name: frame for name, (frame, _) in tables.items()},
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


def _read_numbered(spark: SparkSession, path: Path) -> tuple[DataFrame, int]:
    """Read a table with its 1-based file row number in ``_source_row``; also its row count."""
    from pyspark.sql import functions as F

    if path.suffix != ".csv":
        import pyarrow.dataset as ds

        frame = spark.read.parquet(str(path))
        numbered = frame.select("*", (F.col("_metadata.row_index") + 1).alias(SOURCE_ROW))
        # Counted from the footers on the driver: a Spark count is a job (~0.5 s warm).
        return numbered, ds.dataset(str(path), format="parquet").count_rows()
    # The separator of read_table (sniffed from the header); Spark's default PERMISSIVE
    # mode already applies its ragged-row rule (extra fields dropped, missing ones null).
    frame = spark.read.csv(str(path), header=True, inferSchema=False, sep=csv_header(path)[0])
    # monotonically_increasing_id = split index << 33 | position in split; the row number
    # adds the rows of all earlier splits, counted by a first (JVM-only) pass.
    tagged = frame.withColumn("_split", F.spark_partition_id()).withColumn(
        "_id", F.monotonically_increasing_id()
    )
    counts: dict[int, int] = dict(tagged.groupBy("_split").count().collect())
    offsets, running = {}, 0
    for split in sorted(counts):
        offsets[split] = running
        running += counts[split]
    offset = F.lit(0)
    for split, start in offsets.items():
        offset = F.when(F.col("_split") == split, F.lit(start)).otherwise(offset)
    position = F.col("_id") - F.shiftleft(F.col("_split").cast("long"), 33)
    numbered = tagged.withColumn(SOURCE_ROW, offset + position + 1).drop("_split", "_id")
    return numbered, running


def _bucket_results(
    spark: SparkSession,
    tables: dict[str, DataFrame],
    n: int,
    model: StageModel,
    as_of: pd.Timestamp,
    *,
    sources: dict[str, str],
    reasons: int,
    sample_rows: int,
) -> Iterator[PartitionResult]:
    """Run ``score_tables`` once per bucket on the workers; yield results one bucket at a time."""
    from pyspark import StorageLevel, TaskContext
    from pyspark.sql import functions as F

    blob = pickle.dumps(model)
    key = hashlib.sha256(blob).hexdigest()
    shared = spark.sparkContext.broadcast(blob)
    # Long keys, as the shuffle hashes a long differently from an int.
    keys = F.array(*[F.lit(k).cast("long") for k in _bucket_keys(n)])
    bucket = F.element_at(
        keys,
        (F.pmod(F.xxhash64(F.trim(F.col("buyer_id").cast("string"))), F.lit(n)) + 1).cast("int"),
    )
    bucketed = {name: frame.withColumn(BUCKET, bucket) for name, frame in tables.items()}
    columns = {name: frame.columns for name, frame in tables.items()}
    settings = {"as_of": as_of, "sources": sources, "reasons": reasons, "sample_rows": sample_rows}
    schema = f"{BUCKET} long, payload binary"

    def run(left: pa.Table, right: pa.Table | None = None) -> pa.Table:
        if not len(left):
            return pa.table(
                {BUCKET: pa.array([], pa.int64()), "payload": pa.array([], pa.binary())}
            )
        number = left.column(BUCKET)[0].as_py()
        frames = bucket_frames(left, right, columns)
        context = TaskContext.get()  # always set inside a task
        threads = context.cpus() if context is not None else 1
        result = _score_bucket(
            frames, _model(key, shared.value), bucket=number, threads=threads, **settings
        )
        return pa.table({BUCKET: [number], "payload": [pickle.dumps(result)]})

    grouped = bucketed["interactions"].groupBy(BUCKET)
    # A cogroup takes two sides: the buyers and the stage history share the right one,
    # told apart by a table tag (their other columns differ; each keeps its own).
    named = [name for name in ("buyers", "stage_history") if name in bucketed]
    if named:
        right = bucketed[named[0]].withColumn(TABLE, F.lit(named[0]))
        for name in named[1:]:
            tagged = bucketed[name].withColumn(TABLE, F.lit(name))
            right = right.unionByName(tagged, allowMissingColumns=True)
        done = grouped.cogroup(right.groupBy(BUCKET)).applyInArrow(run, schema)
    else:
        done = grouped.applyInArrow(run, schema)
    # toLocalIterator computes one partition per job, one after the other: the buckets
    # would be scored serially. Materialise them in parallel first (on disk, so the
    # driver's memory holds at most two buckets), then stream them in order, the next
    # one fetched while the driver writes the current one.
    done = done.persist(StorageLevel.DISK_ONLY)
    try:
        done.count()
        for row in done.toLocalIterator(prefetchPartitions=True):
            yield pickle.loads(row["payload"])  # noqa: S301 - our own workers' output
    finally:
        done.unpersist()
        shared.unpersist()


def bucket_frames(
    left: pa.Table, right: pa.Table | None, columns: Mapping[str, list[str]]
) -> dict[str, pd.DataFrame]:
    """Turn a bucket's cogrouped rows into its tables, as the local engine reads them.

    ``left`` holds the interactions, ``right`` the other tables' rows, told apart by their
    ``_table`` tag. Each table gets its own ``columns``, its rows in file order
    (``_source_row``: validation keeps the first of repeated rows, and the shuffle does
    not keep file order) and the local engine's dtypes (contract strings, naive UTC
    timestamps).
    """
    frames = {"interactions": _file_order(left, columns["interactions"])}
    if right is None:  # an export of interactions alone
        return frames
    for name in [name for name in columns if name != "interactions"]:
        mine = np.flatnonzero(right.column(TABLE).to_numpy(zero_copy_only=False) == name)
        frames[name] = _file_order(right.take(pa.array(mine)), columns[name])
    return frames


def _file_order(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    table = table.select(columns)
    order = np.argsort(table.column(SOURCE_ROW).to_numpy(), kind="stable")
    return spark_frame(table.take(pa.array(order)))


def spark_frame(table: pa.Table) -> pd.DataFrame:
    """Convert Spark's Arrow rows to the local engine's frame: contract strings, naive UTC times.

    Spark tags its timestamps with the session's zone (UTC); the local engine's carry none.
    """
    naive = pa.schema(
        pa.field(f.name, pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) else f
        for f in table.schema
    )
    return arrow_to_frame(table.cast(naive))


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
    # A bucket with interactions but no buyer rows: score without buyer attributes, as the
    # validator would for an export without a buyers table (an empty table is an error).
    raw = {name: frame for name, frame in frames.items() if len(frame) or name == "interactions"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return score_tables(
            raw,
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
