"""Next touches: planted effects recovered (and none invented), simulator truth, the command."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import EXITS
from stageml.cli import app
from stageml.config import TouchConfig
from stageml.data.simulate import simulate, simulate_to_folder
from stageml.data.validate import Export, load_export
from stageml.data.world import TOUCH_EFFECTS, WorldParams
from stageml.errors import ConfigError, ContractError, ModelError
from stageml.features.stage_history import STAGE_COLUMNS
from stageml.models.train import TrainingResult
from stageml.tactics.check import interval_coverage, qini, stage_touch_table, table_agreement
from stageml.tactics.next_touch import export_trial, next_touches, read_trial, report_touches
from stageml.tactics.points import features_at_points
from stageml.tactics.uplift import TLearner

TRIAL = WorldParams(touch_effects=True, randomised_share=1.0, enrol_share=0.3)


def planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Arms none/a/b at random; ``a`` adds 0.3 to the move chance when x = 1, ``b`` nothing.

    ``x`` plays a stage (the effect is stage-appropriate), ``noise`` a nuisance input.
    """
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": (rng.random(n) < 0.5).astype(float), "noise": rng.random(n)})
    arm = rng.choice(np.array(["none", "a", "b"], dtype=object), n)
    p = 0.2 + 0.2 * X["noise"] + np.where((arm == "a") & (X["x"] == 1), 0.3, 0.0)
    return X, arm, (rng.random(n) < p).astype(int)


@pytest.mark.parametrize("base", ["logistic", "lightgbm"])
def test_t_learner_recovers_a_planted_effect_and_invents_none(base: str) -> None:
    X, arm, y = planted(6000, seed=1)
    learner = TLearner(base=base, random_state=0).fit(X, arm, y)  # type: ignore[arg-type]
    grid = pd.DataFrame(
        {"x": np.r_[np.ones(50), np.zeros(50)], "noise": np.tile(np.linspace(0, 1, 50), 2)}
    )
    lift, low, high = learner.predict_lift(grid)
    high_x, low_x = slice(0, 50), slice(50, 100)
    assert lift["lift_a"].iloc[high_x].mean() == pytest.approx(0.3, abs=0.08)
    assert abs(lift["lift_a"].iloc[low_x].mean()) < 0.06
    assert abs(lift["lift_b"].mean()) < 0.06
    # Averaged over the buyers, the planted effect's interval excludes zero and the null
    # touch's covers it (per buyer the bootstrap spread of 8 refits is rougher than that).
    assert low["lift_a"].iloc[high_x].mean() > 0.15
    assert low["lift_b"].mean() < 0 < high["lift_b"].mean()


def test_interval_coverage_counts_true_lifts_inside_the_bootstrap_spread() -> None:
    truth = pd.DataFrame({"lift_a": [0.3, 0.2, 0.0, 0.1], "lift_b": 0.0})
    stage = np.array(["hi", "hi", "lo", "lo"])
    # 101 refits spread evenly over +-0.1 around the truth for a, 0.5 above it for b.
    spread = np.linspace(-0.1, 0.1, 101)[:, None, None]
    bags = spread + (truth.to_numpy() + np.array([0.0, 0.5]))[None]
    got = interval_coverage(bags, stage, truth, interval=0.9)
    assert got["stage_touch"] == 0.5 and got["buyer"] == 0.5
    assert got["stage_touch_width"] == pytest.approx(0.18)


def test_bags_are_the_refits_the_lift_and_interval_come_from() -> None:
    X, arm, y = planted(2000, seed=4)
    learner = TLearner(n_bags=5, interval=0.8, random_state=0).fit(X, arm, y)  # type: ignore[arg-type]
    bags = learner.predict_bags(X)
    lift, low, high = learner.predict_lift(X)
    assert bags.shape == (5, 2000, 2)
    np.testing.assert_allclose(lift.to_numpy(), bags.mean(axis=0))
    np.testing.assert_allclose(low.to_numpy(), np.quantile(bags, 0.1, axis=0))
    np.testing.assert_allclose(high.to_numpy(), np.quantile(bags, 0.9, axis=0))


def test_t_learner_needs_a_control_arm() -> None:
    X, arm, y = planted(300, seed=2)
    with pytest.raises(ModelError, match="control arm 'none'"):
        TLearner(n_bags=2).fit(X[arm != "none"], arm[arm != "none"], y[arm != "none"])


def test_qini_ranks_the_right_policy_above_the_wrong_one() -> None:
    X, arm, y = planted(6000, seed=3)
    right = np.where(X["x"] == 1, "a", "b")
    good = qini(right, X["x"].to_numpy(), arm, y, ("a", "b"))
    bad = qini(np.full(len(y), "b", dtype=object), X["x"].to_numpy(), arm, y, ("a", "b"))
    # Always the null touch is worse than a random touch (half the time the right one).
    assert good["qini"] > 0.02 and bad["qini"] < -0.02
    true = pd.DataFrame({"a": [0.3, 0.0], "b": [0.0, 0.0]}, index=["hi", "lo"])
    assert table_agreement(true, true)["best_recovered"] == 1.0


