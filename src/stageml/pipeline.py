"""One function per DVC stage; the scripts in ``pipelines/`` only parse arguments and call them.

ingest → validate → snapshots → train (+ evaluate, register, report) → explain → score.
Each stage reads files written by the previous one and writes its own outputs atomically,
so DVC can cache and skip any stage whose inputs and params did not change.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from stageml.config import Params
from stageml.data.io import TABLES, atomic_path, find_table, read_table, write_json, write_table
from stageml.data.validate import Export, load_export, write_rejects
from stageml.errors import ConfigError
from stageml.models.bundle import StageModel
from stageml.models.train import TrainingData, TrainingResult, fit, prepare_training


def _pickle(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(obj))


def _unpickle(path: Path) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)


def ingest(params: Params, out: Path) -> None:
    """Simulate an export, or copy a real one from ``data.source``, into ``out``."""
    if params.data.source == "simulate":
        from stageml.data.simulate import simulate_to_folder

        simulate_to_folder(
            params.data.simulate_buyers,
            seed=params.seed,
            out=out,
            stages=params.stages,
            exits=params.exits,
        )
        return
    source = Path(params.data.source)
    if not source.is_dir():
        raise ConfigError(
            f"data.source: {source} is not a folder. "
            "Fix: 'simulate' or a folder holding a CRM export"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        found = find_table(source, name)
        if found is not None:
            shutil.copyfile(found, out / found.name)


def validate(params: Params, data: Path, out: Path) -> Export:
    """Write the validated tables as Parquet, the rejects and the row accounting."""
    export = load_export(data, stages=params.recorded_stages, require_stage_history=True)
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        frame = getattr(export, name)
        if frame is not None:
            write_table(frame, out / f"{name}.parquet")
    write_rejects(export, out / "rejects.csv")
    write_json(
        {"reports": [r.__dict__ for r in export.reports], "warnings": list(export.warnings)},
        out / "validation.json",
    )
    return export


def snapshots(params: Params, data: Path, out: Path) -> TrainingData:
    """Training snapshots (features + labels) and their metadata."""
    prepared = prepare_training(load_export(data, stages=params.recorded_stages), params)
    out.mkdir(parents=True, exist_ok=True)
    write_table(prepared.snapshots, out / "snapshots.parquet")
    meta = TrainingData(
        snapshots=prepared.snapshots.head(0),
        vocabulary=prepared.vocabulary,
        split=prepared.split,
        description=prepared.description,
        seconds=prepared.seconds,
    )
    _pickle(meta, out / "meta.pkl")
    return prepared


def train(
    params: Params, data: Path, snapshots_dir: Path, out: Path, *, tracking_uri: str
) -> TrainingResult:
    """Fit, log to MLflow, register; write model, metrics, plot data and the HTML report."""
    from stageml.tactics.next_touch import export_trial
    from stageml.tracking.runs import log_training

    meta: TrainingData = _unpickle(snapshots_dir / "meta.pkl")
    meta.snapshots = read_table(snapshots_dir / "snapshots.parquet")
    result = fit(meta, params)
    export = load_export(data, stages=params.recorded_stages)
    registered = log_training(
        result,
        export,
        tracking_uri=tracking_uri,
        trial=export_trial(data, params.touches.activities),
    )
    out.mkdir(parents=True, exist_ok=True)
    _pickle(result.model, out / "model.pkl")
    write_json({k: v for k, v in result.metrics.items()}, out / "metrics.json")
    write_json(
        {
            "run_id": registered.run_id,
            "model_uri": registered.model_uri,
            "alias": registered.alias,
            "comparison": registered.comparison,
        },
        out / "registry.json",
    )
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    curve = result.reliability["calibrated"]
    write_table(
        pd.DataFrame({"predicted": curve["predicted"], "observed": curve["observed"]}),
        plots / "reliability.csv",
    )
    stages = list(params.stages)
    pairs = [
        (stages[i], stages[j])
        for i in range(len(stages))
        for j in range(len(stages))
        for _ in range(int(result.confusion[i, j]))
    ]
    write_table(pd.DataFrame(pairs, columns=["actual", "predicted"]), plots / "confusion.csv")
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(registered.report_html)
    return result


def explain(
    params: Params, model_path: Path, snapshots_dir: Path, out: Path, *, k: int = 3
) -> None:
    """Global SHAP figures and reason codes for the latest snapshot's buyers."""
    from stageml.explain.plots import global_figures
    from stageml.explain.reasons import reason_codes

    model: StageModel = _unpickle(model_path)
    snaps = read_table(snapshots_dir / "snapshots.parquet")
    latest = snaps[snaps["as_of"] == snaps["as_of"].max()].reset_index(drop=True)
    out.mkdir(parents=True, exist_ok=True)
    for stem, fig in global_figures(model, latest, sample=2000, seed=params.seed).items():
        with atomic_path(out / f"{stem}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    codes = reason_codes(model, latest, k=k)
    write_table(
        pd.concat([latest[["buyer_id", "as_of"]], codes.reset_index(drop=True)], axis=1),
        out / "reasons.csv",
    )


def score(
    params: Params, data: Path, model_path: Path, out: Path, *, reasons: int = 3
) -> dict[str, Any]:
    """Score the export as of ``data.score_as_of`` (default: the end of the data)."""
    from stageml.scoring.local import score_local

    model: StageModel = _unpickle(model_path)
    as_of = params.data.score_as_of
    if as_of is None:
        interactions = read_table(find_table(data, "interactions"))  # type: ignore[arg-type]
        as_of = (
            pd.to_datetime(interactions["occurred_at"], utc=True, format="ISO8601")
            .max()
            .tz_localize(None)
            .ceil("D")
        )
    return score_local(data, model, as_of, out=out, reasons=reasons, model_uri=str(model_path))
