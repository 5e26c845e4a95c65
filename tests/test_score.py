"""Local batch scoring: nothing lost, partitions agree, atomic output, trends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from stageml.errors import ContractError
from stageml.models.train import TrainingResult
from stageml.scoring.local import score_local
from stageml.scoring.trends import add_trends

pytestmark = pytest.mark.slow
AS_OF = "2026-05-01"


@pytest.fixture(scope="module")
def dirty_export(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated export as CSV, seeded with bad rows of every row-level kind."""
    folder = tmp_path_factory.mktemp("dirty")
    inter = pd.read_parquet(export_dir / "interactions.parquet")
    inter["occurred_at"] = inter["occurred_at"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    bad = pd.DataFrame(
        {
            "buyer_id": [None, "B000001", "ZZ_ALL_BAD", "ZZ_ALL_BAD", "ZZ_LATE"],
            "occurred_at": [
                "2026-01-01T00:00:00",
                "not a time",
                "garbage",
                "2026-01-01T00:00:00",
                "2026-06-20T00:00:00",
            ],
            "activity": ["site_visit", "site_visit", "site_visit", None, "site_visit"],
            "channel": ["web"] * 5,
            "direction": ["inbound", "inbound", "inbound", "inbound", "sideways"],
        }
    )
    dup = inter.head(3)
    pd.concat([inter, bad, dup], ignore_index=True).to_csv(folder / "interactions.csv", index=False)
    shutil.copy(export_dir / "buyers.parquet", folder / "buyers.parquet")
    return folder


def test_every_input_buyer_is_scored_once_or_rejected(
    dirty_export: Path, trained: TrainingResult, tmp_path: Path
) -> None:
    summary = score_local(dirty_export, trained.model, AS_OF, out=tmp_path / "scores.parquet")
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    rejects = pd.read_csv(tmp_path / "scores_rejects.csv", dtype={"buyer_id": "string"})
    raw = pd.read_csv(dirty_export / "interactions.csv", dtype={"buyer_id": "string"})
    input_buyers = set(raw["buyer_id"].dropna())
    assert scores["buyer_id"].is_unique
    buyer_level = rejects[rejects["table"] == "buyer"]
    assert set(scores["buyer_id"]).isdisjoint(buyer_level["buyer_id"])
    assert set(scores["buyer_id"]) | set(buyer_level["buyer_id"]) == input_buyers
    reasons = dict(zip(buyer_level["buyer_id"], buyer_level["reason"], strict=True))
    assert reasons["ZZ_ALL_BAD"] == "all_interaction_rows_rejected"
    row_reasons = set(rejects.loc[rejects["table"] == "interactions", "reason"])
    assert {
        "missing_buyer_id",
        "unparseable_occurred_at",
        "duplicate_interaction",
        "invalid_direction",
    } <= row_reasons
    # Accepted + rejected rows = input rows.
    n_row_rejects = int((rejects["table"] == "interactions").sum())
    assert summary["input_rows"]["interactions"] == len(raw)
    assert (
        summary["scored_buyers"] + summary["rejected_buyers"]
        == summary["input_buyers"]
        == len(input_buyers)
    )
    assert n_row_rejects == sum(
        v for k, v in summary["rejected_rows"].items() if k.startswith("interactions:")
    )
    # Rejected rows point at their row in the original file (1-based data rows).
    null_row = rejects[(rejects["reason"] == "missing_buyer_id")]["row"].iloc[0]
    assert pd.isna(raw.loc[int(null_row) - 1, "buyer_id"])
    on_disk = json.loads((tmp_path / "scores.summary.json").read_text())
    assert on_disk["model_version"] == "" and on_disk["inputs"]["interactions"]["sha256"]


def test_rejected_parquet_rows_point_into_the_file(
    dirty_export: Path, trained: TrainingResult, tmp_path: Path
) -> None:
    """Parquet inputs are numbered by the reader (row groups, no order kept): still exact."""
    folder = tmp_path / "export"
    folder.mkdir()
    raw = pd.read_csv(dirty_export / "interactions.csv", dtype=str)
    raw.to_parquet(folder / "interactions.parquet", row_group_size=5_000)
    shutil.copy(dirty_export / "buyers.parquet", folder / "buyers.parquet")
    score_local(folder, trained.model, AS_OF, out=tmp_path / "s.parquet", partition_rows=20_000)
    rejects = pd.read_csv(tmp_path / "s_rejects.csv", dtype={"buyer_id": "string"})
    rows = rejects[rejects["table"] == "interactions"]
    assert len(rows) >= 5
    for row, buyer in zip(rows["row"], rows["buyer_id"], strict=True):
        expected = raw.loc[int(row) - 1, "buyer_id"]
        assert (pd.isna(expected) and pd.isna(buyer)) or expected.strip() == buyer


def test_partitions_give_the_same_scores(
    dirty_export: Path, trained: TrainingResult, tmp_path: Path
) -> None:
    score_local(dirty_export, trained.model, AS_OF, out=tmp_path / "one.parquet")
    summary = score_local(
        dirty_export, trained.model, AS_OF, out=tmp_path / "many.csv", partition_rows=20_000
    )
    assert summary["partitions"] > 1
    one = pd.read_parquet(tmp_path / "one.parquet").sort_values("buyer_id").reset_index(drop=True)
    many = (
        pd.read_csv(tmp_path / "many.csv", dtype={"buyer_id": "string"})
        .sort_values("buyer_id")
        .reset_index(drop=True)
    )
    assert list(one["buyer_id"]) == list(many["buyer_id"])
    assert list(one["stage"]) == list(many["stage"])
    pd.testing.assert_series_equal(
        one["inflection_probability"], many["inflection_probability"], rtol=1e-9, check_names=False
    )


def test_failed_run_leaves_no_output(
    dirty_export: Path, trained: TrainingResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stageml.scoring.local as score

    calls = {"n": 0}
    real = score.score_tables

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom half-way")
        return real(*args, **kwargs)

    monkeypatch.setattr(score, "score_tables", failing)  # in-process: one worker
    with pytest.raises(RuntimeError, match="half-way"):
        score_local(
            dirty_export,
            trained.model,
            AS_OF,
            out=tmp_path / "s.parquet",
            partition_rows=20_000,
            workers=1,
        )
    assert list(tmp_path.iterdir()) == []


def test_worker_errors_reach_the_caller_whole(
    dirty_export: Path, trained: TrainingResult, tmp_path: Path
) -> None:
    """A contract error raised inside a worker process keeps its message; no output."""
    broken = tmp_path / "broken"
    broken.mkdir()
    inter = pd.read_csv(dirty_export / "interactions.csv", dtype=str)
    inter.drop(columns=["activity"]).to_csv(broken / "interactions.csv", index=False)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ContractError, match="activity") as caught:
        score_local(
            broken, trained.model, AS_OF, out=out / "s.parquet", partition_rows=20_000, workers=2
        )
    assert "interactions.csv" in caught.value.file and caught.value.fix
    assert list(out.iterdir()) == []


def test_trends_against_a_previous_run() -> None:
    stages = ("alerted", "engaged", "evaluating", "committed", "purchased")
    now = pd.DataFrame(
        {
            "buyer_id": ["a", "b", "c", "d"],
            "stage": ["engaged", "engaged", "alerted", "evaluating"],
            "inflection_probability": [0.5, 0.2, 0.1, 0.3],
        }
    )
    before = pd.DataFrame(
        {
            "buyer_id": ["a", "b", "c"],
            "stage": ["alerted", "engaged", "engaged"],
            "inflection_probability": [0.2, 0.22, 0.5],
        }
    )
    out = add_trends(now, before, stages, threshold=0.05).set_index("buyer_id")
    assert list(out["stage_change"]) == ["advanced", "same", "regressed", "new"]
    assert list(out["inflection_trend"]) == ["improving", "steady", "declining", "new"]


def test_top_breaks_probability_ties_by_the_raw_score(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stageml.cli import app

    scores = pd.DataFrame(
        {
            "buyer_id": ["B1", "B2", "B3", "B4"],
            "stage": ["engaged"] * 4,
            "next_stage": ["evaluating"] * 4,
            "inflection_probability": [0.585, 0.585, 0.9, 0.2],
            "inflection_score": [0.61, 0.83, 0.95, 0.3],
        }
    )
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path)
    result = CliRunner().invoke(app, ["top", "--scores", str(path), "--n", "3"])
    assert result.exit_code == 0, result.output
    shown = [b for b in ("B1", "B2", "B3", "B4") if b in result.output]
    assert sorted(shown, key=result.output.index) == ["B3", "B2", "B1"]
    # A scores file from before the raw score existed still sorts by probability.
    scores.drop(columns="inflection_score").to_parquet(path)
    result = CliRunner().invoke(app, ["top", "--scores", str(path), "--n", "1"])
    assert result.exit_code == 0 and "B3" in result.output and "B1" not in result.output
