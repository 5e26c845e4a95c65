"""Batch scoring: every buyer of an export scored once, or rejected with a reason.

The unit of work is :func:`score_tables`: raw tables of one group of buyers in, scores and
rejects out. The local engine feeds it hash partitions read by DuckDB (so memory follows
the partition, not the export); the Spark engine feeds it buckets of buyers. Both therefore
run the same validation, features, model and reason codes.
"""

from __future__ import annotations

import itertools
import pickle
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from joblib.externals.loky import get_reusable_executor

from stageml.data.io import (
    atomic_path,
    find_table,
    fingerprint,
    write_json,
    write_table,
)
from stageml.data.validate import validate_frames
from stageml.errors import ContractError
from stageml.features.drift import psi_table
from stageml.features.stage_history import no_stage_history
from stageml.models.bundle import StageModel
from stageml.models.estimators import free_threads
from stageml.scoring.staging import count_partitions, read_part, stage_tables
from stageml.scoring.trends import add_trends, previous_path

# stage_history is read when present; models using stage-history features require it.
SCORING_TABLES = ("interactions", "buyers", "stage_history")
_DRIFT_SAMPLE_ROWS = 50_000


@dataclass
class PartitionResult:
    """What one group of buyers produced."""

    scores: pd.DataFrame
    rejects: pd.DataFrame
    input_rows: dict[str, int]
    input_buyers: int
    features_sample: pd.DataFrame = field(repr=False)


def normalise_as_of(as_of: str | pd.Timestamp) -> pd.Timestamp:
    """As-of instant as UTC-naive (the contract's convention)."""
    stamp = pd.Timestamp(as_of)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def score_tables(
    raw: Mapping[str, pd.DataFrame],
    model: StageModel,
    as_of: pd.Timestamp,
    *,
    sources: Mapping[str, str],
    reasons: int = 0,
    sample_rows: int = _DRIFT_SAMPLE_ROWS,
    seed: int = 0,
    threads: int | None = None,
) -> PartitionResult:
    """Validate, featurise, score (and explain) one group of buyers; account for each.

    ``threads`` caps the feature engine and reason codes (1 inside a worker process).
    """
    tables = {k: v for k, v in raw.items() if k in SCORING_TABLES}
    export = validate_frames(tables, sources=sources, stages=model.recorded_stages)
    history = export.stage_history
    if history is None and "stage_history" in sources:
        # The export has the table; none of its rows belong to this group's buyers.
        history = no_stage_history()
    features = model.features(
        export.interactions, [as_of], export.buyers, stage_history=history, threads=threads
    )
    scores = model.predict_features(features, threads=threads)
    if reasons > 0 and len(features):
        from stageml.explain.reasons import reason_codes

        # The stages just scored pick the class each row's reasons explain.
        predicted = pd.Index(model.stages).get_indexer(scores["stage"])
        codes = reason_codes(
            model, features, k=reasons, workers=threads, predicted=predicted
        ).reset_index(drop=True)
        scores = pd.concat(
            [scores, codes.drop(columns=[c for c in codes.columns if c in scores.columns])], axis=1
        )
    ids = raw["interactions"]["buyer_id"].astype("string").str.strip()
    ids = ids[ids.notna() & (ids != "")]
    input_buyers = pd.Index(ids.unique())
    unscored = input_buyers.difference(pd.Index(scores["buyer_id"]))
    accepted = pd.Index(export.interactions["buyer_id"].unique())
    buyer_rejects = pd.DataFrame(
        {
            "table": pd.array(["buyer"] * len(unscored), dtype="string"),
            "row": pd.array([pd.NA] * len(unscored), dtype="Int64"),
            "buyer_id": pd.array(list(unscored), dtype="string"),
            "reason": pd.array(
                np.where(
                    unscored.isin(accepted),
                    "no_interaction_before_as_of",
                    "all_interaction_rows_rejected",
                ),
                dtype="string",
            ),
        }
    )
    row_rejects = export.rejects.astype({"row": "Int64"})
    sample = (
        features.sample(n=min(sample_rows, len(features)), random_state=seed)
        if len(features)
        else features
    )
    return PartitionResult(
        scores=scores,
        rejects=pd.concat([row_rejects, buyer_rejects], ignore_index=True),
        input_rows={name: len(frame) for name, frame in tables.items()},
        input_buyers=len(input_buyers),
        features_sample=sample,
    )


def _sidecars(out: Path) -> tuple[Path, Path]:
    stem = out.with_suffix("")
    return stem.with_name(stem.name + "_rejects.csv"), stem.with_name(stem.name + ".summary.json")


