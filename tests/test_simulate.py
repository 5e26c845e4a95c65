"""The simulator: contract, determinism, and that the latent truth behaves as designed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from stageml.cli import app
from stageml.config import DEFAULT_STAGES
from stageml.data import second_world
from stageml.data.second_world import simulate_second_world
from stageml.data.simulate import (
    DEFAULT_END,
    DEFAULT_START,
    TABLE_NAMES,
    SimulatedExport,
    simulate,
    simulate_to_folder,
    summarize_folder,
    write_export,
)
from stageml.data.world import ACTIVITIES, LATE_ACTIVITIES, WorldParams
from stageml.errors import ConfigError

N = 1500
START, END = pd.Timestamp(DEFAULT_START), pd.Timestamp(DEFAULT_END)
RANK = {stage: i for i, stage in enumerate(DEFAULT_STAGES)}
FINAL = len(DEFAULT_STAGES) - 1


@pytest.fixture(scope="module")
def export() -> SimulatedExport:
    return simulate(N, seed=11)


@pytest.fixture(scope="module")
def truth(export: SimulatedExport) -> pd.DataFrame:
    return export.truth.assign(rank=export.truth["stage"].map(RANK).astype(int))


def _stage_at(events: pd.DataFrame, on: str, truth: pd.DataFrame) -> pd.DataFrame:
    """Attach the true stage (and quiet time) in force at each row's ``on`` instant."""
    path = truth[["buyer_id", "entered_at", "rank", "quiet_at"]].sort_values("entered_at")
    return pd.merge_asof(
        events.sort_values(on),
        path,
        left_on=on,
        right_on="entered_at",
        by="buyer_id",
        direction="backward",
    )


def test_same_seed_same_frames_and_other_seed_differs() -> None:
    first, again, other = (simulate(300, seed=s) for s in (5, 5, 6))
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(getattr(first, name), getattr(again, name))
    assert not first.interactions.equals(other.interactions)
    assert not first.truth.equals(other.truth)


def test_contract_columns_and_dtypes(export: SimulatedExport) -> None:
    expected = {
        "interactions": ["buyer_id", "occurred_at", "activity", "channel", "direction"],
        "buyers": ["buyer_id", "segment", "industry", "employees", "region"],
        "stage_history": ["buyer_id", "stage", "entered_at"],
        "truth": ["buyer_id", "stage", "entered_at", "quiet_at"],
    }
    for name, columns in expected.items():
        frame = getattr(export, name)
        assert list(frame.columns) == columns
        for column in columns:
            if column in ("occurred_at", "entered_at", "quiet_at"):
                assert frame[column].dtype == "datetime64[us]", (name, column)
            elif column != "employees":
                assert isinstance(frame[column].dtype, pd.StringDtype), (name, column)
                assert frame[column].notna().all(), (name, column)
    assert pd.api.types.is_integer_dtype(export.buyers["employees"])
    assert export.buyers["buyer_id"].is_unique and len(export.buyers) == N
    assert export.buyers["buyer_id"].str.fullmatch(r"B\d{6}").all()
    assert export.buyers["buyer_id"].iloc[0] == "B000001"
    assert set(export.buyers["segment"]) == {"smb", "mid_market", "enterprise"}
    interactions = export.interactions
    assert set(interactions["direction"]) == {"inbound", "outbound"}
    assert set(interactions["activity"]) <= set(ACTIVITIES)
    channel = {name: spec[0] for name, spec in ACTIVITIES.items()}
    assert (interactions["activity"].map(channel) == interactions["channel"]).all()
    # Whole seconds, sorted by buyer then time.
    assert (interactions["occurred_at"].dt.microsecond == 0).all()
    order = interactions.sort_values(["buyer_id", "occurred_at"], kind="stable").index
    assert (order == interactions.index).all()


def test_volume_and_every_buyer_active(export: SimulatedExport) -> None:
    per_buyer = export.interactions.groupby("buyer_id").size()
    assert 35 <= per_buyer.mean() <= 65
    assert set(per_buyer.index) == set(export.buyers["buyer_id"])
    assert set(export.stage_history["buyer_id"]) <= set(per_buyer.index)
    # Buyers differ a lot in how active they are.
    assert per_buyer.quantile(0.9) > 4 * per_buyer.quantile(0.25)


