"""The command line's contract with schedulers: exit 0 ok, 2 bad input, anything else a bug.

Every command is run once on good input and once on bad input (README, "Exit codes").
Also: commands that read an export use its own params.yaml when --params is absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from stageml.cli import app
from stageml.data.validate import Export
from stageml.models.train import TrainingResult
from stageml.tracking.runs import log_training, promote
from test_importers import tiny_taobao

pytestmark = pytest.mark.slow
AS_OF = "2026-05-01"
FAST = {"n_estimators": 60, "learning_rate": 0.2, "early_stopping_rounds": 10}


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, export: Export, trained: TrainingResult
) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    for _ in range(2):
        log_training(trained, export, tracking_uri=uri)
    return uri


Case = Callable[[Path, Path, str], list[str]]


def _train_ok(tmp: Path, data: Path, uri: str) -> list[str]:
    folder = tmp / "with_params"
    shutil.copytree(data, folder)
    params = {"train": {"stage": FAST, "inflection": FAST}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return ["train", "--data", str(folder), "--tracking-uri", f"sqlite:///{tmp / 'train.db'}"]


def _rollback_ok(tmp: Path, data: Path, uri: str) -> list[str]:
    promote(1, tracking_uri=uri)
    promote(2, tracking_uri=uri)
    return ["rollback", "--tracking-uri", uri]


def _top_ok(tmp: Path, data: Path, uri: str) -> list[str]:
    scores = pd.DataFrame(
        {
            "buyer_id": ["a", "b"],
            "stage": ["engaged", "alerted"],
            "next_stage": ["evaluating", "engaged"],
            "inflection_probability": [0.4, 0.2],
        }
    )
    scores.to_parquet(tmp / "scores.parquet")
    return ["top", "--scores", str(tmp / "scores.parquet")]


def _first_buyer(data: Path) -> str:
    return str(pd.read_parquet(data / "interactions.parquet")["buyer_id"].iloc[0])


OK: dict[str, Case] = {
    "simulate": lambda t, d, u: ["simulate", "--buyers", "20", "--out", str(t / "sim")],
    "validate": lambda t, d, u: ["validate", "--data", str(d), "--rejects", str(t / "r.csv")],
    "features": lambda t, d, u: [
        "features",
        "--data",
        str(d),
        "--as-of",
        AS_OF,
        "--out",
        str(t / "f.parquet"),
    ],
    "train": _train_ok,
    "promote": lambda t, d, u: ["promote", "--version", "1", "--tracking-uri", u],
    "rollback": _rollback_ok,
    "score": lambda t, d, u: [
        "score",
        "--data",
        str(d),
        "--as-of",
        AS_OF,
        "--out",
        str(t / "s.parquet"),
        "--tracking-uri",
        u,
        "--workers",
        "1",
    ],
    "import": lambda t, d, u: [
        "import",
        "taobao",
        "--src",
        str(tiny_taobao(t / "src")),
        "--out",
        str(t / "imp"),
    ],
    "explain": lambda t, d, u: [
        "explain",
        "--data",
        str(d),
        "--as-of",
        AS_OF,
        "--buyer",
        _first_buyer(d),
        "--tracking-uri",
        u,
    ],
    "top": _top_ok,
}
BAD: dict[str, Case] = {
    "simulate": lambda t, d, u: ["simulate", "--out", str(t / "sim"), "--format", "xlsx"],
    "validate": lambda t, d, u: ["validate", "--data", str(t / "missing")],
    "features": lambda t, d, u: [
        "features",
        "--data",
        str(t / "missing"),
        "--as-of",
        AS_OF,
        "--out",
        str(t / "f.csv"),
    ],
    "train": lambda t, d, u: ["train", "--data", str(t / "missing")],
    "promote": lambda t, d, u: ["promote", "--version", "99", "--tracking-uri", u],
    "rollback": lambda t, d, u: ["rollback", "--tracking-uri", f"sqlite:///{t / 'empty.db'}"],
    "score": lambda t, d, u: [
        "score",
        "--data",
        str(t / "missing"),
        "--as-of",
        AS_OF,
        "--out",
        str(t / "s.csv"),
        "--tracking-uri",
        u,
    ],
    "import": lambda t, d, u: ["import", "nope", "--src", str(t), "--out", str(t / "imp")],
    "explain": lambda t, d, u: [
        "explain",
        "--data",
        str(d),
        "--as-of",
        AS_OF,
        "--buyer",
        "NOBODY",
        "--tracking-uri",
        u,
    ],
    "top": lambda t, d, u: ["top", "--scores", str(t / "missing.parquet")],
    "next-touch": lambda t, d, u: [
        "next-touch",
        "--data",
        str(t / "missing"),
        "--as-of",
        AS_OF,
        "--out",
        str(t / "n.csv"),
        "--tracking-uri",
        u,
    ],
}
# Good input that needs a simulated trial: run there, not twice.
OK_ELSEWHERE = {"next-touch": "test_tactics.py::test_next_touch_command_with_a_trial"}


def test_every_command_is_covered() -> None:
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}  # type: ignore[union-attr]
    assert commands == set(OK) | set(OK_ELSEWHERE) == set(BAD)


@pytest.mark.parametrize("command", sorted(OK))
def test_good_input_exits_0(command: str, tmp_path: Path, export_dir: Path, registry: str) -> None:
    result = CliRunner().invoke(app, OK[command](tmp_path, export_dir, registry))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_input_exits_2_with_a_message(
    command: str, tmp_path: Path, export_dir: Path, registry: str
) -> None:
    result = CliRunner().invoke(app, BAD[command](tmp_path, export_dir, registry))
    assert result.exit_code == 2, result.output
    # stageml's own one-paragraph message, or click's usage error; never a traceback.
    assert "error:" in result.output or "Invalid value" in result.output, result.output
    assert "Traceback" not in result.output


def test_an_unexpected_failure_is_not_exit_2(
    tmp_path: Path, export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stageml.data.validate as validate

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(validate, "load_export", broken)
    result = CliRunner().invoke(app, ["validate", "--data", str(export_dir)])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_validate_uses_the_params_beside_the_export(tmp_path: Path) -> None:
    out = tmp_path / "imp"
    imported = CliRunner().invoke(
        app, ["import", "taobao", "--src", str(tiny_taobao(tmp_path / "src")), "--out", str(out)]
    )
    assert imported.exit_code == 0, imported.output
    result = CliRunner().invoke(app, ["validate", "--data", str(out)])
    assert result.exit_code == 0, result.output
    assert f"using {out / 'params.yaml'}" in " ".join(result.output.split())
    # The defaults' taxonomy does not hold taobao's stages: --params wins when given.
    (tmp_path / "defaults.yaml").write_text("{}\n")
    default = CliRunner().invoke(
        app, ["validate", "--data", str(out), "--params", str(tmp_path / "defaults.yaml")]
    )
    assert default.exit_code == 2 and "outside the taxonomy" in default.output
