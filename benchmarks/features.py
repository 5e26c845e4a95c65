"""Benchmark the point-in-time feature engine against three other ways to compute it.

Run ``python benchmarks/features.py [--sizes 1000000 10000000] [--quick] [--phases]``.

Each export size is simulated once (in bounded memory), cut at exactly that many
interactions (the last buyer's history is truncated) and cached as Parquet under
``benchmarks/.cache/``. For one and for 12 weekly as-of instants, every engine then runs
in a fresh child process that reads the Parquet like a user would, computes the features
and reports its wall time and its own peak RSS (``VmHWM``: see ``_common.py``), which
therefore includes Python, the input frame and the output frame:

- ``stageml``: :func:`stageml.features.engine.build_features` (NumPy), run ``--repeats`` times;
  the median is quoted and every ratio is taken against it, within the same run.
- ``pandas``: :func:`pandas_features` below, a straightforward vectorised pandas version
  of *all* the same features (groupbys per as-of instant, no per-buyer loop).
- ``reference``: ``tests/reference_features.py``, the literal per-(buyer, as-of) loop.
- ``featuretools``: ``calculate_feature_matrix`` with cutoff times, one call per trailing
  window (``training_window``), counts with ``where`` per activity/channel/direction, and
  time-since-last, distinct counts, gaps and last-3 activities over all history; it needs
  three small shims to run on pandas 3 (:func:`import_featuretools`).

The two slow engines run on the first K buyers of the same export and are extrapolated
linearly per (buyer, as-of) feature row; the table labels those rows, and also gives the
ratio on the same subset without extrapolation. A check first runs all four engines on a
small subset and compares every column with stageml's.

Wall time is the feature computation only: reading the Parquet, fitting the vocabulary
(once, by the parent) and, for featuretools, building the EntitySet and cutoff-time frame
(``setup_s`` in the JSON) are excluded. ``--phases`` adds where ``build_features`` spends
its time (encoding, partition pass, writing, assembling). ``--baseline REV`` also runs the
engine of another commit, alternating with this tree, and compares every output column.
Results: a Markdown table on stdout and ``benchmarks/results/features.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import textwrap
import time
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import emit_result, markdown_table, median, peak_rss_mb, run_child  # noqa: E402

from stageml.config import FeatureConfig  # noqa: E402
from stageml.data.io import read_table  # noqa: E402
from stageml.data.simulate import DEFAULT_END, simulate_to_folder  # noqa: E402
from stageml.durations import format_duration  # noqa: E402
from stageml.features.engine import KEYS, build_features, feature_columns  # noqa: E402
from stageml.features.vocabulary import OTHER, Vocabulary, fit_vocabulary  # noqa: E402

ENGINES = ("stageml", "pandas", "reference", "featuretools")
AS_OF_COUNTS = (1, 12)
US_PER_DAY = 86_400_000_000
# The simulator yields about 48 interactions per buyer; ask for a few more buyers than
# needed and cut the export at exactly the requested number of interactions.
BUYERS_PER_INTERACTION = 1 / 44
CONFIG = FeatureConfig()


# --------------------------------------------------------------------------------------
# The vectorised pandas engine


def pandas_features(
    interactions: pd.DataFrame,
    as_of: Sequence[pd.Timestamp],
    vocabulary: Vocabulary,
    config: FeatureConfig,
) -> pd.DataFrame:
    """The :func:`~stageml.features.engine.build_features` columns, the plain vectorised-pandas way.

    Per-event values that cannot change with the as-of instant (vocabulary codes, the gap
    to the previous event, whether an event opens a new active day) are computed once;
    then for each instant the past is filtered and every feature is a groupby over it.
    Each instant's block is typed as it is made, so the result is copied only to be
    concatenated and sorted.
    """
    acts, chans = list(vocabulary.activities), list(vocabulary.channels)
    act_slugs, chan_slugs = vocabulary.activity_slugs(), vocabulary.channel_slugs()
    buyer_codes, buyer_ids = pd.factorize(interactions["buyer_id"], sort=True)
    # Names as sorted integer codes: the same order as the strings, a fraction of the memory.
    activity = pd.factorize(interactions["activity"], sort=True)[0]
    channel = pd.factorize(interactions["channel"], sort=True)[0]
    ev = pd.DataFrame(
        {
            "buyer": buyer_codes,
            "t": interactions["occurred_at"].astype("datetime64[us]").to_numpy().view("int64"),
            "act": _codes(interactions["activity"], acts),
            "chan": _codes(interactions["channel"], chans),
            "dir": interactions["direction"].str.lower().map({"inbound": 0, "outbound": 1}),
            "activity": activity,
            "channel": np.where(channel < 0, np.nan, channel),
        }
    )
    # The engine's tie order for events at the same instant (matters for gaps and last-k).
    ev = ev.sort_values(["buyer", "t", "act", "chan", "dir", "activity"], ignore_index=True)
    ev["gap"] = ev["t"].diff().where(ev["buyer"].eq(ev["buyer"].shift()))
    day = (ev["t"] - ev.groupby("buyer")["t"].transform("min")) // US_PER_DAY
    ev["new_day"] = ~pd.DataFrame({"b": ev["buyer"], "d": day}).duplicated()

    windows = {format_duration(w): int(w.value // 1000) for w in config.windows}
    trend_name, trend_us = format_duration(config.trend_window), config.trend_window.value // 1000
    frames = []
    for instant in sorted(set(as_of)):
        t = pd.Timestamp(instant).value // 1000
        past = ev[ev["t"] < t]
        grouped = past.groupby("buyer")
        index = grouped.size().index
        out: dict[str, Any] = {}

        def per_buyer(values: pd.Series, fill: float = 0, *, idx: pd.Index = index) -> pd.Series:
            return values.reindex(idx, fill_value=fill)

        def tally(frame: pd.DataFrame, key: str, n: int, *, idx: pd.Index = index) -> pd.DataFrame:
            table = frame.groupby(["buyer", key]).size().unstack(fill_value=0)
            return table.reindex(index=idx, columns=range(n), fill_value=0)

        for span, width in [*windows.items(), ("all", None)]:
            win = past if width is None else past[past["t"] >= t - width]
            by = win.groupby("buyer")
            out[f"n_{span}"] = per_buyer(by.size())
            counts = tally(win, "act", len(act_slugs))
            out |= {f"act_{s}_{span}": counts[i] for i, s in enumerate(act_slugs)}
            counts = tally(win, "chan", len(chan_slugs))
            out |= {f"chan_{s}_{span}": counts[i] for i, s in enumerate(chan_slugs)}
            counts = tally(win, "dir", 2)
            out |= {f"dir_inbound_{span}": counts[0], f"dir_outbound_{span}": counts[1]}
            out[f"active_days_{span}"] = per_buyer(by["new_day"].sum())
        out["distinct_activities_all"] = grouped["activity"].nunique()
        out["distinct_channels_all"] = grouped["channel"].nunique()

        first, last = grouped["t"].min(), grouped["t"].max()
        tenure = (t - first) / US_PER_DAY
        for span, width in windows.items():
            n_w, days_w = out[f"n_{span}"], width / US_PER_DAY
            out[f"inbound_share_{span}"] = out[f"dir_inbound_{span}"] / n_w.where(n_w > 0)
            out[f"intensity_{span}"] = (n_w / days_w) / (out["n_all"] / tenure.clip(lower=days_w))
        recent = per_buyer(past[past["t"] >= t - trend_us].groupby("buyer").size())
        before = past[(past["t"] >= t - 2 * trend_us) & (past["t"] < t - trend_us)]
        out[f"n_prev_{trend_name}"] = prev = per_buyer(before.groupby("buyer").size())
        out[f"trend_ratio_{trend_name}"] = (recent + 1.0) / (prev + 1.0)
        out["days_since_last"] = (t - last) / US_PER_DAY
        out["days_since_first"] = tenure
        latest = past.groupby(["buyer", "act"])["t"].max().unstack()
        latest = latest.reindex(index=index, columns=range(len(act_slugs)))
        out |= {
            f"days_since_act_{s}": (t - latest[i]) / US_PER_DAY for i, s in enumerate(act_slugs)
        }
        out["gap_mean_days"] = grouped["gap"].mean() / US_PER_DAY
        out["gap_max_days"] = grouped["gap"].max() / US_PER_DAY
        out["gap_last_days"] = grouped["gap"].last() / US_PER_DAY
        rank = grouped.cumcount(ascending=False)
        tail = past.loc[rank < config.last_activities, ["buyer", "act"]]
        tail = tail.assign(k=rank[rank < config.last_activities] + 1)
        recent_acts = tail.pivot(index="buyer", columns="k", values="act").reindex(index)
        for k in range(1, config.last_activities + 1):
            codes = recent_acts[k] if k in recent_acts else pd.Series(np.nan, index=index)
            out[f"last_activity_{k}"] = codes
        keys = {"buyer_id": buyer_ids[index], "as_of": pd.Timestamp(instant)}
        frames.append(typed_frame(keys, out, vocabulary, config))
        del past, grouped, out
    frame = pd.concat(frames, ignore_index=True)
    del frames
    return frame.sort_values(list(KEYS), kind="stable", ignore_index=True)


def _codes(values: pd.Series, levels: list[str]) -> np.ndarray:
    """Position of each value in ``levels``; anything else (and missing) is ``other``."""
    codes = pd.Categorical(values, categories=levels).codes.astype("int64")
    return np.where(codes < 0, len(levels), codes)


def typed_frame(
    keys: dict[str, Any],
    values: dict[str, Any],
    vocabulary: Vocabulary,
    config: FeatureConfig,
) -> pd.DataFrame:
    """Keys and features in ``build_features``' column order and dtypes.

    Numbers become one float64 block; ``last_activity_k`` becomes a categorical over the
    vocabulary, from codes (pandas) or from labels (featuretools).
    """
    if vocabulary.attributes:
        raise ValueError("the benchmark fits its vocabulary without buyer attributes")
    levels = [*vocabulary.activities, OTHER]
    last = [f"last_activity_{k}" for k in range(1, config.last_activities + 1)]
    numeric = [c for c in feature_columns(vocabulary, config) if c not in last]
    block = pd.DataFrame({c: values[c] for c in numeric}, dtype="float64")
    block.reset_index(drop=True, inplace=True)
    head = pd.DataFrame(keys, index=block.index)
    head["buyer_id"] = head["buyer_id"].astype("string")
    head["as_of"] = pd.to_datetime(head["as_of"]).astype("datetime64[us]")
    tail = {}
    for col in last:
        raw = values[col]
        if isinstance(getattr(raw, "dtype", None), pd.CategoricalDtype):
            tail[col] = pd.Categorical(np.asarray(raw.astype(object)), categories=levels)
        else:
            codes = pd.Series(raw).fillna(-1).astype("int64").to_numpy()
            tail[col] = pd.Categorical.from_codes(codes, categories=levels)
    return pd.concat([head, block, pd.DataFrame(tail, index=block.index)], axis=1)


# --------------------------------------------------------------------------------------
# The featuretools engine


def import_featuretools() -> types.ModuleType:
    """Import featuretools 1.31, with the smallest shims that make it run on pandas 3.

    1. woodwork/featuretools ``import pkg_resources``, which setuptools >= 81 no longer
       ships: a stand-in module answers ``iter_entry_points`` from ``importlib.metadata``.
    2. pandas 3 no longer caches accessor objects, so ``df.ww.init(...)`` configured an
       accessor that was thrown away (``WoodworkNotInitError``): cache ``.ww`` per object
       as pandas 2 did.
    3. Group-by transform features are written back with ``frame[name].update(...)``,
       which under copy-on-write updates a temporary copy (the values were lost, or a
       ``TypeError`` for categoricals): assign the column instead. The per-group loop,
       featuretools' own algorithm, is unchanged.
    """
    if "pkg_resources" not in sys.modules:
        shim = types.ModuleType("pkg_resources")

        def iter_entry_points(group: str, name: str | None = None) -> list[Any]:
            found = importlib.metadata.entry_points(group=group)
            return [e for e in found if name is None or e.name == name]

        shim.iter_entry_points = iter_entry_points  # type: ignore[attr-defined]
        shim.working_set = []  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    import featuretools as ft
    from featuretools.computational_backends import feature_set_calculator as fsc
    from woodwork.column_accessor import WoodworkColumnAccessor
    from woodwork.table_accessor import WoodworkTableAccessor

    class CachedAccessor:
        def __init__(self, name: str, accessor: type) -> None:
            self.name, self.accessor = name, accessor

        def __get__(self, obj: Any, cls: type) -> Any:
            if obj is None:
                return self.accessor
            value = self.accessor(obj)
            object.__setattr__(obj, self.name, value)
            return value

    pd.DataFrame.ww = CachedAccessor("ww", WoodworkTableAccessor)
    pd.Series.ww = CachedAccessor("ww", WoodworkColumnAccessor)

    method = fsc.FeatureSetCalculator._calculate_groupby_features
    if getattr(method, "patched_for_pandas3", False):
        return cast(types.ModuleType, ft)
    source = textwrap.dedent(inspect.getsource(method))
    broken = "frame[name].update(pd.concat(col_vals))"
    if broken in source:
        source = source.replace(broken, "frame[name] = pd.concat(col_vals).reindex(frame.index)")
        namespace: dict[str, Any] = {}
        exec(compile(source, fsc.__file__, "exec"), vars(fsc), namespace)  # noqa: S102
        namespace[method.__name__].patched_for_pandas3 = True
        fsc.FeatureSetCalculator._calculate_groupby_features = namespace[method.__name__]
    return cast(types.ModuleType, ft)


@dataclass
class FeaturetoolsJob:
    """An EntitySet, the cutoff-time frame and one feature list per training window."""

    ft: types.ModuleType
    entityset: Any
    cutoff: pd.DataFrame
    features: dict[pd.Timedelta | None, dict[str, Any]]


def featuretools_job(
    interactions: pd.DataFrame,
    as_of: Sequence[pd.Timestamp],
    vocabulary: Vocabulary,
    config: FeatureConfig,
) -> FeaturetoolsJob:
    """Everything featuretools needs before ``calculate_feature_matrix`` (not timed).

    Columns are named like the stageml features they correspond to. Activities and
    channels outside the vocabulary become ``other``, as in stageml; events are presorted
    in stageml's tie order so that ``Last`` agrees on simultaneous events.
    """
    ft = import_featuretools()
    from featuretools.primitives import (
        Count,
        Lag,
        Last,
        Max,
        Mean,
        NumUnique,
        NUniqueDays,
        TimeSinceFirst,
        TimeSinceLast,
        TimeSincePrevious,
    )

    acts, chans = [*vocabulary.activities, OTHER], [*vocabulary.channels, OTHER]
    ev = pd.DataFrame(
        {
            "buyer_id": interactions["buyer_id"].astype(str),
            "occurred_at": interactions["occurred_at"].astype("datetime64[ns]"),
            "act": pd.Categorical.from_codes(_codes(interactions["activity"], acts[:-1]), acts),
            "chan": pd.Categorical.from_codes(_codes(interactions["channel"], chans[:-1]), chans),
            "direction": interactions["direction"].str.lower().astype(object),
            "activity": interactions["activity"].astype(object),
            "channel": interactions["channel"].astype(object),
        }
    )
    ev = ev.sort_values(
        ["buyer_id", "occurred_at", "act", "chan", "direction", "activity"], ignore_index=True
    )
    first_seen = ev.groupby("buyer_id")["occurred_at"].min()
    cutoff = pd.concat(
        pd.DataFrame({"buyer_id": first_seen.index[first_seen < t], "time": pd.Timestamp(t)})
        for t in sorted(set(as_of))
    )
    es = ft.EntitySet("export")
    es.add_dataframe(
        dataframe_name="buyers",
        index="buyer_id",
        dataframe=pd.DataFrame({"buyer_id": first_seen.index}),
    )
    es.add_dataframe(
        dataframe_name="interactions",
        dataframe=ev,
        index="event_id",
        make_index=True,
        time_index="occurred_at",
        logical_types={
            c: "Categorical" for c in ("act", "chan", "direction", "activity", "channel")
        },
    )
    es.add_relationship("buyers", "buyer_id", "interactions", "buyer_id")
    es.add_last_time_indexes()

    def column(name: str) -> Any:
        return ft.Feature(es["interactions"].ww[name])

    def agg(base: Any, primitive: Any, where: Any = None) -> Any:
        return ft.Feature(base, parent_dataframe_name="buyers", primitive=primitive, where=where)

    event_id = es["interactions"].ww["event_id"]

    def counts(span: str) -> dict[str, Any]:
        out = {f"n_{span}": agg(event_id, Count)}
        out |= {
            f"act_{s}_{span}": agg(event_id, Count, column("act") == a)
            for s, a in zip(vocabulary.activity_slugs(), acts, strict=True)
        }
        out |= {
            f"chan_{s}_{span}": agg(event_id, Count, column("chan") == c)
            for s, c in zip(vocabulary.channel_slugs(), chans, strict=True)
        }
        out |= {
            f"dir_{d}_{span}": agg(event_id, Count, column("direction") == d)
            for d in ("inbound", "outbound")
        }
        # Calendar days with an event: stageml counts 24-hour periods from the first event.
        out[f"active_days_{span}"] = agg(column("occurred_at"), NUniqueDays)
        return out

    windows = {w: format_duration(w) for w in config.windows}
    features: dict[pd.Timedelta | None, dict[str, Any]] = {w: counts(n) for w, n in windows.items()}
    for extra in (config.trend_window, 2 * config.trend_window):
        features.setdefault(extra, {f"n_{format_duration(extra)}": agg(event_id, Count)})
    everything = counts("all")
    gap = ft.Feature(column("occurred_at"), groupby=column("buyer_id"), primitive=TimeSincePrevious)
    everything |= {
        "distinct_activities_all": agg(column("activity"), NumUnique),
        "distinct_channels_all": agg(column("channel"), NumUnique),
        "days_since_last": agg(column("occurred_at"), TimeSinceLast),
        "days_since_first": agg(column("occurred_at"), TimeSinceFirst),
        "gap_mean_days": agg(gap, Mean),
        "gap_max_days": agg(gap, Max),
        "gap_last_days": agg(gap, Last),
        "last_activity_1": agg(column("act"), Last),
    }
    everything |= {
        f"days_since_act_{s}": agg(column("occurred_at"), TimeSinceLast, column("act") == a)
        for s, a in zip(vocabulary.activity_slugs(), acts, strict=True)
    }
    for k in range(2, config.last_activities + 1):
        lagged = ft.Feature(
            [column("act"), column("occurred_at")],
            groupby=column("buyer_id"),
            primitive=Lag(periods=k - 1),
        )
        everything[f"last_activity_{k}"] = agg(lagged, Last)
    features[None] = everything
    return FeaturetoolsJob(ft, es, cutoff, features)


def run_featuretools(
    job: FeaturetoolsJob, vocabulary: Vocabulary, config: FeatureConfig
) -> pd.DataFrame:
    """One ``calculate_feature_matrix`` per training window, joined into stageml's layout."""
    parts = []
    for window, named in job.features.items():
        matrix = job.ft.calculate_feature_matrix(
            list(named.values()),
            job.entityset,
            cutoff_time=job.cutoff,
            training_window=window,
            include_cutoff_time=False,
            cutoff_time_in_index=True,
        )
        matrix.columns = list(named)
        parts.append(matrix)
    wide = pd.concat(parts, axis=1)
    seconds = [c for c in wide.columns if c.startswith(("days_since_", "gap_"))]
    wide[seconds] = wide[seconds].astype("float64") / 86_400
    out: dict[str, Any] = {c: wide[c] for c in wide.columns}
    trend = format_duration(config.trend_window)
    recent = wide[f"n_{trend}"].astype("float64")
    older = wide[f"n_{format_duration(2 * config.trend_window)}"].astype("float64")
    out[f"n_prev_{trend}"] = older - recent
    out[f"trend_ratio_{trend}"] = (recent + 1.0) / (older - recent + 1.0)
    n_all = wide["n_all"].astype("float64")
    for w in config.windows:
        span, days = format_duration(w), w / pd.Timedelta(days=1)
        n_w = wide[f"n_{span}"].astype("float64")
        inbound = wide[f"dir_inbound_{span}"].astype("float64")
        out[f"inbound_share_{span}"] = inbound / n_w.where(n_w > 0)
        out[f"intensity_{span}"] = (n_w / days) / (n_all / out["days_since_first"].clip(lower=days))
    keys = {
        "buyer_id": wide.index.get_level_values(0).to_numpy(),
        "as_of": wide.index.get_level_values(1).to_numpy(),
    }
    frame = typed_frame(keys, out, vocabulary, config)
    return frame.sort_values(list(KEYS), kind="stable", ignore_index=True)