def test_interactions_within_entry_and_export_end(export: SimulatedExport) -> None:
    entry = export.truth.groupby("buyer_id")["entered_at"].min()
    occurred = export.interactions["occurred_at"]
    assert (occurred >= export.interactions["buyer_id"].map(entry)).all()
    assert occurred.min() >= START and occurred.max() < END
    for frame in (export.truth, export.stage_history):
        assert frame["entered_at"].between(START, END, inclusive="left").all()
    # The first interaction is the buyer entering the funnel.
    first = export.interactions.groupby("buyer_id")["occurred_at"].min()
    pd.testing.assert_series_equal(first, entry, check_names=False)


def test_every_true_stage_is_occupied_mid_window(truth: pd.DataFrame) -> None:
    mid = START + (END - START) / 2
    current = truth[truth["entered_at"] < mid].groupby("buyer_id")["rank"].last()
    counts = current.value_counts()
    assert set(counts.index) == set(range(len(DEFAULT_STAGES)))
    assert counts.min() >= 20


def test_late_activities_become_more_common_with_true_stage(
    export: SimulatedExport, truth: pd.DataFrame
) -> None:
    inbound = export.interactions[export.interactions["direction"] == "inbound"]
    staged = _stage_at(inbound, "occurred_at", truth)
    late = staged["activity"].isin(LATE_ACTIVITIES).groupby(staged["rank"]).mean()
    pre_purchase = late.loc[list(range(FINAL))].to_numpy()
    assert (np.diff(pre_purchase) > 0).all(), late
    # No single activity gives the stage away: pricing_page shows up in three stages.
    pricing = staged.loc[staged["activity"] == "pricing_page", "rank"].value_counts()
    assert (pricing.loc[[1, 2, 3]] >= 10).all()


def test_recorded_history_is_late_partial_and_clean(
    export: SimulatedExport, truth: pd.DataFrame
) -> None:
    history = export.stage_history
    assert set(history["stage"]) <= set(DEFAULT_STAGES)
    assert not history.duplicated(["buyer_id", "stage", "entered_at"]).any()
    assert (history.groupby("buyer_id")["entered_at"].diff().dropna() > pd.Timedelta(0)).all()
    missing = 1 - history["buyer_id"].nunique() / N
    assert 0.10 <= missing <= 0.22
    # Each recorded change is matched to the latest true entry into the same stage.
    matched = pd.merge_asof(
        history.sort_values("entered_at"),
        truth[["buyer_id", "stage", "entered_at"]]
        .rename(columns={"entered_at": "true_at"})
        .sort_values("true_at"),
        left_on="entered_at",
        right_on="true_at",
        by=["buyer_id", "stage"],
    )
    lag = (matched["entered_at"] - matched["true_at"]).dropna()
    assert lag.median() > pd.Timedelta(hours=12)
    assert lag.quantile(0.9) <= pd.Timedelta(days=10)
    # Some recorded stages have no true entry before them: recorded wrongly.
    assert 0.01 < matched["true_at"].isna().mean() < 0.10
    rows_per_buyer = history.groupby("buyer_id").size().mean()
    assert rows_per_buyer < truth.groupby("buyer_id").size().mean()


