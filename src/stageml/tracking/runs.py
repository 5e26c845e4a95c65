"""MLflow in one place: runs, the pyfunc model, the registry and its aliases.

Default store: a SQLite file ``mlflow.db`` in the project folder (no server; ``mlflow ui
--backend-store-uri sqlite:///mlflow.db`` browses it). ``MLFLOW_TRACKING_URI`` or the
CLI's ``--tracking-uri`` override it.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel
from mlflow.tracking import MlflowClient

import stageml
from stageml.data.validate import RECORDED_AT, Export
from stageml.errors import ModelError
from stageml.explain.plots import global_figures
from stageml.models.bundle import StageModel
from stageml.models.compiled import CompileError, compile_estimator
from stageml.models.estimators import free_threads
from stageml.models.metrics import inflection_metrics, stage_metrics
from stageml.models.train import TrainingResult
from stageml.tracking.lifts import lift_section, log_lift_table
from stageml.tracking.plots import calibration_curves, reliability_figure, training_figures
from stageml.tracking.report import render_report

CHAMPION = "champion"
CHALLENGER = "challenger"
_HISTORY_TAG = "champion_history"
INPUT_COLUMNS = ("buyer_id", "occurred_at", "activity", "channel", "direction")


def resolve_tracking_uri(uri: str | None = None, project_dir: str | Path = ".") -> str:
    """CLI option, else ``MLFLOW_TRACKING_URI``, else SQLite in the project folder."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(project_dir).resolve() / 'mlflow.db'}"


