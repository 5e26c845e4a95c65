"""Shared fixtures: tests import helpers from this folder (reference implementations)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from stageml.config import Params  # noqa: E402
from stageml.data.second_world import STAGES, simulate_second_world  # noqa: E402
from stageml.data.simulate import simulate, write_export  # noqa: E402
from stageml.data.validate import Export, load_export  # noqa: E402
from stageml.models.train import TrainingResult, train  # noqa: E402

FAST = {"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20}


def small_params() -> Params:
    base = Params()
    train_cfg = base.train.model_copy(
        update={
            "stage": base.train.stage.model_copy(update=FAST),
            "inflection": base.train.inflection.model_copy(update=FAST),
        }
    )
    return base.model_copy(update={"train": train_cfg})


EXITS = ("lost", "disqualified")
HORIZONS = tuple(pd.Timedelta(days=d) for d in (7, 30, 90))


def exit_params() -> Params:
    """The small params with exits, stage-history features and horizons, as in params.yaml."""
    base = small_params()
    features = base.features.model_copy(update={"stage_history": True})
    labels = base.labels.model_copy(update={"horizons": HORIZONS})
    return base.model_copy(update={"exits": EXITS, "features": features, "labels": labels})


@pytest.fixture(scope="session")
def exit_export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sim_exits")
    write_export(simulate(1500, seed=11, exits=EXITS), folder)
    return folder


@pytest.fixture(scope="session")
def exit_export(exit_export_dir: Path) -> Export:
    return load_export(exit_export_dir, stages=exit_params().recorded_stages)


@pytest.fixture(scope="session")
def exit_trained(exit_export: Export) -> TrainingResult:
    return train(exit_export, exit_params())


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sim")
    write_export(simulate(1500, seed=11), folder)
    return folder


@pytest.fixture(scope="session")
def export(export_dir: Path) -> Export:
    return load_export(export_dir)


@pytest.fixture(scope="session")
def trained(export: Export) -> TrainingResult:
    return train(export, small_params())


@pytest.fixture(scope="session")
def trained_second(tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    """The second simulated world (four stages, another vocabulary, later records)."""
    folder = tmp_path_factory.mktemp("second")
    write_export(simulate_second_world(1500, seed=11), folder)
    params = small_params().model_copy(update={"stages": STAGES})
    return train(load_export(folder, stages=STAGES), params)