def test_seller_touch_raises_the_hazard_of_moving_on(
    export: SimulatedExport, truth: pd.DataFrame
) -> None:
    days = pd.date_range(START + pd.Timedelta(days=14), END - pd.Timedelta(days=2), freq="D")
    entry = truth.groupby("buyer_id")["entered_at"].min()
    grid = pd.DataFrame(
        {
            "buyer_id": np.repeat(entry.index.to_numpy(), len(days)),
            "at": np.tile(days.to_numpy(), len(entry)),
        }
    )
    grid = _stage_at(grid[grid["at"] > grid["buyer_id"].map(entry)], "at", truth)
    in_play = (grid["rank"] < FINAL) & ~(grid["quiet_at"] <= grid["at"])
    grid = grid[in_play].drop(columns=["entered_at", "quiet_at"])
    outbound = export.interactions.loc[
        export.interactions["direction"] == "outbound", ["buyer_id", "occurred_at"]
    ]
    grid = pd.merge_asof(
        grid.sort_values("at"),
        outbound.sort_values("occurred_at"),
        left_on="at",
        right_on="occurred_at",
        by="buyer_id",
        allow_exact_matches=False,
    )
    touched = (grid["at"] - grid["occurred_at"]) <= pd.Timedelta(days=6)
    ups = truth[truth.groupby("buyer_id")["rank"].diff() > 0]
    grid = pd.merge_asof(
        grid,
        ups[["buyer_id", "entered_at"]].sort_values("entered_at"),
        left_on="at",
        right_on="entered_at",
        by="buyer_id",
        direction="forward",
    )
    moved = (grid["entered_at"] - grid["at"]) < pd.Timedelta(days=1)
    hazard = moved.groupby([grid["rank"], touched]).mean().unstack()
    assert (hazard[True] > 1.4 * hazard[False]).all(), hazard


def test_inflection_share_within_design_range(truth: pd.DataFrame) -> None:
    horizon, positive, total = pd.Timedelta(days=30), 0, 0
    for as_of in pd.date_range(START + pd.Timedelta(days=30), END - horizon, freq="7D"):
        current = truth[truth["entered_at"] < as_of].groupby("buyer_id")["rank"].last()
        window = truth[(truth["entered_at"] >= as_of) & (truth["entered_at"] < as_of + horizon)]
        later = window.groupby("buyer_id")["rank"].max().reindex(current.index) > current
        positive, total = positive + int(later.sum()), total + len(current)
    assert 0.08 <= positive / total <= 0.30


def test_custom_three_stage_taxonomy() -> None:
    stages = ("aware", "considering", "customer")
    export = simulate(600, seed=2, stages=stages)
    assert set(export.truth["stage"]) == set(stages)
    assert set(export.stage_history["stage"]) <= set(stages)
    staged = export.interactions.merge(
        export.truth.groupby("buyer_id")["stage"].last().rename("final_stage"), on="buyer_id"
    )
    logins = staged.loc[staged["activity"] == "product_login", "final_stage"]
    assert (logins == "customer").mean() > 0.95


def test_seven_stages_and_params_are_respected() -> None:
    stages = tuple(f"s{i}" for i in range(7))
    export = simulate(
        400, seed=4, stages=stages, params=WorldParams(missing_history_share=0.0, skip_share=0.0)
    )
    assert set(export.truth["stage"]) == set(stages)
    assert export.stage_history["buyer_id"].nunique() >= 0.95 * 400


def test_write_export_round_trips(export: SimulatedExport, tmp_path: Path) -> None:
    small = simulate(200, seed=8)
    paths = write_export(small, tmp_path / "pq")
    assert set(paths) == set(TABLE_NAMES)
    for name, path in paths.items():
        pd.testing.assert_frame_equal(pd.read_parquet(path), getattr(small, name))
    paths = write_export(small, tmp_path / "csv", fmt="csv")
    back = pd.read_csv(paths["interactions"], parse_dates=["occurred_at"])
    assert len(back) == len(small.interactions)
    assert (back["occurred_at"].to_numpy() == small.interactions["occurred_at"].to_numpy()).all()
    assert (back["buyer_id"].to_numpy() == small.interactions["buyer_id"].to_numpy()).all()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_chunked_folder_equals_in_memory(fmt: str, tmp_path: Path) -> None:
    memory = simulate(700, seed=3, chunk_buyers=300)
    paths = simulate_to_folder(700, seed=3, out=tmp_path, fmt=fmt, chunk_buyers=300)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{name}.{fmt}" for name in TABLE_NAMES
    )
    for name, path in paths.items():
        expected = getattr(memory, name)
        if fmt == "parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
            continue
        dates = [c for c in expected.columns if c.endswith("_at")]
        back = pd.read_csv(path, parse_dates=dates, dtype={"buyer_id": "str"})
        assert list(back.columns) == list(expected.columns) and len(back) == len(expected)
        for column in dates:
            assert back[column].astype(expected[column].dtype).equals(expected[column])
    # Buyer ids continue across blocks.
    assert memory.buyers["buyer_id"].iloc[[299, 300, -1]].tolist() == [
        "B000300",
        "B000301",
        "B000700",
    ]
    assert memory.buyers["buyer_id"].is_unique