def score_local(
    data: str | Path,
    model: StageModel,
    as_of: str | pd.Timestamp,
    *,
    out: str | Path,
    reasons: int = 0,
    previous: str | Path | None = None,
    model_uri: str = "",
    model_version: str = "",
    partition_rows: int | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score an export folder partition by partition; write scores, rejects and a summary.

    The export is first split on disk into partitions of buyers (one DuckDB pass, out of
    core), then partitions are scored by ``workers`` processes (default: one per core, at
    most one per partition) and written in order. Memory follows the partition size, not
    the export size. The scores file appears only when every partition succeeded (temp
    file, then rename). Returns the run summary that is also written beside the output as
    JSON.
    """
    clock = time.perf_counter()
    instant = normalise_as_of(as_of)
    sources = scoring_sources(Path(data), stage_history=model.params.features.stage_history)
    out_path = Path(out)
    n_parts = count_partitions(
        sources["interactions"], partition_rows or model.params.features.partition_rows
    )
    n_workers = min(workers or free_threads(), n_parts)
    with tempfile.TemporaryDirectory(prefix="stageml-score-") as tmp:
        staging = Path(tmp)
        # Workers start (imports, model) while this process stages the export.
        pool = _Workers(model, staging / "model.pkl", n_workers) if n_workers > 1 else None
        stage_tables(
            sources,
            previous_path(previous),
            staging,
            n_parts,
            model.params.features.engine_memory_mb,
        )
        tasks = [
            _Task(
                part=part,
                staging=staging,
                instant=instant,
                sources={k: str(v) for k, v in sources.items()},
                reasons=reasons,
                sample_rows=max(1, _DRIFT_SAMPLE_ROWS // n_parts),
                previous=previous is not None,
                model_uri=model_uri,
                model_version=str(model_version),
            )
            for part in range(n_parts)
            if (staging / "interactions" / f"{part}.arrow").exists()
        ]
        parts: list[PartitionResult] = []
        writer_state: dict[str, Any] = {}
        with atomic_path(out_path) as out_tmp:
            results = pool.run(tasks) if pool else (_score_part(t, model, None) for t in tasks)
            for done, result in enumerate(results, start=1):
                _append(out_tmp, out_path.suffix, result.scores, writer_state)
                result.scores = result.scores.head(0)
                parts.append(result)
                if progress is not None:
                    progress(done, len(tasks))
            _close(writer_state, out_tmp, out_path.suffix)
    run = ScoringRun("local", instant, sources, out_path, model_uri, str(model_version), clock)
    return finish_run(run, parts, model, n_parts)


def scoring_sources(folder: Path, *, stage_history: bool = False) -> dict[str, Path]:
    """Find the export's scoring tables; the interactions table is required.

    ``stage_history``: also the stage history, for a model with stage-history features
    (other models never read it).
    """
    wanted = [n for n in SCORING_TABLES if n != "stage_history" or stage_history]
    sources = {name: p for name in wanted if (p := find_table(folder, name)) is not None}
    if "interactions" not in sources:
        raise ContractError(
            file=str(folder),
            problem="no interactions table",
            fix="add interactions.csv or interactions.parquet to the export folder",
        )
    return sources


@dataclass(frozen=True)
class _Task:
    """One partition's work, small enough to send to a worker process."""

    part: int
    staging: Path
    instant: pd.Timestamp
    sources: dict[str, str]
    reasons: int
    sample_rows: int
    previous: bool
    model_uri: str
    model_version: str


def _score_part(task: _Task, model: StageModel, threads: int | None) -> PartitionResult:
    raw = {
        name: frame
        for name in task.sources
        if (frame := read_part(task.staging, name, task.part)) is not None
    }
    result = score_tables(
        raw,
        model,
        task.instant,
        sources=task.sources,
        reasons=task.reasons,
        sample_rows=task.sample_rows,
        seed=task.part,
        threads=threads,
    )
    scores = result.scores
    if task.previous:
        prev = read_part(task.staging, "previous", task.part)
        empty = pd.DataFrame(columns=["buyer_id", "stage", "inflection_probability"])
        scores = add_trends(
            scores,
            prev if prev is not None else empty,
            model.stages,
            model.params.scoring.trend_threshold,
        )
    scores["model_uri"] = task.model_uri
    scores["model_version"] = task.model_version
    result.scores = scores
    return result


_worker_models: dict[str, StageModel] = {}
# Each worker runs its partition on one thread; native libraries must not start more.
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _worker_model(path: str) -> StageModel:
    """Return the run's model, unpickled once per worker process (not once per task)."""
    if path not in _worker_models:
        _worker_models.clear()  # a long-lived worker keeps only the latest run's model
        with open(path, "rb") as handle:
            _worker_models[path] = pickle.load(handle)  # noqa: S301 - written by this run
    return _worker_models[path]


def _warm(path: str) -> None:
    _worker_model(path)


def _score_in_worker(task: _Task, path: str) -> PartitionResult:
    return _score_part(task, _worker_model(path), threads=1)


class _Workers:
    """Worker processes for the partitions, started before staging.

    Their start-up (imports, unpickling the model) overlaps the staging pass. loky's
    processes are spawned, not forked (forking after OpenMP or DuckDB threads ran can
    deadlock the child), and unlike multiprocessing's spawn they do not re-import the
    caller's ``__main__``, so scripts without a main guard work.
    """

    def __init__(self, model: StageModel, path: Path, workers: int) -> None:
        path.write_bytes(pickle.dumps(model))
        self.path = str(path)
        self.workers = workers
        self.executor = get_reusable_executor(max_workers=workers, timeout=300, env=ONE_THREAD)
        for _ in range(workers):
            self.executor.submit(_warm, self.path)

    def run(self, tasks: list[_Task]) -> Iterator[PartitionResult]:
        """Yield results in partition order, at most two partitions per worker in flight."""
        pending: deque[Future[PartitionResult]] = deque()
        queue = iter(tasks)
        try:
            for task in itertools.islice(queue, 2 * self.workers):
                pending.append(self.executor.submit(_score_in_worker, task, self.path))
            while pending:
                result = pending.popleft().result()
                for task in itertools.islice(queue, 1):
                    pending.append(self.executor.submit(_score_in_worker, task, self.path))
                yield result
        finally:
            for future in pending:
                future.cancel()


@dataclass(frozen=True)
class ScoringRun:
    """What a scoring run was asked for and when it began: both engines' summary header."""

    engine: str
    instant: pd.Timestamp
    sources: Mapping[str, Path]
    out: Path
    model_uri: str
    model_version: str
    started: float


def finish_run(
    run: ScoringRun, parts: list[PartitionResult], model: StageModel, n_parts: int
) -> dict[str, Any]:
    """Write the rejects and the JSON summary beside the scores; both engines end here."""
    rejects_path, summary_path = _sidecars(run.out)
    rejects = (
        pd.concat([p.rejects for p in parts], ignore_index=True)
        if parts
        else pd.DataFrame(columns=["table", "row", "buyer_id", "reason"])
    )
    write_table(rejects, rejects_path)
    summary = _summary(run, parts, rejects, model, n_parts, rejects_path)
    write_json(summary, summary_path)
    return summary


def _append(tmp: Path, suffix: str, frame: pd.DataFrame, state: dict[str, Any]) -> None:
    if suffix == ".csv":
        frame.to_csv(tmp, mode="a", header="started" not in state, index=False)
        state["started"] = True
        return
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if "writer" not in state:
        state["schema"] = table.schema
        state["writer"] = pq.ParquetWriter(tmp, table.schema)
    state["writer"].write_table(table.cast(state["schema"]))


def _close(state: dict[str, Any], tmp: Path, suffix: str) -> None:
    if "writer" in state:
        state["writer"].close()
    elif suffix == ".csv" and "started" not in state:
        tmp.write_text("")


def _summary(
    run: ScoringRun,
    parts: list[PartitionResult],
    rejects: pd.DataFrame,
    model: StageModel,
    n_parts: int,
    rejects_path: Path,
) -> dict[str, Any]:
    sample = (
        pd.concat([p.features_sample for p in parts], ignore_index=True)
        if parts
        else pd.DataFrame()
    )
    drift = (
        psi_table(model.drift_reference, sample)
        if len(sample)
        else pd.DataFrame(columns=["feature", "psi"])
    )
    threshold = model.params.scoring.drift_threshold
    by_reason = (
        rejects.groupby(["table", "reason"]).size() if len(rejects) else pd.Series(dtype=int)
    )
    scored = sum(p.input_buyers for p in parts) - int((rejects["table"] == "buyer").sum())
    return {
        "engine": run.engine,
        "as_of": str(run.instant),
        "model_uri": run.model_uri,
        "model_version": run.model_version,
        "partitions": n_parts,
        "seconds": round(time.perf_counter() - run.started, 3),
        "input_rows": {
            t: sum(p.input_rows.get(t, 0) for p in parts)
            for t in SCORING_TABLES
            if t in run.sources
        },
        "rejected_rows": {f"{t}:{r}": int(n) for (t, r), n in by_reason.items()},
        "input_buyers": sum(p.input_buyers for p in parts),
        "scored_buyers": scored,
        "rejected_buyers": int((rejects["table"] == "buyer").sum()),
        "drift_threshold": threshold,
        "drifted_features": drift[drift["psi"] > threshold].to_dict("records"),
        "inputs": {name: fingerprint(path) for name, path in run.sources.items()},
        "outputs": {"scores": str(run.out), "rejects": str(rejects_path)},
    }