def test_default_world_is_untouched_by_the_trial_options() -> None:
    plain, off = simulate(300, seed=5), simulate(300, seed=5, params=WorldParams(enrol_share=0.9))
    for name in ("interactions", "stage_history", "truth"):
        pd.testing.assert_frame_equal(getattr(plain, name), getattr(off, name))
    assert plain.trial is None and plain.touch_truth is None
    with pytest.raises(ConfigError, match="touch_effects"):
        simulate(10, seed=1, params=WorldParams(randomised_share=0.5))


def test_trial_touches_are_logged_as_assigned_and_effects_are_real() -> None:
    sim = simulate(4000, seed=9, params=TRIAL)
    log, truth = sim.trial, sim.touch_truth
    assert set(log["touch"]) == {"none", *TOUCH_EFFECTS}
    # One enrolment per buyer and stage; the touch is in the export at 10:00 on the day.
    assert not truth.duplicated(["buyer_id", "stage"]).any()
    given = log[log["touch"] != "none"].assign(
        occurred_at=lambda f: f["assigned_at"] + pd.Timedelta(hours=10)
    )
    found = given.merge(sim.interactions, on=["buyer_id", "occurred_at"], how="left")
    assert (found["activity"] == found["touch"]).all()
    # The planted zero has zero true lift; a stage's best touch is the table's best.
    assert (truth["lift_check_in_call"] == 0).all()
    table = stage_touch_table(truth, ("alerted", "engaged", "evaluating", "committed"))
    assert table.idxmax(axis=1).to_dict() == {
        "alerted": "linkedin_message",
        "engaged": "sales_call",
        "evaluating": "meeting_invite",
        "committed": "contract_sent",
    }
    # And the world honours it: alerted buyers given the best touch move on more often.
    entered = sim.truth.merge(
        truth[truth["stage"] == "alerted"], on="buyer_id", suffixes=("", "_t")
    )
    moved = entered[
        (entered["entered_at"] > entered["assigned_at"])
        & (entered["entered_at"] <= entered["assigned_at"] + pd.Timedelta(days=30))
        & (entered["stage"] != "alerted")
    ]["buyer_id"]
    alerted = truth[truth["stage"] == "alerted"].assign(moved=lambda f: f["buyer_id"].isin(moved))
    rate = alerted.groupby("touch")["moved"].mean()
    assert rate["linkedin_message"] - rate["none"] > 0.05
    assert abs(rate["check_in_call"] - rate["none"]) < 0.06


def test_features_at_points_equal_the_engine_at_each_instant(
    trained: TrainingResult, export: Export
) -> None:
    model = trained.model
    ids = export.interactions["buyer_id"].drop_duplicates().iloc[:40].tolist()
    instants = [pd.Timestamp("2025-09-01"), pd.Timestamp("2026-02-03 12:00")]
    points = pd.DataFrame({"buyer_id": ids * 2, "as_of": np.repeat(instants, len(ids))})
    mine = features_at_points(model, export.interactions, export.buyers, points)
    for t in instants:
        engine = model.features(export.interactions, [t], export.buyers).set_index("buyer_id")
        rows = mine[mine["as_of"] == t].set_index("buyer_id")
        common = rows.index.intersection(engine.index)
        assert len(common) > 10
        pd.testing.assert_frame_equal(
            rows.loc[common, model.feature_names],
            engine.loc[common, model.feature_names],
            check_dtype=False,
            check_index_type=False,
        )


def test_pseudo_buyers_see_the_stage_history_the_buyer_had_then(
    exit_trained: TrainingResult, exit_export: Export
) -> None:
    model = exit_trained.model
    assert model.params.features.stage_history
    # Logged late, some changes only after the instant they were entered; one in five
    # without a log time (known at entered_at + labels.label_delay).
    history = exit_export.stage_history
    rng = np.random.default_rng(3)
    late = pd.to_timedelta(rng.integers(0, 20 * 24, len(history)), unit="h")
    logged = (history["entered_at"] + late).where(rng.random(len(history)) > 0.2)
    history = history.assign(recorded_at=logged.astype("datetime64[us]"))
    ids = history["buyer_id"].drop_duplicates().iloc[:60].tolist()
    instants = [pd.Timestamp("2025-10-06"), pd.Timestamp("2026-03-17 15:30")]
    points = pd.DataFrame({"buyer_id": ids * 2, "as_of": np.repeat(instants, len(ids))})
    mine = features_at_points(
        model, exit_export.interactions, exit_export.buyers, points, stage_history=history
    )
    stage = list(STAGE_COLUMNS)
    for t in instants:
        engine = model.features(
            exit_export.interactions, [t], exit_export.buyers, stage_history=history
        ).set_index("buyer_id")
        rows = mine[mine["as_of"] == t].set_index("buyer_id")
        common = rows.index.intersection(engine.index)
        assert len(common) > 20 and rows.loc[common, "recorded_stage"].notna().sum() > 10
        pd.testing.assert_frame_equal(
            rows.loc[common, stage], engine.loc[common, stage], check_index_type=False
        )
    with pytest.raises(ContractError, match="stage_history"):
        features_at_points(model, exit_export.interactions, exit_export.buyers, points)


