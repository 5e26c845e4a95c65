"""The analyst and data-scientist notebooks run end to end on a small registry."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from stageml.data.validate import Export
from stageml.models.train import TrainingResult
from stageml.tracking.runs import log_training

pytestmark = pytest.mark.slow
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def registry_uri(
    tmp_path_factory: pytest.TempPathFactory, exit_export: Export, exit_trained: TrainingResult
) -> str:
    # A stage-aware model with exits and horizons: the notebooks show them where a model has
    # them, and the next-touch cell passes the stage history on to its pseudo-buyers.
    uri = f"sqlite:///{tmp_path_factory.mktemp('nb') / 'mlflow.db'}"
    log_training(exit_trained, exit_export, tracking_uri=uri)
    return uri


@pytest.mark.parametrize("name", ["analyst.ipynb", "runs.ipynb"])
def test_notebook_executes(
    name: str, registry_uri: str, exit_export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_uri)
    monkeypatch.setenv("STAGEML_DATA", str(exit_export_dir))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows plots
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in book.cells if cell.cell_type == "code"), (
        "store notebooks without outputs"
    )
    NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    errors = [
        o
        for c in book.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors
    images = [
        o
        for c in book.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert images, "the notebook should show its plots"