# --------------------------------------------------------------------------------------
# Child processes: one engine, one data file, one set of as-of instants


def as_of_instants(count: int) -> list[pd.Timestamp]:
    """``count`` weekly midnights ending the day before the simulated export ends."""
    last = pd.Timestamp(DEFAULT_END) - pd.Timedelta(days=1)
    return list(pd.date_range(end=last, periods=count, freq="7D"))


def load_vocabulary(path: Path) -> Vocabulary:
    return Vocabulary.from_dict(json.loads(path.read_text()))


def compute(
    engine: str,
    interactions: pd.DataFrame,
    as_of: list[pd.Timestamp],
    vocabulary: Vocabulary,
    config: FeatureConfig = CONFIG,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, float, float]:
    """Run one engine; returns (features, untimed setup seconds, timed wall seconds)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        if engine == "featuretools":
            job = featuretools_job(interactions, as_of, vocabulary, config)
            setup = time.perf_counter() - start
            start = time.perf_counter()
            return run_featuretools(job, vocabulary, config), setup, time.perf_counter() - start
        runners: dict[str, Callable[[], pd.DataFrame]] = {
            "stageml": lambda: build_features(
                interactions, as_of, vocabulary=vocabulary, config=config, progress=progress
            ),
            "pandas": lambda: pandas_features(interactions, as_of, vocabulary, config),
            "reference": lambda: _reference(interactions, as_of, vocabulary, config),
        }
        frame = runners[engine]()
        return frame, 0.0, time.perf_counter() - start


def _reference(
    interactions: pd.DataFrame,
    as_of: list[pd.Timestamp],
    vocabulary: Vocabulary,
    config: FeatureConfig,
) -> pd.DataFrame:
    from reference_features import reference_features

    return reference_features(interactions, as_of, vocabulary, config)


def child_main(args: argparse.Namespace) -> None:
    config = FeatureConfig(partition_rows=args.partition_rows[0]) if args.partition_rows else CONFIG
    vocabulary = load_vocabulary(args.vocab)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    interactions = read_table(args.data)
    read_s = time.perf_counter() - start
    as_of = as_of_instants(args.as_of_count)
    if args.child == "check":
        emit_result(check(interactions, as_of, vocabulary))
        return
    if args.child == "phases":
        emit_result(phases(interactions, as_of, vocabulary, config))
        return
    engine = "stageml" if args.child == "baseline" else args.child
    frame, setup, wall = compute(engine, interactions, as_of, vocabulary, config)
    peak = peak_rss_mb()
    emit_result(
        {
            "engine": args.child,
            "partition_rows": config.partition_rows,
            "interactions": len(interactions),
            "buyers": int(interactions["buyer_id"].nunique()),
            "as_of": len(as_of),
            "rows": len(frame),
            "wall_s": wall,
            "setup_s": setup,
            "read_s": read_s,
            "output_mb": frame.memory_usage(deep=True).sum() / 1e6,
            "input_mb": interactions.memory_usage(deep=True).sum() / 1e6,
            "peak_rss_mb": peak,
            "load_1min": [load_before, os.getloadavg()[0]],
            "engine_sha256": engine_sha256(),
            "digests": digests(frame) if engine == "stageml" else {},
        }
    )


def digests(frame: pd.DataFrame) -> dict[str, str]:
    """A hash of each column's values and dtype, to compare two engines' outputs exactly."""
    return {
        str(col): hashlib.sha256(
            str(frame[col].dtype).encode()
            + pd.util.hash_pandas_object(frame[col], index=False).to_numpy().tobytes()
        ).hexdigest()[:16]
        for col in frame.columns
    }


def baseline_source(rev: str, cache: Path) -> Path:
    """The ``src`` folder of commit ``rev``, exported once under the cache."""
    sha = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = cache / f"baseline-{sha}"
    if not (target / "src").is_dir():
        tmp = cache / f"baseline-{sha}.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(HERE.parent), "archive", sha, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        tmp.rename(target)
    return target / "src"


def check(
    interactions: pd.DataFrame, as_of: list[pd.Timestamp], vocabulary: Vocabulary
) -> dict[str, Any]:
    """Compare every engine with stageml on the same data, column by column."""
    expected, _, _ = compute("stageml", interactions, as_of, vocabulary)
    report: dict[str, Any] = {
        "interactions": len(interactions),
        "as_of": len(as_of),
        "rows": len(expected),
    }
    for engine in ENGINES[1:]:
        try:
            got, _, _ = compute(engine, interactions, as_of, vocabulary)
        except Exception as exc:  # noqa: BLE001 - reported in the table, not hidden
            report[engine] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        report[engine] = compare(expected, got)
    return report


def compare(expected: pd.DataFrame, got: pd.DataFrame) -> dict[str, Any]:
    """Columns that differ from ``expected``, with counts.

    stageml emits float32, so numbers count as equal when they agree after rounding the
    other engine's float64 to float32 (within 1e-6 relative).
    """
    got = got.assign(
        buyer_id=got["buyer_id"].astype(str),
        as_of=pd.to_datetime(got["as_of"]).astype("datetime64[us]"),
    )
    got = got.sort_values(list(KEYS), ignore_index=True)
    keys = expected[list(KEYS)].assign(buyer_id=expected["buyer_id"].astype(str))
    if len(expected) != len(got) or not keys.equals(got[list(KEYS)]):
        return {"rows_match": False, "rows": len(got)}
    differing = {}
    for col in expected.columns[len(KEYS) :]:
        a, b = expected[col], got[col]
        if isinstance(a.dtype, pd.CategoricalDtype):
            same = np.asarray((a.astype(object) == b.astype(object)) | (a.isna() & b.isna()))
        else:
            x = a.to_numpy(np.float32).astype(float)
            y = b.to_numpy(float).astype(np.float32).astype(float)
            same = np.isclose(x, y, rtol=1e-6, atol=1e-9) | (np.isnan(x) & np.isnan(y))
        if not same.all():
            differing[col] = int((~same).sum())
    return {
        "rows_match": True,
        "columns": len(expected.columns) - len(KEYS),
        "differing": differing,
    }


# The engine's steps, timed by wrapping them (threads=1, so their times add up).
PHASES = {
    "encode (Arrow dictionary codes)": ("stageml.features.engine", "encode_events"),
    "sort partition": ("stageml.features.engine", "_sort"),
    "cumulative state": ("stageml.features.engine", "_cumulative_state"),
    "partition features": ("stageml.features.engine", "_partition"),
    "write float32 columns": ("stageml.features.engine._Output", "write"),
    "assemble frame": ("stageml.features.engine", "_assemble"),
}


def phases(
    interactions: pd.DataFrame,
    as_of: list[pd.Timestamp],
    vocabulary: Vocabulary,
    config: FeatureConfig,
) -> dict[str, Any]:
    """Where ``build_features`` spends its time, step by step, on one thread.

    "partition features" includes the sort and the cumulative state (also shown alone);
    "rest" is grouping the events by buyer, counting rows and allocating the output.
    """
    import importlib

    seconds: dict[str, float] = {}
    originals = []
    for phase, (module, name) in PHASES.items():
        owner: Any
        if module.endswith("._Output"):
            owner = importlib.import_module(module.rsplit(".", 1)[0])._Output
        else:
            owner = importlib.import_module(module)
        function = getattr(owner, name)
        originals.append((owner, name, function))

        def timed(*a: Any, _f: Callable[..., Any] = function, _p: str = phase, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                seconds[_p] = seconds.get(_p, 0.0) + time.perf_counter() - start

        setattr(owner, name, timed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            build_features(interactions, as_of, vocabulary=vocabulary, config=config, threads=1)
            wall = time.perf_counter() - start
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)
    steps = ("encode", "partition features", "write", "assemble")
    seconds["rest"] = wall - sum(v for k, v in seconds.items() if k.startswith(steps))
    return {
        "interactions": len(interactions),
        "as_of": len(as_of),
        "partition_rows": config.partition_rows,
        "seconds": seconds,
        "total_s": wall,
        "peak_rss_mb": peak_rss_mb(),
        "engine_sha256": engine_sha256(),
        "load_1min": os.getloadavg()[0],
    }


def engine_sha256() -> str:
    """Fingerprint of the feature engine's source this process imported."""
    import stageml.features.engine as engine

    return hashlib.sha256(Path(engine.__file__).read_bytes()).hexdigest()[:12]