def test_an_appended_touch_is_seen_now(trained: TrainingResult, export: Export) -> None:
    model = trained.model
    buyer = export.interactions["buyer_id"].iloc[0]
    points = pd.DataFrame({"buyer_id": [buyer], "as_of": [pd.Timestamp("2026-03-01")]})
    before = features_at_points(model, export.interactions, export.buyers, points)
    after = features_at_points(
        model, export.interactions, export.buyers, points, touch="sales_call", channel="phone"
    )
    column = next(c for c in model.feature_names if c.startswith("act_sales_call_7d"))
    assert after[column].iloc[0] == before[column].iloc[0] + 1


def test_next_touches_accounts_for_every_buyer(trained: TrainingResult, export: Export) -> None:
    as_of = pd.Timestamp("2026-03-02")
    result = next_touches(trained.model, export, as_of, TouchConfig(), k=2)
    listed = set(result.touches["buyer_id"])
    rejected = set(result.rejects["buyer_id"])
    assert not listed & rejected
    assert listed | rejected == set(export.buyers["buyer_id"])
    assert (result.touches.groupby("buyer_id").size() == 2).all()
    first, second = (result.touches[result.touches["rank"] == r]["lift"].to_numpy() for r in (1, 2))
    assert (first >= second).all() and result.method == "counterfactual"


def test_read_trial_names_the_bad_touch(tmp_path: Path) -> None:
    path = tmp_path / "trial.csv"
    pd.DataFrame(
        {
            "buyer_id": ["B1", "B2"],
            "assigned_at": ["2026-01-05", "2026-01-05"],
            "touch": ["none", "fax"],
        }
    ).to_csv(path, index=False)
    with pytest.raises(ContractError, match=r"column 'touch', rows 2: not one of"):
        read_trial(path, TouchConfig().activities)


def test_next_touch_command_with_a_trial(
    tmp_path: Path, trained: TrainingResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stageml.tracking.runs as runs

    folder = tmp_path / "sim"
    simulate_to_folder(1200, seed=4, out=folder, params=TRIAL)
    monkeypatch.setattr(runs, "resolve_model", lambda *_a, **_k: (trained.model, "1"))
    out = tmp_path / "touches.csv"
    result = CliRunner().invoke(
        app,
        [
            "next-touch",
            "--data",
            str(folder),
            "--as-of",
            "2026-06-01",
            "--out",
            str(out),
            "--k",
            "2",
            "--trial",
            str(folder / "trial.parquet"),
            "--show",
            "3",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "t_learner fitted on" in result.output
    touches = pd.read_csv(out)
    assert (touches["lift_low"] <= touches["lift_high"]).all()
    assert touches["lift"].between(touches["lift_low"], touches["lift_high"]).mean() > 0.9
    assert (tmp_path / "touches_lift.png").stat().st_size > 1000
    rejects = pd.read_csv(tmp_path / "touches_rejects.csv")
    buyers = pd.read_parquet(folder / "buyers.parquet")["buyer_id"]
    assert set(touches["buyer_id"]) | set(rejects["buyer_id"]) == set(buyers)


def test_a_training_run_reads_its_lift_table_from_the_exports_trial(
    tmp_path: Path, exit_trained: TrainingResult
) -> None:
    # The model of params.yaml's shape: exits in the history, stage-history features.
    folder = tmp_path / "sim"
    simulate_to_folder(1200, seed=4, out=folder, exits=EXITS, params=TRIAL)
    export = load_export(folder, stages=exit_trained.model.recorded_stages)
    touches = TouchConfig().activities
    assert export_trial(folder, ()) is None and export_trial(tmp_path, touches) is None
    model = dataclasses.replace(
        exit_trained.model,
        params=exit_trained.model.params.model_copy(
            update={"touches": TouchConfig(report_buyers=200)}
        ),
    )
    test_frame = pd.DataFrame(
        {"buyer_id": export.buyers["buyer_id"], "as_of": pd.Timestamp("2026-06-01")}
    )
    as_of, lifts = report_touches(
        model, export, test_frame, trial=export_trial(folder, touches), seed=0
    )
    assert as_of == pd.Timestamp("2026-06-01") and lifts.method == "t_learner"
    assert lifts.trial_rows > 100
    assert lifts.touches["buyer_id"].nunique() + len(lifts.rejects) == 200
    assert list(lifts.lift_table.columns) == list(touches)
    assert (lifts.touches["lift_low"] <= lifts.touches["lift_high"]).all()
    # Buyers gone quiet were never enrolled: no lifts are extrapolated to them.
    assert lifts.rejects["reason"].str.contains("the trial has no buyer like this one").any()
