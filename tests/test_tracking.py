"""MLflow: logged run, pyfunc from the registry in a fresh process, champion/challenger."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from stageml.config import TouchConfig
from stageml.data.validate import Export
from stageml.errors import ModelError
from stageml.models.train import TrainingResult
from stageml.tracking.lifts import lift_section
from stageml.tracking.report import render_report
from stageml.tracking.runs import champion_version, log_training, promote, rollback

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, export: Export, trained: TrainingResult
) -> tuple[str, list]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    runs = [log_training(trained, export, tracking_uri=uri) for _ in range(2)]
    return uri, runs


def test_first_version_is_champion_and_equal_one_also(registry) -> None:
    uri, (first, second) = registry
    assert first.alias == "champion" and first.comparison["reason"] == "no champion yet"
    # Same model on the same backtest: at least as good, so it takes over.
    assert second.alias == "champion"
    scores = second.comparison["scores"]
    assert scores["challenger"] == scores["champion"]
    assert champion_version(tracking_uri=uri) == second.version


def test_run_logs_params_metrics_plots_and_data(registry) -> None:
    uri, (first, _) = registry
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(first.run_id)
    assert run.data.params["stages"] == "alerted,engaged,evaluating,committed,purchased"
    assert "horizon" in run.data.params and "stage.num_leaves" in run.data.params
    assert run.data.metrics["stage.macro_f1"] > run.data.metrics["stage.baseline_majority.macro_f1"]
    assert run.data.metrics["time.compile_stage_s"] > 0
    assert run.data.metrics["time.compile_inflection_s"] > 0
    artifacts = {a.path for a in client.list_artifacts(first.run_id)} | {
        a.path for a in client.list_artifacts(first.run_id, "plots")
    }
    for expected in (
        "data_description.json",
        "vocabulary.json",
        "plots/confusion_matrix.png",
        "plots/reliability.png",
        "plots/importance_stage.png",
    ):
        assert expected in artifacts


def test_the_report_and_run_hold_the_stage_touch_lift_table(registry) -> None:
    uri, (first, _) = registry
    section = first.report_html.split("<h2>Next touches: lift by stage and touch</h2>")[1]
    section = section.split("<h2>")[0]
    assert "model-based counterfactual. Caution:" in section
    assert "<img alt='lift heat map' src='data:image/png;base64," in section
    client = mlflow.MlflowClient(tracking_uri=uri)
    logged = json.loads(
        Path(client.download_artifacts(first.run_id, "next_touch/lift_table.json")).read_text()
    )
    assert logged["method"] == "counterfactual"
    assert logged["touches"] == list(TouchConfig().activities)
    assert set(logged["stages"]) <= {"alerted", "engaged", "evaluating", "committed"}
    lift = np.asarray(logged["lift"])
    assert lift.shape == (len(logged["stages"]), 7) and np.abs(lift).max() > 0.001
    # The report's table is the logged one, in points.
    for stage, row in zip(logged["stages"], lift, strict=True):
        cells = "".join(f"<td>{100 * v:+.1f}</td>" for v in row)
        assert f"<tr><td>{stage}</td>{cells}</tr>" in section
    assert "next_touch/lift_heatmap.png" in {
        a.path for a in client.list_artifacts(first.run_id, "next_touch")
    }
    assert client.get_run(first.run_id).data.metrics["time.touch_lifts_s"] > 0


def test_a_run_naming_no_touches_says_so(trained: TrainingResult, export: Export) -> None:
    params = trained.model.params.model_copy(update={"touches": TouchConfig(activities=())})
    result = dataclasses.replace(trained, model=dataclasses.replace(trained.model, params=params))
    section = lift_section(result, export, trial=None)
    assert section.table is None and section.heatmap is None
    report = render_report(result, {}, touches=section)
    assert "No lift table: touches.activities is empty" in report


def test_champion_in_fresh_process_predicts_same_numbers(
    registry, export_dir: Path, trained: TrainingResult, tmp_path: Path
) -> None:
    uri, _ = registry
    as_of = str(trained.split.test[0])
    script = f"""
import mlflow, pandas as pd
from stageml.data.validate import load_export
mlflow.set_tracking_uri({uri!r})
model = mlflow.pyfunc.load_model("models:/stageml@champion")
ex = load_export({str(export_dir)!r})
cols = ["buyer_id", "occurred_at", "activity", "channel", "direction"]
out = model.predict(ex.interactions[cols], params={{"as_of": {as_of!r}}})
bundle = model.unwrap_python_model().model
# The compiled trees registered with the model are the ones predicting here.
for estimator in (bundle.stage_model, bundle.inflection_model):
    assert estimator.compiled_.matches(estimator) and estimator.compiled_._predictors
out.to_parquet({str(tmp_path / "out.parquet")!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    fresh = pd.read_parquet(tmp_path / "out.parquet")
    from stageml.data.validate import load_export

    ex = load_export(export_dir)
    here = trained.model.predict(ex.interactions, [as_of])
    # The pyfunc got no buyers table, so compare with an in-process run without one too.
    pd.testing.assert_frame_equal(
        fresh.reset_index(drop=True), here.reset_index(drop=True), check_dtype=False
    )


def test_promote_and_rollback_move_the_alias(registry) -> None:
    uri, (first, second) = registry
    promote(first.version, tracking_uri=uri)
    assert champion_version(tracking_uri=uri) == first.version
    assert rollback(tracking_uri=uri) == second.version
    assert champion_version(tracking_uri=uri) == second.version
    with pytest.raises(ModelError, match="no version 99"):
        promote(99, tracking_uri=uri)


def test_comparison_is_logged(registry) -> None:
    uri, (_, second) = registry
    client = mlflow.MlflowClient(tracking_uri=uri)
    path = client.download_artifacts(second.run_id, "champion_comparison.json")
    logged = json.loads(Path(path).read_text())
    assert logged["promote"] is True and logged["champion_version"] == 1


def test_a_model_pickled_by_a_retired_module_asks_for_a_retrain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from mlflow.pyfunc import PythonModel

    from stageml.tracking.runs import load_bundle

    retired = types.ModuleType("stageml.retired_layout")

    class OldModel(PythonModel):
        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
            return model_input

    OldModel.__module__, OldModel.__qualname__ = retired.__name__, "OldModel"
    retired.OldModel = OldModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, retired.__name__, retired)
    mlflow.pyfunc.save_model(tmp_path / "old", python_model=OldModel())
    monkeypatch.delitem(sys.modules, retired.__name__)

    with pytest.raises(ModelError, match="stageml.retired_layout.*retrain"):
        load_bundle(str(tmp_path / "old"), f"sqlite:///{tmp_path / 'mlflow.db'}")