# --------------------------------------------------------------------------------------
# The parent: data, runs, table


@dataclass(frozen=True)
class Dataset:
    size: int
    path: Path
    vocab: Path
    subsets: dict[int, Path]


def prepare(size: int, subset_buyers: Sequence[int], seed: int, cache: Path) -> Dataset:
    """Simulate ``size`` interactions once (bounded memory) and cut subsets of buyers."""
    path = cache / f"interactions-{size}-seed{seed}.parquet"
    if not path.exists():
        raw = cache / f"raw-{size}-seed{seed}"
        n_buyers = math.ceil(size * BUYERS_PER_INTERACTION) + 10
        print(f"simulating {n_buyers:,} buyers for {size:,} interactions …", flush=True)
        written = simulate_to_folder(n_buyers, seed=seed, out=raw)["interactions"]
        _write_prefix(pq.ParquetFile(written), size, path)
        for file in raw.iterdir():
            file.unlink()
        raw.rmdir()
    vocab = path.with_suffix(".vocab.json")
    if not vocab.exists():
        labels = pq.read_table(path, columns=["activity", "channel"]).to_pandas()
        vocab.write_text(json.dumps(fit_vocabulary(labels, None, CONFIG).to_dict(), indent=1))
    subsets = {}
    for k in sorted(set(subset_buyers)):
        subsets[k] = sub = path.with_name(f"{path.stem}-first{k}.parquet")
        if not sub.exists():
            ids = pc.unique(pq.read_table(path, columns=["buyer_id"])["buyer_id"]).to_pylist()
            kth = sorted(ids)[min(k, len(ids)) - 1]
            pq.write_table(pq.read_table(path, filters=[("buyer_id", "<=", kth)]), sub)
    return Dataset(size, path, vocab, subsets)