class StageMLPyfunc(PythonModel):
    """Raw interactions (+ buyer attribute columns) and an as-of instant in, scores out.

    The as-of instant comes from an ``as_of`` column (several values are allowed) or the
    ``as_of`` param. Buyer attributes may ride along as extra columns named as in the
    training ``buyers`` table (first value per buyer is used). A model with stage-history
    features also reads the CRM's recorded changes from the same frame: rows with a
    ``stage`` are stage changes entered at their ``occurred_at`` (logged at an optional
    ``recorded_at``), not interactions.
    """

    def load_context(self, context: Any) -> None:
        """Unpickle the trained bundle shipped as an artifact."""
        with open(context.artifacts["bundle"], "rb") as handle:
            self.model: StageModel = pickle.load(handle)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Score every buyer with history before the as-of instant(s)."""
        return predict_raw(self.model, model_input, (params or {}).get("as_of"))


def predict_raw(model: StageModel, frame: pd.DataFrame, as_of: Any = None) -> pd.DataFrame:
    """Apply the pyfunc contract, usable without MLflow (Spark workers call this too)."""
    changes = frame["stage"].notna() if "stage" in frame.columns else pd.Series(False, frame.index)
    history = None
    if changes.any():
        history = pd.DataFrame(
            {
                "buyer_id": pd.array(frame.loc[changes, "buyer_id"], dtype="string"),
                "stage": pd.array(frame.loc[changes, "stage"], dtype="string"),
                "entered_at": _utc_naive(frame.loc[changes, "occurred_at"]),
            }
        )
        if RECORDED_AT in frame.columns:
            history[RECORDED_AT] = _utc_naive(frame.loc[changes, RECORDED_AT])
        frame = frame[~changes]
    interactions = frame[[c for c in INPUT_COLUMNS if c in frame.columns]].copy()
    stamps = pd.to_datetime(interactions["occurred_at"], utc=True)
    interactions["occurred_at"] = stamps.dt.tz_localize(None).astype("datetime64[us]")
    if "as_of" in frame.columns:
        instants = list(pd.to_datetime(frame["as_of"], utc=True).dt.tz_localize(None).unique())
    elif as_of is not None:
        instants = [pd.Timestamp(as_of)]
    else:
        raise ModelError("no as-of instant: pass an 'as_of' column or params={'as_of': ...}")
    attributes = [a for a in getattr(model.vocabulary, "attributes", {}) if a in frame.columns]
    buyers = frame[["buyer_id", *attributes]].drop_duplicates("buyer_id") if attributes else None
    return model.predict(interactions, instants, buyers, stage_history=history)


def _utc_naive(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values.reset_index(drop=True), utc=True).dt.tz_localize(None)
    return np.asarray(stamps.astype("datetime64[us]"))


@dataclass(frozen=True)
class RegisteredRun:
    """Where a training run ended up."""

    run_id: str
    model_uri: str
    version: int
    alias: str
    comparison: dict[str, Any]
    report_html: str


@contextmanager
def _tracking(uri: str) -> Iterator[MlflowClient]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    finally:
        mlflow.set_tracking_uri(previous)


def _flat_params(result: TrainingResult) -> dict[str, Any]:
    params = result.model.params
    flat: dict[str, Any] = {
        "stages": ",".join(params.stages),
        "seed": params.seed,
        "horizon": str(params.labels.horizon),
        "label_delay": str(params.labels.label_delay),
        "windows": ",".join(str(w) for w in params.features.windows),
        "trend_window": str(params.features.trend_window),
        "top_activities": params.features.top_activities,
        "last_activities": params.features.last_activities,
        "snapshot_every": str(params.snapshots.every),
        "class_weight": str(params.train.class_weight),
        "calibration": params.train.calibration,
        "n_features": len(result.model.feature_names),
    }
    for task in ("stage", "inflection", "inflection_fit"):
        for key, value in getattr(params.train, task).model_dump().items():
            flat[f"{task}.{key}"] = value
    flat.update({f"split.{k}": v for k, v in result.split.describe().items()})
    return flat


def run_figures(result: TrainingResult, export: Export) -> dict[str, Figure]:
    """Draw standard training figures plus global SHAP views on a bounded sample of test rows."""
    model = result.model
    figures = training_figures(
        result.confusion,
        calibration_curves(model, result.test_frame),
        model.stage_model,
        model.inflection_model,
        model.stages,
    )
    figures["reliability_by_period"] = reliability_figure(
        result.reliability_by_period, "Inflection by period (calibrated, can advance)"
    )
    figures.update(global_figures(model, result.test_frame, sample=2000, seed=model.params.seed))
    return figures


def log_training(
    result: TrainingResult,
    export: Export,
    *,
    tracking_uri: str,
    experiment: str = "stageml",
    extra_artifacts: dict[str, Path] | None = None,
    trial: pd.DataFrame | None = None,
) -> RegisteredRun:
    """Log params, metrics, data description, plots and the pyfunc; register and alias.

    The report and the run also hold the stage x touch lift table, estimated as next-touch
    does: by a T-learner on ``trial`` (the export's randomised trial log) when given, else
    by the model-based counterfactual.
    """
    model = result.model
    name = model.params.registry.name
    with _tracking(tracking_uri) as client:
        mlflow.set_experiment(experiment)
        with mlflow.start_run() as run:
            mlflow.log_params(_flat_params(result))
            mlflow.log_metrics({k: v for k, v in result.metrics.items() if np.isfinite(v)})
            mlflow.log_metrics({f"time.{k}": v for k, v in result.timings.items()})
            mlflow.log_dict(result.data_description, "data_description.json")
            mlflow.log_dict(result.metrics, "metrics.json")
            mlflow.log_dict(model.vocabulary.to_dict(), "vocabulary.json")  # type: ignore[attr-defined]
            mlflow.log_dict(
                {
                    "reliability": result.reliability,
                    "reliability_by_period": result.reliability_by_period,
                    "confusion": result.confusion.tolist(),
                },
                "curves.json",
            )
            figures = run_figures(result, export)
            for stem, fig in figures.items():
                mlflow.log_figure(fig, f"plots/{stem}.png")
            report = render_report(result, figures, touches=lift_section(result, export, trial))
            mlflow.log_text(report, "report.html")
            for artifact_path, file in (extra_artifacts or {}).items():
                mlflow.log_artifact(str(file), artifact_path)
            info = _log_pyfunc(model, export, name)
            version = int(info.registered_model_version)
            comparison = _compare_with_champion(client, name, result, export)
            alias = CHAMPION if comparison["promote"] else CHALLENGER
            mlflow.log_dict(comparison, "champion_comparison.json")
            mlflow.set_tag("stageml.alias", alias)
        if alias == CHAMPION:
            _set_champion(client, name, version)
        else:
            client.set_registered_model_alias(name, CHALLENGER, str(version))
    return RegisteredRun(
        run.info.run_id, f"models:/{name}/{version}", version, alias, comparison, report
    )


def compile_bundle(model: StageModel) -> dict[str, float]:
    """Compile both boosters to native code in place (``compiled_``); returns timings.

    Without a working toolchain the model stays uncompiled (a warning says why) and
    predicts with LightGBM, as it would with stale compiled trees.
    """
    timings: dict[str, float] = {}
    for task in ("stage", "inflection"):
        estimator = getattr(model, f"{task}_model")
        clock = time.perf_counter()
        try:
            estimator.compiled_ = compile_estimator(estimator, threads=free_threads())
        except CompileError as exc:
            warnings.warn(f"registering the {task} model uncompiled: {exc}", stacklevel=2)
            continue
        timings[f"compile_{task}_s"] = time.perf_counter() - clock
    return timings


def _log_pyfunc(model: StageModel, export: Export, name: str) -> Any:
    if model.params.registry.compile:
        mlflow.log_metrics({f"time.{k}": v for k, v in compile_bundle(model).items()})
    sample_buyers = export.interactions["buyer_id"].drop_duplicates().head(3)
    example = export.interactions[export.interactions["buyer_id"].isin(sample_buyers)]
    example = example[[c for c in INPUT_COLUMNS if c in example.columns]].reset_index(drop=True)
    as_of = str(example["occurred_at"].max() + pd.Timedelta(days=1))
    if model.params.features.stage_history and export.stage_history is not None:
        changes = export.stage_history[export.stage_history["buyer_id"].isin(sample_buyers)]
        changes = changes.rename(columns={"entered_at": "occurred_at"})
        example = pd.concat([example, changes], ignore_index=True)
    output = predict_raw(model, example, as_of)
    signature = infer_signature(example, output, params={"as_of": as_of})
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "stageml_model.pkl"
        bundle.write_bytes(pickle.dumps(model))
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=StageMLPyfunc(),
            artifacts={"bundle": str(bundle)},
            signature=signature,
            input_example=(example, {"as_of": as_of}),
            registered_model_name=name,
            pip_requirements=[f"stageml=={stageml.__version__}"],
            await_registration_for=0,
        )


def load_bundle(model_uri: str, tracking_uri: str) -> StageModel:
    """Load the StageModel inside a registered pyfunc (``models:/stageml@champion`` etc.)."""
    with _tracking(tracking_uri):
        try:
            loaded = mlflow.pyfunc.load_model(model_uri)
        except MlflowException as exc:
            raise ModelError(
                f"cannot load model {model_uri!r} from {tracking_uri}: {exc.message}. "
                "Fix: train one with 'stageml train' or pass an existing --model URI"
            ) from exc
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("stageml."):
                raise
            raise ModelError(
                f"model {model_uri!r} was saved by an older stageml whose module {exc.name!r} "
                "no longer exists (the package was regrouped into data/, features/, models/, "
                "explain/, scoring/, tracking/). Fix: retrain and register it with "
                "'stageml train', or score it with the stageml version that trained it"
            ) from exc
    bundle: StageModel = loaded.unwrap_python_model().model
    return bundle


def resolve_model(model_uri: str, tracking_uri: str) -> tuple[StageModel, str]:
    """Load the bundle and its registry version ('' when the URI is not a registered model)."""
    bundle = load_bundle(model_uri, tracking_uri)
    version = ""
    if model_uri.startswith("models:/"):
        name, _, ref = model_uri.removeprefix("models:/").partition("@")
        with _tracking(tracking_uri) as client:
            if ref:
                version = str(client.get_model_version_by_alias(name, ref).version)
            else:
                version = name.partition("/")[2]
    return bundle, version


def _compare_with_champion(
    client: MlflowClient, name: str, result: TrainingResult, export: Export
) -> dict[str, Any]:
    """Score the current champion on this run's test period and compare headline metrics."""
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return {"promote": True, "reason": "no champion yet"}
    previous = load_bundle(f"models:/{name}@{CHAMPION}", mlflow.get_tracking_uri())
    if previous.stages != result.model.stages:
        return {
            "promote": False,
            "champion_version": int(champion.version),
            "reason": "the champion predicts another stage taxonomy; promote by hand",
        }
    test = result.test_frame
    theirs = previous.predict(
        export.interactions,
        sorted(test["as_of"].unique()),
        export.buyers,
        stage_history=export.stage_history,
    )
    merged = test.merge(theirs, on=["buyer_id", "as_of"], suffixes=("", "_champion"))
    ours = result.model.predict_features(merged)
    scores: dict[str, dict[str, float]] = {}
    for who, frame in (("challenger", ours), ("champion", merged)):
        probs = frame[[f"p_{s}" for s in previous.stages]].to_numpy()
        staged = merged["stage_index"].notna().to_numpy()
        # Buyers who can still advance: the final stage's label is 0 by construction.
        infl = (merged["inflection"].notna() & merged["can_advance"].fillna(False)).to_numpy(bool)
        scores[who] = {
            "stage.macro_f1": stage_metrics(
                merged.loc[staged, "stage_index"].astype(int).to_numpy(),
                probs[staged],
                previous.stages,
            )["macro_f1"],
            "inflection.can_advance.roc_auc": inflection_metrics(
                merged.loc[infl, "inflection"].astype(int).to_numpy(),
                frame["inflection_probability"].to_numpy()[infl],
            )["roc_auc"],
        }
    tolerance = result.model.params.registry.tolerance
    promote = all(
        scores["challenger"][k] >= scores["champion"][k] - tolerance for k in scores["champion"]
    )
    return {
        "promote": bool(promote),
        "champion_version": int(champion.version),
        "tolerance": tolerance,
        "scores": scores,
        "rows": int(len(merged)),
        "reason": "at least as good as the champion"
        if promote
        else "worse than the champion beyond tolerance",
    }


def _history(client: MlflowClient, name: str) -> list[int]:
    tags = client.get_registered_model(name).tags
    return [int(v) for v in json.loads(tags.get(_HISTORY_TAG, "[]"))]


def _set_champion(client: MlflowClient, name: str, version: int) -> None:
    history = _history(client, name)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps([*history, version]))


