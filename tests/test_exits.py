"""Terminal exits: simulated, validated, labelled, and predicted beside the inflection."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from conftest import EXITS
from stageml.cli import app
from stageml.config import Params
from stageml.data.simulate import simulate
from stageml.data.validate import Export
from stageml.errors import ContractError
from stageml.explain.contributions import contributions
from stageml.explain.reasons import reason_codes, reason_table
from stageml.features.stage_history import STAGE_COLUMNS
from stageml.models.train import TrainingResult
from stageml.scoring.local import score_local, score_tables
from stageml.tracking.runs import predict_raw


def test_exits_must_not_reuse_stage_names() -> None:
    with pytest.raises(ValueError, match="not stage names"):
        Params(exits=("lost", "purchased"))
    assert Params(exits=EXITS).recorded_stages[-2:] == EXITS


def test_simulated_exits_close_quiet_buyers_and_leave_other_tables_alone() -> None:
    plain, closed = simulate(400, seed=3), simulate(400, seed=3, exits=EXITS)
    for name in ("interactions", "buyers", "truth"):
        pd.testing.assert_frame_equal(getattr(plain, name), getattr(closed, name))
    history = closed.stage_history
    exits = history[history["stage"].isin(EXITS)]
    assert len(exits) > 20 and set(exits["stage"]) == set(EXITS)
    quiet = closed.truth.groupby("buyer_id")["quiet_at"].first()
    went = quiet.reindex(exits["buyer_id"]).to_numpy()
    # Only buyers who went quiet are closed, 10 to 45 days after they did.
    lag = (exits["entered_at"].to_numpy() - went) / pd.Timedelta(days=1)
    assert pd.notna(went).all() and lag.min() >= 10 and lag.max() <= 45
    kept = history[~history["stage"].isin(EXITS)].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, plain.stage_history.reset_index(drop=True))


def test_exit_model_ranks_and_calibrates_on_the_test_period(exit_trained: TrainingResult) -> None:
    m = exit_trained.metrics
    # Measured on this export (seed 11): model 0.81 (0.78 without stage-history features),
    # logistic 0.77, last-activity rule 0.58.
    assert m["exit.can_advance.roc_auc"] > 0.75
    assert m["exit.can_advance.roc_auc"] > m["exit.baseline_logistic.can_advance.roc_auc"]
    assert m["exit.can_advance.roc_auc"] > m["exit.baseline_rule.can_advance.roc_auc"] + 0.1
    assert m["exit.can_advance.brier"] < m["exit.baseline_majority.can_advance.brier"]
    assert m["exit.ece"] < 0.02
    assert "exit" in exit_trained.reliability


def test_products_exit_probability_is_the_backtests(exit_trained: TrainingResult) -> None:
    frame = exit_trained.test_frame
    scored = exit_trained.model.predict_features(frame)
    p = scored["exit_probability"].to_numpy(float)
    assert ((p >= 0) & (p <= 1)).all()
    left = frame["recorded_exit"].to_numpy() == 1  # recorded in an exit: left already
    assert left.sum() > 50 and (p[left] == 1).all()
    # A buyer likely at the final stage has little deal left to lose (final_stage rule).
    final = scored["p_purchased"].to_numpy(float)
    assert (p[~left] <= 1 - final[~left] + 1e-12).all()
    assert (scored.loc[left, "inflection_probability"] == 0).all()
    labelled = frame["exit"].notna().to_numpy()
    y = frame.loc[labelled, "exit"].astype(int).to_numpy()
    assert np.isclose(roc_auc_score(y, p[labelled]), exit_trained.metrics["exit.roc_auc"])


def test_buyers_in_an_exit_are_not_can_advance(exit_trained: TrainingResult) -> None:
    frame = exit_trained.test_frame
    exited = frame["exited"].to_numpy(bool)
    assert exited.sum() > 50
    assert not frame.loc[exited, "can_advance"].any()
    assert frame.loc[exited, "exit"].isna().all()


def test_model_without_exits_has_no_exit_column(export: Export, trained: TrainingResult) -> None:
    assert trained.model.exit_model is None
    scored = trained.model.predict_features(trained.test_frame.head(50))
    assert "exit_probability" not in scored


def test_exit_reason_codes_explain_the_exit_margin(exit_trained: TrainingResult) -> None:
    model = exit_trained.model
    rows = exit_trained.test_frame.head(300)
    table = reason_table(model, rows, k=2)
    exits = table[table["model"] == "exit"]
    predicted_final = model.predict_features(rows)["stage"].to_numpy() == "purchased"
    assert len(exits)
    assert set(exits["direction"]) == {"up", "down"}
    wide = reason_codes(model, rows, k=2)
    assert {"exit_up_1", "exit_down_2", "inflection_up_1"} <= set(wide.columns)
    open_rows = np.flatnonzero(~predicted_final)
    assert wide.loc[open_rows, "exit_up_1"].notna().any()


def test_scores_and_top_show_exit_probabilities(
    exit_export_dir: Path, exit_trained: TrainingResult, tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"
    score_local(exit_export_dir, exit_trained.model, "2026-05-01", out=out, reasons=1)
    scores = pd.read_parquet(out)
    assert {"exit_probability", "exit_up_1", "exit_down_1"} <= set(scores.columns)
    assert scores["exit_probability"].between(0, 1).all()
    result = CliRunner().invoke(app, ["top", "--scores", str(out), "--n", "5"])
    assert result.exit_code == 0, result.output
    assert "exit" in result.output
    top = scores.sort_values("inflection_probability", ascending=False).iloc[0]
    assert f"{top['exit_probability']:.1%}" in result.output


def test_stage_aware_model_needs_the_stage_history_to_score(
    exit_export_dir: Path, exit_trained: TrainingResult, tmp_path: Path
) -> None:
    folder = tmp_path / "no_history"
    folder.mkdir()
    for name in ("interactions", "buyers"):
        shutil.copy(exit_export_dir / f"{name}.parquet", folder)
    with pytest.raises(ContractError, match="no stage_history table"):
        score_local(folder, exit_trained.model, "2026-05-01", out=tmp_path / "s.parquet")
    assert not (tmp_path / "s.parquet").exists()


def test_pyfunc_reads_stage_changes_from_rows_with_a_stage(
    exit_export: Export, exit_trained: TrainingResult
) -> None:
    buyers = exit_export.stage_history["buyer_id"].drop_duplicates().head(40)
    interactions = exit_export.interactions[exit_export.interactions["buyer_id"].isin(buyers)]
    history = exit_export.stage_history[exit_export.stage_history["buyer_id"].isin(buyers)]
    as_of = pd.Timestamp("2026-04-01")
    frame = pd.concat(
        [interactions, history.rename(columns={"entered_at": "occurred_at"})], ignore_index=True
    )
    got = predict_raw(exit_trained.model, frame, as_of)
    want = exit_trained.model.predict(interactions, [as_of], stage_history=history)
    pd.testing.assert_frame_equal(got, want)
    assert got["exit_probability"].notna().all()


def test_stage_model_infers_from_behaviour_while_inflection_reads_the_record(
    exit_trained: TrainingResult,
) -> None:
    model = exit_trained.model
    gain = dict(
        zip(
            model.feature_names,
            model.stage_model.booster_.feature_importance("split"),
            strict=True,
        )
    )
    recorded = [c for c in model.feature_names if c in STAGE_COLUMNS]
    assert recorded and all(gain[c] == 0 for c in recorded)
    assert sum(gain.values()) > 0
    inflection = dict(
        zip(
            model.feature_names,
            model.inflection_model.booster_.feature_importance("split"),
            strict=True,
        )
    )
    assert sum(inflection[c] for c in recorded) > 0
    # Zero splits, so zero contributions: the stage reasons never cite the record.
    rows = exit_trained.test_frame[model.feature_names].head(200)
    values = contributions(model.stage_model, rows, workers=1)
    where = [model.feature_names.index(c) for c in recorded]
    assert np.abs(values[:, :, where]).max() == 0.0
    # An echo of the record would score 1.00; behaviour alone does not.
    assert exit_trained.metrics["stage.macro_f1"] < 0.99


def test_a_group_of_buyers_with_no_stage_records_is_scored_as_never_staged(
    exit_export: Export, exit_trained: TrainingResult
) -> None:
    # A partition (or Spark bucket) whose buyers the CRM never staged: the export has the
    # table, the group has none of its rows. Scored, not refused; without the table at all
    # the model still refuses (test above).
    some = exit_export.interactions["buyer_id"].drop_duplicates().head(20)
    raw = {
        "interactions": exit_export.interactions[exit_export.interactions["buyer_id"].isin(some)]
    }
    raw["interactions"] = raw["interactions"].reset_index(drop=True)
    sources = {"interactions": "i.parquet", "stage_history": "s.parquet"}
    as_of = pd.Timestamp("2026-05-01")
    result = score_tables(raw, exit_trained.model, as_of, sources=sources)
    assert 0 < len(result.scores) and set(result.scores["buyer_id"]) <= set(some)
    assert result.scores["inflection_probability"].between(0, 1).all()
    with pytest.raises(ContractError, match="no stage_history table"):
        score_tables(
            raw, exit_trained.model, pd.Timestamp("2026-05-01"), sources={"interactions": "i"}
        )