def _write_prefix(source: pq.ParquetFile, rows: int, target: Path) -> None:
    """The first ``rows`` rows of ``source``, streamed, written atomically to ``target``."""
    tmp = target.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, source.schema_arrow) as writer:
        left = rows
        for batch in source.iter_batches(batch_size=1_000_000):
            writer.write_batch(batch.slice(0, left))
            left -= min(left, batch.num_rows)
            if not left:
                break
    if left:
        raise RuntimeError(
            f"the simulation gave fewer than {rows:,} interactions; raise BUYERS_PER_INTERACTION"
        )
    tmp.replace(target)


@dataclass(frozen=True)
class Measure:
    """One table row: an engine on one export size and one set of as-of instants."""

    engine: str
    interactions: int
    as_of: int
    partition_rows: int | None = None
    rows: int | None = None
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    ratio: float | None = None
    extrapolated: bool = False
    note: str = ""
    runs: tuple[dict[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return self.wall_s is not None


def measure(
    args: argparse.Namespace,
    engine: str,
    data: Path,
    vocab: Path,
    as_of: int,
    repeats: int,
    partition_rows: int | None = None,
) -> list[dict[str, Any]]:
    """Up to ``repeats`` fresh child processes of one engine (stops at the first failure)."""
    runs = []
    child = [
        "--child",
        engine,
        "--data",
        str(data),
        "--vocab",
        str(vocab),
        "--as-of-count",
        str(as_of),
    ]
    if partition_rows:
        child += ["--partition-rows", str(partition_rows)]
    for _ in range(repeats):
        result = run_with_path(
            args.baseline_src if engine == "baseline" else None,
            child,
            timeout=args.timeout,
            max_rss_mb=args.max_rss_mb,
        )
        shown = (
            f"{result['wall_s']:.2f} s, {result['rows']:,} rows, "
            f"{result['peak_rss_mb']:,.0f} MB, load {result['load_1min'][1]:.1f}"
            if "error" not in result
            else f"{result['error']} (RSS seen {result['polled_peak_rss_mb']:,.0f} MB)"
        )
        variant = f" partition_rows={partition_rows:,}" if partition_rows else ""
        print(f"  {engine:<12}{variant} {data.name} × {as_of} as-of: {shown}", flush=True)
        runs.append(result)
        if "error" in result:
            break
    return runs


def interleaved(
    args: argparse.Namespace, data: Dataset, as_of: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """stageml runs, and baseline runs alternating with them (both see the same load)."""
    current: list[dict[str, Any]] = []
    before: list[dict[str, Any]] = []
    for _ in range(args.repeats):
        current += measure(args, "stageml", data.path, data.vocab, as_of, 1)
        if args.baseline:
            before += measure(args, "baseline", data.path, data.vocab, as_of, 1)
    return current, before


def same_columns(current: list[dict[str, Any]], before: list[dict[str, Any]]) -> str:
    """How many output columns of the baseline equal the current engine's, bit for bit."""
    ok = [r for r in current + before if "error" not in r]
    if len({r["interactions"] for r in ok}) != 1 or not current or not before:
        return "not compared (a run failed)"
    new, old = current[0]["digests"], before[0]["digests"]
    keys = [c for c in KEYS if c in new]
    equal = [c for c in new if c not in keys and old.get(c) == new[c]]
    differ = [c for c in new if c not in keys and old.get(c) != new[c]]
    keys_equal = all(old.get(k) == new[k] for k in keys)
    return (
        f"{len(equal)}/{len(new) - len(keys)} at {current[0]['interactions']:,} × "
        f"{current[0]['as_of']} (keys {'equal' if keys_equal else 'DIFFER'})"
        + (f", differ: {', '.join(differ)}" if differ else "")
    )


def run_with_path(source: Path | None, child: list[str], **kwargs: Any) -> dict[str, Any]:
    """``run_child`` with ``source`` first on the child's PYTHONPATH (the baseline's stageml)."""
    if source is None:
        return run_child(__file__, child, **kwargs)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(source), *filter(None, [saved])])
    try:
        return run_child(__file__, child, **kwargs)
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def summarise(
    engine: str,
    size: int,
    as_of: int,
    runs: list[dict[str, Any]],
    *,
    base: Measure | None = None,
    full_rows: int | None = None,
    partition_rows: int | None = None,
) -> Measure:
    """Median wall time and max peak RSS; a subset run is extrapolated per feature row."""
    failed = [r for r in runs if "error" in r]
    if failed:
        note = (
            f"{failed[0]['error']}; its RSS was at least {failed[0]['polled_peak_rss_mb']:,.0f} MB"
        )
        return Measure(engine, size, as_of, partition_rows, note=note, runs=tuple(runs))
    wall = median([r["wall_s"] for r in runs])
    rows, note, extrapolated = runs[0]["rows"], "", False
    if runs[0]["interactions"] < size:
        if not full_rows:
            return Measure(
                engine,
                size,
                as_of,
                note="no full-size stageml run to extrapolate to",
                runs=tuple(runs),
            )
        scale, extrapolated = full_rows / rows, True
        note = (
            f"measured on the first {runs[0]['buyers']:,} buyers ({runs[0]['interactions']:,} "
            f"interactions, {rows:,} feature rows) in {wall:,.1f} s, extrapolated "
            f"×{scale:,.1f} per (buyer, as-of) row; peak RSS is that subset's"
        )
        wall, rows = wall * scale, full_rows
    ratio = wall / base.wall_s if base is not None and base.wall_s else None
    return Measure(
        engine,
        size,
        as_of,
        partition_rows,
        rows,
        wall,
        max(r["peak_rss_mb"] for r in runs),
        ratio,
        extrapolated,
        note,
        tuple(runs),
    )


LABELS = {
    "stageml": "stageml",
    "pandas": "vectorised pandas",
    "reference": "pure-pandas reference loop",
    "featuretools": "featuretools 1.31",
}


def label(m: Measure) -> str:
    text = LABELS[m.engine]
    if m.partition_rows:
        text += f", partition_rows={m.partition_rows:,}"
    return text


def table(measures: list[Measure], repeats: int) -> str:
    columns = [
        "engine",
        "interactions",
        "as-of dates",
        "feature rows",
        "wall s (median)",
        "rows/s",
        "peak RSS MB",
        "ratio vs stageml",
    ]
    rows, notes = [], []
    for m in measures:
        name = label(m)
        if m.note:
            notes.append(m.note)
            name += f" [{len(notes)}]"
        if not m.ok:
            rows.append([name, f"{m.interactions:,}", m.as_of, "—", "failed", "—", "—", "—"])
            continue
        assert m.wall_s is not None and m.peak_rss_mb is not None
        approx = "≈" if m.extrapolated else ""
        wall = f"{m.wall_s:,.1f}" if m.wall_s >= 10 else f"{m.wall_s:.2f}"
        ratio = (
            "—"
            if m.ratio is None
            else (f"{approx}{m.ratio:,.0f}×" if m.ratio >= 10 else f"{approx}{m.ratio:.2f}×")
        )
        rows.append(
            [
                name,
                f"{m.interactions:,}",
                m.as_of,
                f"{m.rows:,}",
                f"{approx}{wall}",
                f"{approx}{m.interactions / m.wall_s:,.0f}",
                f"{m.peak_rss_mb:,.0f}" + (" (subset)" if m.extrapolated else ""),
                ratio,
            ]
        )
    text = markdown_table(columns, rows, numeric=range(1, len(columns)))
    text += (
        f"\n\nrows/s = input interactions per second of wall time. Wall time: the feature "
        f"computation only, on data already in memory; stageml (and baseline) rows are "
        f"{f'the median of {repeats} runs' if repeats > 1 else 'one run'}, the others one "
        f"run. Peak RSS: the whole child process (Python, the "
        f"interactions read from Parquet, the engine, the output frame). Ratio: wall time "
        f"over the median of the first stageml row that succeeded (the default config "
        f"unless it failed) for the same export and as-of dates, in the same run."
    )
    if notes:
        text += "\n\n" + "\n".join(f"[{i}] {n}." for i, n in enumerate(notes, start=1))
    return text


def describe_check(report: dict[str, Any]) -> str:
    if "error" in report:
        return f"Correctness check failed to run: {report['error']}."
    parts = []
    for engine in ENGINES[1:]:
        got = report.get(engine, {})
        if "error" in got:
            parts.append(f"{LABELS[engine]} failed ({got['error']})")
        elif not got.get("rows_match"):
            parts.append(f"{LABELS[engine]}: different (buyer, as-of) rows")
        else:
            same = got["columns"] - len(got["differing"])
            differ = ", ".join(got["differing"])
            parts.append(
                f"{LABELS[engine]} {same}/{got['columns']}"
                + (f" (differs: {differ})" if differ else "")
            )
    return (
        f"Check on {report['interactions']:,} interactions × {report['as_of']} as-of dates "
        f"({report['rows']:,} rows), columns equal to stageml's: " + "; ".join(parts) + "."
    )


def parent_main(args: argparse.Namespace) -> None:
    args.cache.mkdir(parents=True, exist_ok=True)
    started = time.time()
    measures: list[Measure] = []
    like_for_like: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    check_report: dict[str, Any] = {}
    identical: list[str] = []
    variants = [None, *args.partition_rows]
    if args.baseline:
        args.baseline_src = baseline_source(args.baseline, args.cache)
        LABELS["baseline"] = f"stageml {args.baseline} (before)"
    for size in args.sizes:
        data = prepare(
            size,
            [args.reference_buyers, args.featuretools_buyers, args.check_buyers],
            args.seed,
            args.cache,
        )
        print(f"{size:,} interactions: {data.path}", flush=True)
        if not check_report and args.engines:
            check_report = run_child(
                __file__,
                [
                    "--child",
                    "check",
                    "--data",
                    str(data.subsets[args.check_buyers]),
                    "--vocab",
                    str(data.vocab),
                    "--as-of-count",
                    str(max(AS_OF_COUNTS)),
                ],
                timeout=args.timeout,
                max_rss_mb=args.max_rss_mb,
            )
            print("  " + describe_check(check_report), flush=True)
        for as_of in args.as_of_counts:
            current, before = interleaved(args, data, as_of)
            fast = [summarise("stageml", size, as_of, current)]
            fast += [
                summarise(
                    "stageml",
                    size,
                    as_of,
                    measure(args, "stageml", data.path, data.vocab, as_of, args.repeats, rows),
                    partition_rows=rows,
                )
                for rows in variants[1:]
            ]
            base = next((m for m in fast if m.ok), None)
            measures += [
                replace(m, ratio=m.wall_s / base.wall_s) if m.wall_s and base and base.wall_s else m
                for m in fast
            ]
            if before:
                measures.append(summarise("baseline", size, as_of, before, base=base))
                identical.append(same_columns(current, before))
            if "pandas" in args.engines:
                measures.append(
                    summarise(
                        "pandas",
                        size,
                        as_of,
                        measure(args, "pandas", data.path, data.vocab, as_of, 1),
                        base=base,
                    )
                )
            for engine, buyers in (
                ("reference", args.reference_buyers),
                ("featuretools", args.featuretools_buyers),
            ):
                if engine not in args.engines:
                    continue
                sub = data.subsets[buyers]
                runs = measure(args, engine, sub, data.vocab, as_of, 1)
                measures.append(
                    summarise(
                        engine, size, as_of, runs, base=base, full_rows=base.rows if base else None
                    )
                )
                # The same subset through stageml: a ratio without extrapolation, unfair
                # to stageml, whose fixed costs dominate on a few thousand interactions.
                same = measure(args, "stageml", sub, data.vocab, as_of, 1)
                if "error" not in same[0] and "error" not in runs[0]:
                    like_for_like.append(
                        {
                            "engine": engine,
                            "size": size,
                            "as_of": as_of,
                            "interactions": runs[0]["interactions"],
                            "rows": runs[0]["rows"],
                            "engine_wall_s": runs[0]["wall_s"],
                            "stageml_wall_s": same[0]["wall_s"],
                            "ratio": runs[0]["wall_s"] / same[0]["wall_s"],
                        }
                    )
        if args.phases:
            profiles += profile(args, data, variants, measures)
    text = table(measures, args.repeats)
    if like_for_like:
        text += (
            "\n\nSame subset through stageml, no extrapolation: "
            + "; ".join(
                f"{LABELS[r['engine']]} {r['ratio']:,.0f}× ({r['interactions']:,} interactions × "
                f"{r['as_of']} as-of)"
                for r in like_for_like
            )
            + "."
        )
    if check_report:
        text += "\n\n" + describe_check(check_report)
    if identical:
        text += "\n\nAgainst the baseline, columns with identical values: " + "; ".join(identical)
    env = environment()
    seen = {
        r["engine_sha256"]
        for m in measures
        if m.engine != "baseline"
        for r in m.runs
        if "engine_sha256" in r
    }
    seen |= {p["engine_sha256"] for p in profiles if "engine_sha256" in p}
    if len(seen) > 1:
        text += (
            f"\n\n**Warning: src/stageml/features/engine.py changed during the run "
            f"(fingerprints {', '.join(sorted(seen))}); the stageml rows mix versions.**"
        )
    text += (
        f"\n\nMachine: {env['cpus']} CPUs, {env['memory_gb']:.0f} GB RAM, shared (1-minute "
        f"load average {min(env_loads(measures)):.1f}–{max(env_loads(measures)):.1f} during "
        f"the runs); stageml {env['stageml']}; {env['platform']}; Python {env['python']}, "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + "."
    )
    print("\n" + text + "\n", flush=True)
    for p in profiles:
        print(describe_profile(p), flush=True)
    payload = {
        "generated": pd.Timestamp.now(tz="UTC").isoformat(),
        "elapsed_s": time.time() - started,
        "args": {k: str(v) for k, v in vars(args).items()},
        "environment": env,
        "as_of": {n: [str(t) for t in as_of_instants(n)] for n in AS_OF_COUNTS},
        "check": check_report,
        "measures": [asdict(m) for m in measures],
        "like_for_like": like_for_like,
        "phases": profiles,
        "markdown": text,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


def profile(
    args: argparse.Namespace, data: Dataset, variants: list[int | None], measures: list[Measure]
) -> list[dict[str, Any]]:
    """Phase timings of build_features for each stageml config that did not fail."""
    as_of = max(AS_OF_COUNTS)
    out = []
    for rows in variants:
        timed = [
            m
            for m in measures
            if m.engine == "stageml"
            and m.interactions == data.size
            and m.as_of == as_of
            and m.partition_rows == rows
        ]
        if timed and not timed[0].ok:
            continue
        child = [
            "--child",
            "phases",
            "--data",
            str(data.path),
            "--vocab",
            str(data.vocab),
            "--as-of-count",
            str(as_of),
        ] + (["--partition-rows", str(rows)] if rows else [])
        result = run_child(__file__, child, timeout=args.timeout, max_rss_mb=args.max_rss_mb)
        out.append({"size": data.size, **result})
        print("  " + describe_profile(out[-1]), flush=True)
    return out


def describe_profile(p: dict[str, Any]) -> str:
    if "error" in p:
        return f"phases at {p['size']:,} interactions: {p['error']}"
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in p["seconds"].items())
    return (
        f"build_features phases (one thread), {p['interactions']:,} interactions × "
        f"{p['as_of']} as-of: {steps}; total {p['total_s']:.1f} s, "
        f"peak RSS {p['peak_rss_mb']:,.0f} MB"
    )


def env_loads(measures: list[Measure]) -> list[float]:
    loads = [x for m in measures for r in m.runs for x in r.get("load_1min", [])]
    return loads or [float("nan")]


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in ("pandas", "numpy", "duckdb", "pyarrow", "featuretools", "woodwork"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    head = subprocess.run(
        ["git", "-C", str(HERE), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "stageml": f"git {head or 'unknown'}, features.py {engine_sha256()}",
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": cpus,
        "memory_gb": psutil.virtual_memory().total / 1e9,
        "versions": versions,
    }


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        help="export sizes in interactions",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 100k interactions and small subsets (about 2 minutes)",
    )
    parser.add_argument("--repeats", type=int, help="stageml runs per measurement (3; --quick: 1)")
    parser.add_argument(
        "--partition-rows",
        type=int,
        nargs="*",
        default=[],
        help="also time stageml with these FeatureConfig.partition_rows",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="also time build_features phase by phase (12 as-of dates)",
    )
    parser.add_argument(
        "--reference-buyers",
        type=int,
        default=200,
        help="buyers the per-row reference loop runs on (then extrapolated)",
    )
    parser.add_argument(
        "--featuretools-buyers",
        type=int,
        default=2000,
        help="buyers featuretools runs on (then extrapolated)",
    )
    parser.add_argument(
        "--check-buyers",
        type=int,
        default=100,
        help="buyers of the correctness check of all engines against stageml",
    )
    parser.add_argument(
        "--baseline",
        help="also time stageml at this git revision (e.g. main), alternating with the "
        "current tree, and compare their outputs column by column",
    )
    parser.add_argument(
        "--engines",
        nargs="*",
        choices=ENGINES[1:],
        default=list(ENGINES[1:]),
        help="other engines to time (default all; none: stageml and the baseline only)",
    )
    parser.add_argument(
        "--as-of-counts",
        type=int,
        nargs="+",
        default=list(AS_OF_COUNTS),
        help="numbers of weekly as-of dates to time (default 1 and 12)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--out", type=Path, help="JSON results (default results/features.json)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per child")
    parser.add_argument(
        "--max-rss-mb",
        type=float,
        default=14_000,
        help="stop a child whose RSS passes this (protects a shared machine)",
    )
    parser.add_argument(
        "--child", choices=[*ENGINES, "baseline", "check", "phases"], help=argparse.SUPPRESS
    )
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--vocab", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--as-of-count", type=int, default=12, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = [100_000]
        args.reference_buyers, args.featuretools_buyers, args.check_buyers = 10, 30, 10
    args.repeats = args.repeats or (1 if args.quick else 3)
    # A smoke test must not overwrite the real results.
    name = "features-quick.json" if args.quick else "features.json"
    args.out = args.out or HERE / "results" / name
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
