"""Point-in-time features per (buyer, as-of instant), computed in DuckDB.

The one rule, applied everywhere: **a feature row for as-of instant t sees only
interactions with ``occurred_at < t`` (strictly before t).** An interaction at exactly t
belongs to the future of t. A trailing window ``w`` covers ``[t - w, t)``. A buyer appears
at t only if it has at least one interaction before t.

How it stays exact and fast: every feature is a function of a buyer's *running state*
(cumulative counts, last times, running maxima) at a handful of lookup instants (t, t - w
for each window, t - 2·trend window). Events are rolled up into buckets that end at the
next lookup instant after them, so no bucket straddles a lookup (which keeps results
exact) and a buyer has at most one bucket per lookup instant; the running state is taken
over buckets and an ASOF join reads it at each instant. Events after the last lookup
instant are never read. That is one pass over the interactions for the rich features
(per-activity recency, gaps, sequences) with no per-buyer Python loop.
Buyers are processed in partitions (ranges of buyer ids) so the engine's working memory
follows the partition, not the export.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stageml.config import FeatureConfig
from stageml.data.io import sql_escape
from stageml.durations import format_duration
from stageml.features.vocabulary import OTHER, Vocabulary, slug, warn_unseen

_US_PER_DAY = 86_400_000_000
_DIRECTIONS = ("inbound", "outbound")
KEYS = ("buyer_id", "as_of")
# Feature rows per Arrow batch streamed out of the engine (~90 MB at 175 float64 columns).
_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class _Counter:
    """A cumulative count: its column name and the event predicate it counts."""

    name: str
    predicate: str


def _windows(config: FeatureConfig) -> dict[str, pd.Timedelta]:
    return {format_duration(w): w for w in config.windows}


def _counters(vocabulary: Vocabulary) -> list[_Counter]:
    counters = [_Counter("n", "TRUE")]
    counters += [
        _Counter(f"act_{s}", f"act = {i}") for i, s in enumerate(vocabulary.activity_slugs())
    ]
    counters += [
        _Counter(f"chan_{s}", f"chan = {i}") for i, s in enumerate(vocabulary.channel_slugs())
    ]
    counters += [_Counter(f"dir_{d}", f"dir = {i}") for i, d in enumerate(_DIRECTIONS)]
    counters += [_Counter("active_days", "new_day"), _Counter("distinct_activities", "new_act")]
    counters += [_Counter("distinct_channels", "new_chan")]
    return counters


def _windowed(counter: str) -> bool:
    # Distinct counts only make sense over all history; the rest is also given per window.
    return counter not in ("distinct_activities", "distinct_channels")


def feature_columns(vocabulary: Vocabulary, config: FeatureConfig) -> list[str]:
    """Every feature column in output order (without the ``buyer_id``/``as_of`` keys)."""
    columns: list[str] = []
    windows = list(_windows(config)) + ["all"]
    for counter in _counters(vocabulary):
        spans = windows if _windowed(counter.name) else ["all"]
        columns += [f"{counter.name}_{span}" for span in spans]
    columns += [f"inbound_share_{w}" for w in _windows(config)]
    columns += [f"intensity_{w}" for w in _windows(config)]
    trend = format_duration(config.trend_window)
    columns += [f"n_prev_{trend}", f"trend_ratio_{trend}"]
    columns += ["days_since_last", "days_since_first"]
    columns += [f"days_since_act_{s}" for s in vocabulary.activity_slugs()]
    columns += ["gap_mean_days", "gap_max_days", "gap_last_days"]
    columns += [f"last_activity_{k}" for k in range(1, config.last_activities + 1)]
    columns += [f"buyer_{slug(a)}" for a in vocabulary.attributes]
    return columns


def categorical_columns(vocabulary: Vocabulary, config: FeatureConfig) -> list[str]:
    """Feature columns that LightGBM must treat as categorical."""
    cats = [f"last_activity_{k}" for k in range(1, config.last_activities + 1)]
    cats += [
        f"buyer_{slug(a)}" for a, levels in vocabulary.attributes.items() if levels is not None
    ]
    return cats


def _sql_events(vocabulary: Vocabulary, last_k: int, partition: str) -> str:
    n_act = len(vocabulary.activities)
    n_chan = len(vocabulary.channels)
    lags = "".join(f", lag(act, {k}) OVER w AS prev{k}" for k in range(1, last_k))
    prevs = "".join(f", s.prev{k}" for k in range(1, last_k))
    since_first = "(epoch_us({t}) - epoch_us(first_value(occurred_at) OVER w)) // " + str(
        _US_PER_DAY
    )
    # One sort (the buyer's event order, window w) does all the ordered work. Active "days"
    # are 24-hour periods from the buyer's first interaction, not calendar days (so every
    # feature is invariant to a shift of all timestamps); they only grow along w, so a new
    # day is a change from the previous event's. First activities and channels are the
    # smallest seq per group, found by hash aggregation: windows partitioned by those
    # keys cost a sort each, twice the time of everything else here.
    return f"""
    CREATE OR REPLACE TEMP TABLE ev AS
    WITH s AS MATERIALIZED (
        SELECT *, row_number() OVER w AS seq,
               epoch_us(occurred_at) - epoch_us(lag(occurred_at) OVER w) AS gap_us,
               coalesce({since_first.format(t="lag(occurred_at) OVER w")}
                        <> {since_first.format(t="occurred_at")}, TRUE) AS new_day
               {lags}
        FROM (
            SELECT i.buyer_id, i.occurred_at, i.activity, i.channel,
                   coalesce(va.code, {n_act}) AS act,
                   coalesce(vc.code, {n_chan}) AS chan,
                   CASE lower(i.direction) WHEN 'inbound' THEN 0 WHEN 'outbound' THEN 1 END AS dir
            FROM src i
            LEFT JOIN vocab_act va ON i.activity = va.name
            LEFT JOIN vocab_chan vc ON i.channel = vc.name
            WHERE {partition} AND i.occurred_at < (SELECT max(t) FROM lookup_points)
        )
        WINDOW w AS (PARTITION BY buyer_id ORDER BY occurred_at, act, chan, dir, activity)
    ),
    first_act AS (SELECT buyer_id, activity, min(seq) AS seq FROM s GROUP BY ALL),
    first_chan AS (
        SELECT buyer_id, channel, min(seq) AS seq FROM s WHERE channel IS NOT NULL GROUP BY ALL
    )
    SELECT s.buyer_id, s.occurred_at, s.act, s.chan, s.dir, s.seq, s.gap_us, s.new_day,
           fa.seq IS NOT NULL AS new_act, fc.seq IS NOT NULL AS new_chan
           {prevs}
    FROM s
    LEFT JOIN first_act fa ON fa.buyer_id = s.buyer_id AND fa.seq = s.seq
    LEFT JOIN first_chan fc ON fc.buyer_id = s.buyer_id AND fc.seq = s.seq
    """


def _sql_state(vocabulary: Vocabulary, last_k: int) -> str:
    counters = _counters(vocabulary)
    n_slugs = vocabulary.activity_slugs()
    bucket_aggs = [f"count(*) FILTER (WHERE {c.predicate}) AS c_{c.name}" for c in counters]
    bucket_aggs += [
        f"max(occurred_at) FILTER (WHERE act = {i}) AS la_{s}" for i, s in enumerate(n_slugs)
    ]
    bucket_aggs += [
        "max(occurred_at) AS last_at",
        "min(occurred_at) AS first_at",
        "max(gap_us) AS gap_max_us",
        "arg_max(gap_us, seq) AS gap_last_us",
        "arg_max(act, seq) AS last1",
    ]
    bucket_aggs += [f"arg_max(prev{k}, seq) AS last{k + 1}" for k in range(1, last_k)]
    running = [f"sum(c_{c.name}) OVER w AS c_{c.name}" for c in counters]
    running += [f"max(la_{s}) OVER w AS la_{s}" for s in n_slugs]
    running += ["min(first_at) OVER w AS first_at", "max(gap_max_us) OVER w AS gap_max_us"]
    # The latest bucket holds the latest event, so its own last-event fields are the state.
    running += ["last_at", "gap_last_us"] + [f"last{k}" for k in range(1, last_k + 1)]
    return f"""
    CREATE OR REPLACE TEMP TABLE st AS
    WITH bucketed AS (
        -- The bucket of an event ends at the first lookup instant strictly after it.
        SELECT ev.*, l.t AS bucket_end
        FROM ev ASOF JOIN lookup_points l ON ev.occurred_at < l.t
    ),
    bk AS (
        SELECT buyer_id, bucket_end, {", ".join(bucket_aggs)}
        FROM bucketed GROUP BY buyer_id, bucket_end
    )
    SELECT buyer_id, bucket_end, {", ".join(running)}
    FROM bk
    WINDOW w AS (PARTITION BY buyer_id ORDER BY bucket_end
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    """


def _offsets(config: FeatureConfig) -> dict[str, pd.Timedelta]:
    """Instants whose state is read: t - w per window, and t - 2·trend for the trend base."""
    offsets = {f"w{name}": w for name, w in _windows(config).items()}
    offsets["trend"] = config.trend_window
    offsets["trend2"] = 2 * config.trend_window
    return offsets


def _lookup_frame(points: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    stamps = [points["as_of"]] + [points["as_of"] - off for off in _offsets(config).values()]
    unique = pd.concat(stamps, ignore_index=True).drop_duplicates().sort_values()
    return pd.DataFrame({"t": unique.astype("datetime64[us]").to_numpy()})


def _sql_features(vocabulary: Vocabulary, config: FeatureConfig) -> str:
    windows = _windows(config)
    trend = format_duration(config.trend_window)
    offsets = _offsets(config)
    points_cols = ", ".join(
        f"a.as_of - to_microseconds({int(off.value // 1000)}) AS t_{key}"
        for key, off in offsets.items()
    )
    # ASOF joins only find *which* bucket holds the state at each instant (narrow rows);
    # the wide state is then fetched by plain hash joins. Chaining wide ASOF joins made
    # DuckDB re-sort ever wider rows and cost 10x the time and memory.
    locate = "\n".join(
        f"ASOF LEFT JOIN (SELECT buyer_id, bucket_end FROM st) a_{key} "
        f"ON p.buyer_id = a_{key}.buyer_id AND a_{key}.bucket_end <= p.t_{key}"
        for key in offsets
    )
    located = ", ".join(f"a_{key}.bucket_end AS b_{key}" for key in offsets)
    windowed = [f"c_{c.name}" for c in _counters(vocabulary) if _windowed(c.name)]
    needed = {key: (["c_n"] if key.startswith("trend") else windowed) for key in offsets}
    joins = "\n".join(
        f"LEFT JOIN (SELECT buyer_id, bucket_end, {', '.join(cols)} FROM st) s_{key} "
        f"ON s_{key}.buyer_id = p.buyer_id AND s_{key}.bucket_end = p.b_{key}"
        for key, cols in needed.items()
    )

    def between(counter: str, key: str) -> str:
        return f"(s0.c_{counter} - coalesce(s_{key}.c_{counter}, 0))"

    def days(expr: str) -> str:
        return f"(({expr}) / {float(_US_PER_DAY)})"

    out: dict[str, str] = {}  # feature name -> SQL expression
    for counter in _counters(vocabulary):
        if _windowed(counter.name):
            for n in windows:
                out[f"{counter.name}_{n}"] = between(counter.name, f"w{n}")
        out[f"{counter.name}_all"] = f"s0.c_{counter.name}"
    for n in windows:
        out[f"inbound_share_{n}"] = (
            f"{between('dir_inbound', f'w{n}')} / nullif({between('n', f'w{n}')}, 0)"
        )
    tenure = days("epoch_us(p.as_of) - epoch_us(s0.first_at)")
    for n, w in windows.items():
        span = w / pd.Timedelta(days=1)
        out[f"intensity_{n}"] = (
            f"({between('n', f'w{n}')} / {span}) / (s0.c_n / greatest({tenure}, {span}))"
        )
    prev = "(coalesce(s_trend.c_n, 0) - coalesce(s_trend2.c_n, 0))"
    out[f"n_prev_{trend}"] = prev
    out[f"trend_ratio_{trend}"] = f"({between('n', 'trend')} + 1.0) / ({prev} + 1.0)"
    out["days_since_last"] = days("epoch_us(p.as_of) - epoch_us(s0.last_at)")
    out["days_since_first"] = tenure
    for s in vocabulary.activity_slugs():
        out[f"days_since_act_{s}"] = days(f"epoch_us(p.as_of) - epoch_us(s0.la_{s})")
    out["gap_mean_days"] = (
        f"{days('epoch_us(s0.last_at) - epoch_us(s0.first_at)')} / nullif(s0.c_n - 1, 0)"
    )
    out["gap_max_days"] = days("s0.gap_max_us")
    out["gap_last_days"] = days("s0.gap_last_us")
    # float32 halves the largest table the product builds: counts stay exact below 2^24 and
    # day-scale durations keep ~1e-7 relative precision, far finer than any tree split needs.
    selected = [f"CAST({expr} AS FLOAT) AS {name}" for name, expr in out.items()]
    selected += [f"s0.last{k} AS last_activity_{k}" for k in range(1, config.last_activities + 1)]
    return f"""
    WITH first_seen AS (SELECT buyer_id, min(first_at) AS first_at FROM st GROUP BY buyer_id),
    points AS (
        SELECT f.buyer_id, a.as_of, {points_cols}
        FROM first_seen f JOIN as_of_points a ON f.first_at < a.as_of
    ),
    located AS (
        SELECT p.buyer_id, p.as_of, a0.bucket_end AS b0, {located}
        FROM points p
        ASOF JOIN (SELECT buyer_id, bucket_end FROM st) a0
            ON p.buyer_id = a0.buyer_id AND a0.bucket_end <= p.as_of
        {locate}
    )
    SELECT p.buyer_id, p.as_of, {", ".join(selected)}
    FROM located p
    JOIN st s0 ON s0.buyer_id = p.buyer_id AND s0.bucket_end = p.b0
    {joins}
    ORDER BY p.buyer_id, p.as_of
    """


def _connect(threads: int | None, memory_mb: int, spill: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    con.execute(f"SET threads = {threads or available or 1}")
    con.execute("SET preserve_insertion_order = false")
    # Past this the engine spills to a temp folder instead of growing (bounded memory).
    con.execute(f"SET memory_limit = '{memory_mb}MB'")
    con.execute(f"SET temp_directory = '{spill}'")
    con.execute("SET TimeZone = 'UTC'")  # the contract's instants are UTC
    # With one as-of instant DuckDB underestimates the ASOF join's left side and picks its
    # nested-loop plan: 75 s instead of 3 s on 10M interactions (same output).
    con.execute("SET asof_loop_join_threshold = 0")
    return con


def _as_of_frame(as_of: Sequence[pd.Timestamp | str]) -> pd.DataFrame:
    stamps = sorted({_utc_naive(t) for t in as_of})
    return pd.DataFrame({"as_of": pd.to_datetime(stamps).astype("datetime64[us]")})


def _utc_naive(value: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def build_features(
    interactions: pd.DataFrame,
    as_of: Sequence[pd.Timestamp | str],
    *,
    vocabulary: Vocabulary,
    config: FeatureConfig,
    buyers: pd.DataFrame | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Features for every buyer with history before each as-of instant.

    Parameters
    ----------
    interactions
        Validated interactions (``buyer_id``, ``occurred_at`` as UTC-naive timestamps,
        ``activity``, optional ``channel`` and ``direction``).
    as_of
        The as-of instants; each row sees only interactions strictly before its instant.
    vocabulary
        The fitted vocabulary; activities outside it are counted as ``other`` (a warning is
        raised for names never seen in training).
    config
        Windows, trend window and sequence length.
    buyers
        Optional buyer attributes, joined as ``buyer_<attribute>`` columns.
    threads
        DuckDB threads; default all cores available to this process.
    progress
        Called with (partitions done, partitions total) after each partition of buyers.

    Returns
    -------
    pandas.DataFrame
        One row per (buyer_id, as_of), sorted by both, with :func:`feature_columns`.

    """
    points = _as_of_frame(as_of)
    if points.empty or interactions.empty:
        return _assemble(_Output.allocate(0, vocabulary, config), vocabulary, config, buyers)
    warn_unseen(interactions, vocabulary)
    with tempfile.TemporaryDirectory(prefix="stageml-duckdb-") as spill:
        output = _compute(interactions, points, vocabulary, config, threads, spill, progress)
    return _assemble(output, vocabulary, config, buyers)


def _compute(
    interactions: pd.DataFrame,
    points: pd.DataFrame,
    vocabulary: Vocabulary,
    config: FeatureConfig,
    threads: int | None,
    spill: str,
    progress: Callable[[int, int], None] | None,
) -> _Output:
    con = _connect(threads, config.engine_memory_mb, spill)
    try:
        con.register("raw", interactions)
        con.execute(_sql_source(interactions))
        con.register("as_of_points", points)
        con.register("lookup_points", _lookup_frame(points, config))
        con.register("vocab_act", _codes(vocabulary.activities))
        con.register("vocab_chan", _codes(vocabulary.channels))
        output = _Output.allocate(_count_rows(con), vocabulary, config)
        parts = _partition_count(len(interactions), len(output.stamps), output.width, config)
        bounds = _buyer_ranges(con, parts)
        for part, where in enumerate(bounds):
            con.execute(_sql_events(vocabulary, config.last_activities, where))
            con.execute(_sql_state(vocabulary, config.last_activities))
            # Streamed: a partition's whole result held at once is rows x columns x 8 bytes,
            # which can pass the engine's memory limit (20k buyers x 66 instants: ~0.95 GB).
            for batch in con.sql(_sql_features(vocabulary, config)).to_arrow_reader(_BATCH_ROWS):
                output.append(batch)
            if progress is not None:
                progress(part + 1, len(bounds))
    finally:
        con.close()
    return output


def _partition_count(interactions: int, rows: int, columns: int, config: FeatureConfig) -> int:
    """Partitions of buyers, bounded by interactions and by the feature rows' bytes.

    A partition's feature rows go through the engine's joins and final sort at 8 bytes a
    column; a quarter of the memory limit leaves the rest to the state table and the joins'
    hash tables. Counting interactions alone ran 20,000 buyers x 66 training instants
    (665k rows x 177 columns) as one partition, out of the 1 GB limit.
    """
    budget = config.engine_memory_mb * 2**20 // 4
    by_rows = math.ceil(rows * columns * 8 / budget)
    return max(1, math.ceil(interactions / config.partition_rows), by_rows)


def _count_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Feature rows to come: (buyer, as-of) pairs with history before the as-of instant."""
    return int(
        con.execute(
            "SELECT count(*) FROM (SELECT buyer_id, min(occurred_at) AS first_at FROM src "
            "GROUP BY buyer_id) f JOIN as_of_points a ON f.first_at < a.as_of"
        ).fetchone()[0]  # type: ignore[index]
    )


@dataclass
class _Output:
    """The feature table's columns, allocated once and filled partition by partition.

    Filling preallocated float32 columns keeps the peak at one copy of the output (plus the
    engine's working memory); collecting parts and concatenating them would double it.
    """

    values: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]
    stamps: np.ndarray
    ids: list[np.ndarray]
    filled: int = 0

    @property
    def width(self) -> int:
        """Columns the engine returns per row (keys, numeric features, activity codes)."""
        return len(KEYS) + len(self.values) + len(self.codes)

    @classmethod
    def allocate(cls, rows: int, vocabulary: Vocabulary, config: FeatureConfig) -> _Output:
        numeric = _numeric_columns(vocabulary, config)
        sequence = [f"last_activity_{k}" for k in range(1, config.last_activities + 1)]
        return cls(
            values={c: np.empty(rows, dtype=np.float32) for c in numeric},
            codes={c: np.empty(rows, dtype=np.int16) for c in sequence},
            stamps=np.empty(rows, dtype="datetime64[us]"),
            ids=[],
        )

    def append(self, batch: pa.RecordBatch) -> None:
        end = self.filled + batch.num_rows
        for name, column in self.values.items():
            # Nulls arrive as NaN (a copy, hence zero_copy_only=False).
            column[self.filled : end] = batch[name].to_numpy(zero_copy_only=False)
        for name, column in self.codes.items():
            column[self.filled : end] = pc.fill_null(batch[name], -1).to_numpy()
        self.stamps[self.filled : end] = batch["as_of"].to_numpy()
        # Copied out: a column kept as Arrow would pin the whole result batch in memory.
        self.ids.append(batch["buyer_id"].to_numpy(zero_copy_only=False))
        self.filled = end


def _assemble(
    output: _Output, vocabulary: Vocabulary, config: FeatureConfig, buyers: pd.DataFrame | None
) -> pd.DataFrame:
    """Wrap the output columns in one frame (no copy), with categories and attributes."""
    rows = len(output.stamps)
    if output.filled != rows:
        raise RuntimeError(f"feature engine produced {output.filled:,} rows, expected {rows:,}")
    ids = np.concatenate(output.ids) if output.ids else np.empty(0, dtype=object)
    levels = list(vocabulary.activities) + [OTHER]
    buyer_ids = pd.Series(pd.array(ids, dtype="string"))
    columns: dict[str, object] = {
        "buyer_id": buyer_ids.array,
        "as_of": output.stamps,
        **output.values,
        **{
            name: pd.Categorical.from_codes(codes, categories=levels)
            for name, codes in output.codes.items()
        },
    }
    for name, series in _buyer_attributes(buyer_ids, buyers, vocabulary).items():
        columns[name] = (
            pd.Categorical(series.to_numpy(), dtype=series.dtype)
            if isinstance(series.dtype, pd.CategoricalDtype)
            else series.to_numpy()
        )
    # One frame over the existing arrays: no consolidation into a second 2-D copy.
    return pd.DataFrame(columns, copy=False)


def _sql_source(interactions: pd.DataFrame) -> str:
    """Select the columns the engine reads, cast in SQL so the caller's frame is not copied."""
    optional = {
        name: f"CAST({name} AS VARCHAR)" if name in interactions.columns else "NULL::VARCHAR"
        for name in ("channel", "direction")
    }
    return f"""
    CREATE OR REPLACE TEMP VIEW src AS
    SELECT CAST(buyer_id AS VARCHAR) AS buyer_id, CAST(occurred_at AS TIMESTAMP) AS occurred_at,
           CAST(activity AS VARCHAR) AS activity, {optional["channel"]} AS channel,
           {optional["direction"]} AS direction
    FROM raw
    """


def _buyer_ranges(con: duckdb.DuckDBPyConnection, n_parts: int) -> list[str]:
    """Partition predicates over contiguous ranges of buyer ids with about equal buyer counts.

    Ranges rather than hashes: each partition's sorted output follows the previous one, so
    the parts never need a global sort (which would copy the whole feature table).
    """
    if n_parts <= 1:
        return ["TRUE"]
    quantiles = ", ".join(str(k / n_parts) for k in range(1, n_parts))
    ids = con.execute(
        f"SELECT quantile_disc(buyer_id, [{quantiles}]) FROM (SELECT DISTINCT buyer_id FROM src)"
    ).fetchone()[0]  # type: ignore[index]
    cuts = sorted(set(ids))
    literals = [f"'{sql_escape(c)}'" for c in cuts]
    lower = [None, *literals]
    upper = [*literals, None]
    return [
        " AND ".join(
            [f"i.buyer_id > {lo}"] * (lo is not None) + [f"i.buyer_id <= {hi}"] * (hi is not None)
        )
        for lo, hi in zip(lower, upper, strict=True)
    ]


def _codes(names: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({"name": pd.array(names, dtype="string"), "code": np.arange(len(names))})


def _numeric_columns(vocabulary: Vocabulary, config: FeatureConfig) -> list[str]:
    return [
        c
        for c in feature_columns(vocabulary, config)
        if not c.startswith("last_activity_") and not c.startswith("buyer_")
    ]


def _buyer_attributes(
    buyer_ids: pd.Series, buyers: pd.DataFrame | None, vocabulary: Vocabulary
) -> dict[str, pd.Series]:
    table = buyers.set_index("buyer_id") if buyers is not None else pd.DataFrame()
    out: dict[str, pd.Series] = {}
    for name, levels in vocabulary.attributes.items():
        raw = (
            table[name].reindex(buyer_ids.to_numpy())
            if name in table.columns
            else pd.Series(np.nan, index=buyer_ids.to_numpy())
        )
        if levels is None:
            out[f"buyer_{slug(name)}"] = pd.to_numeric(raw, errors="coerce").astype("float64")
        else:
            # Levels unseen in training become missing, as LightGBM would treat them anyway.
            out[f"buyer_{slug(name)}"] = pd.Series(
                pd.Categorical(raw.astype("string").to_numpy(), categories=list(levels))
            )
    return out