def test_summarize_folder(tmp_path: Path) -> None:
    simulate_to_folder(300, seed=1, out=tmp_path)
    summary = summarize_folder(tmp_path)
    assert summary["buyers"] == 300
    assert summary["interactions"] == len(pd.read_parquet(tmp_path / "interactions.parquet"))
    assert sum(summary["stage_at_end"].values()) == 300
    assert 0.7 < summary["recorded_share"] < 0.95


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stages": ("only",)}, "at least two unique"),
        ({"stages": ("a", "b", "a")}, "at least two unique"),
        ({"start": "2026-06-28"}, "at least 7 days before"),
        ({"end": "not a date"}, "is not a date"),
        ({"chunk_buyers": 0}, "must be positive"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        simulate(10, seed=1, **kwargs)  # type: ignore[arg-type]


def test_bad_format_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown output format 'xlsx'"):
        simulate_to_folder(10, seed=1, out=tmp_path, fmt="xlsx")
    assert not any(tmp_path.iterdir())


def _cli(*args: str) -> list[str]:
    # With a single registered command typer runs it without its name.
    group = hasattr(typer.main.get_command(app), "list_commands")
    return (["simulate"] if group else []) + list(args)


def test_cli_writes_folder_and_prints_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, _cli("--buyers", "150", "--seed", "3", "--out", str(tmp_path), "--format", "csv")
    )
    assert result.exit_code == 0, result.output
    assert "150" in result.output and "with recorded history" in result.output
    assert (tmp_path / "interactions.csv").exists()
    back = pd.read_csv(tmp_path / "buyers.csv", dtype={"buyer_id": "str"})
    assert back["buyer_id"].tolist() == simulate(150, seed=3).buyers["buyer_id"].tolist()


def test_cli_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, _cli("--buyers", "10", "--out", str(tmp_path), "--format", "xls")
    )
    assert result.exit_code == 2
    assert "unknown output format" in result.output


def test_refuses_to_mix_formats_in_one_folder(tmp_path: Path) -> None:
    simulate_to_folder(20, seed=1, out=tmp_path, fmt="csv")
    with pytest.raises(ConfigError, match=r"already holds .*interactions\.csv"):
        write_export(simulate(20, seed=1), tmp_path, fmt="parquet")
    assert not (tmp_path / "interactions.parquet").exists()


def test_summarize_folder_names_missing_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no table\(s\) \['interactions'"):
        summarize_folder(tmp_path)


def test_second_world_has_its_own_taxonomy_vocabulary_and_later_noisier_records(
    export: SimulatedExport,
) -> None:
    second = simulate_second_world(800, seed=5)
    assert set(second_world.VOCABULARY) == set(ACTIVITIES)
    assert set(second.interactions["activity"]) == set(second_world.VOCABULARY.values())
    assert not set(second.interactions["activity"]) & set(ACTIVITIES)
    assert set(second.stage_history["stage"]) == set(second_world.STAGES)
    assert not second.interactions.duplicated(["buyer_id", "occurred_at", "activity"]).any()

    def lag_days(made: SimulatedExport) -> float:
        true_at = made.truth[["buyer_id", "stage", "entered_at"]].rename(
            columns={"entered_at": "true_at"}
        )
        matched = pd.merge_asof(
            made.stage_history.sort_values("entered_at"),
            true_at.sort_values("true_at"),
            left_on="entered_at",
            right_on="true_at",
            by=["buyer_id", "stage"],
        )
        return float((matched["entered_at"] - matched["true_at"]).dt.days.mean())

    assert lag_days(second) > 1.8 * lag_days(export)
    recorded = second.stage_history["buyer_id"].nunique() / 800
    assert recorded < 1 - 0.2  # a quarter of the buyers' stages never reach the CRM