def promote(version: int, *, tracking_uri: str, name: str = "stageml") -> None:
    """Make ``version`` the champion by hand (kept in the history for rollback)."""
    with _tracking(tracking_uri) as client:
        try:
            client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise ModelError(
                f"model '{name}' has no version {version}. Fix: pick one listed by "
                "'mlflow ui' or the training output"
            ) from exc
        _set_champion(client, name, version)


def rollback(*, tracking_uri: str, name: str = "stageml") -> int:
    """Give the champion alias back to the previous champion; returns that version."""
    with _tracking(tracking_uri) as client:
        try:
            history = _history(client, name)
        except MlflowException as exc:
            raise ModelError(
                f"no registered model '{name}' at {tracking_uri}. Fix: check --tracking-uri, "
                "or train and register a model first ('stageml train')"
            ) from exc
        if len(history) < 2:
            raise ModelError(
                f"model '{name}' has no earlier champion to roll back to. Fix: use "
                "'stageml promote --version N' to choose one"
            )
        previous = history[-2]
        client.set_registered_model_alias(name, CHAMPION, str(previous))
        client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history[:-1]))
        return previous


def champion_version(*, tracking_uri: str, name: str = "stageml") -> int | None:
    """Version currently holding the champion alias, if any."""
    with _tracking(tracking_uri) as client:
        try:
            return int(client.get_model_version_by_alias(name, CHAMPION).version)
        except MlflowException:
            return None


def log_next_touches(
    table: pd.DataFrame,
    figure: Figure,
    *,
    tracking_uri: str,
    method: str,
    as_of: pd.Timestamp,
    experiment: str = "stageml-next-touch",
) -> str:
    """Log one next-touch run: its stage x touch lift table and heat map; returns the run id."""
    with _tracking(tracking_uri):
        mlflow.set_experiment(experiment)
        with mlflow.start_run() as run:
            mlflow.log_params({"method": method, "as_of": str(as_of)})
            log_lift_table(table, figure, method)
    return str(run.info.run_id)
