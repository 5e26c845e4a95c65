"""Stage-history features: hand-built cases, the one time rule, and leakage properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stageml.config import LabelConfig, Params
from stageml.data.validate import validate_frames
from stageml.errors import ContractError
from stageml.features.stage_history import (
    STAGE_COLUMNS,
    add_stage_features,
    build_stage_features,
    describe_stage_family,
)
from stageml.models.labels import build_labels

STAGES = ("alerted", "engaged", "evaluating", "committed", "purchased")
EXITS = ("lost", "disqualified")
NAMES = STAGES + EXITS
BASE = pd.Timestamp("2024-01-01")
T = pd.Timestamp


def history(*rows: tuple[str, str, str], recorded: list[str | None] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "buyer_id": pd.array([r[0] for r in rows], dtype="string"),
            "stage": pd.array([r[1] for r in rows], dtype="string"),
            "entered_at": pd.to_datetime([r[2] for r in rows]).astype("datetime64[us]"),
        }
    )
    if recorded is not None:
        frame["recorded_at"] = pd.to_datetime(recorded).astype("datetime64[us]")
    return frame


def features(hist: pd.DataFrame, *as_of: str, delay: str = "0D") -> pd.DataFrame:
    keys = pd.DataFrame({"buyer_id": ["a"] * len(as_of), "as_of": [T(t) for t in as_of]})
    return build_stage_features(
        keys, hist, stages=STAGES, exits=EXITS, label_delay=pd.Timedelta(delay)
    )


HIST = history(
    ("a", "alerted", "2024-01-01"),
    ("a", "evaluating", "2024-01-11"),
    ("a", "engaged", "2024-01-15"),  # a regression
    ("a", "lost", "2024-01-25"),
)


def test_current_stage_time_in_it_moves_and_regressions() -> None:
    got = features(HIST, "2023-12-31", "2024-01-11", "2024-01-20", "2024-02-04")
    assert list(got.columns) == list(STAGE_COLUMNS)
    none, at_change, regressed, lost = (got.iloc[i] for i in range(4))
    assert none["recorded_moves"] == 0 and np.isnan(none["recorded_stage"])
    # A change entered at t itself is not known at t (strictly before, as for interactions).
    assert at_change["recorded_stage"] == 0 and at_change["recorded_days_in_stage"] == 10
    assert regressed["recorded_stage"] == 1 and regressed["recorded_regressions"] == 1
    assert regressed["recorded_days_in_previous"] == 4 and regressed["recorded_moves"] == 3
    assert regressed["recorded_exit"] == 0
    assert lost["recorded_exit"] == 1 and lost["recorded_stage"] == 1
    assert lost["recorded_days_in_stage"] == 10 and lost["recorded_days_in_previous"] == 10


def test_recorded_at_and_label_delay_decide_when_a_change_is_known() -> None:
    late = history(
        ("a", "alerted", "2024-01-01"),
        ("a", "engaged", "2024-01-05"),
        recorded=["2024-01-01", "2024-01-20"],
    )
    # Entered on Jan 5, but the CRM logged it on Jan 20: unknown on Jan 10.
    assert features(late, "2024-01-10")["recorded_stage"].iloc[0] == 0
    assert features(late, "2024-01-21")["recorded_stage"].iloc[0] == 1
    # Without recorded_at, a change is known label_delay after it was entered.
    assert features(HIST, "2024-01-12", delay="3D")["recorded_stage"].iloc[0] == 0
    assert features(HIST, "2024-01-15", delay="3D")["recorded_stage"].iloc[0] == 2
    # An empty recorded_at cell falls back to entered_at + label_delay.
    partial = late.assign(recorded_at=late["recorded_at"].where([True, False]))
    assert features(partial, "2024-01-10")["recorded_stage"].iloc[0] == 1


def test_texts_and_a_model_that_needs_the_table() -> None:
    params = Params(exits=EXITS).model_copy(
        update={"features": Params().features.model_copy(update={"stage_history": True})}
    )
    history = {
        "recorded_stage": 2.0,
        "recorded_exit": 0.0,
        "recorded_days_in_stage": 6.0,
        "recorded_days_in_previous": 9.0,
        "recorded_moves": 3.0,
        "recorded_regressions": 0.0,
    }
    assert describe_stage_family(history, params) == (
        "recorded evaluating for 6 days (9 days in the stage before; 3 recorded moves, none back)"
    )
    gone = history | {"recorded_exit": 1.0, "recorded_days_in_stage": 12.0}
    assert describe_stage_family(gone, params) == "recorded as lost or disqualified for 12 days"
    first = {"recorded_stage": 0.0, "recorded_days_in_stage": 2.0, "recorded_moves": 0.0}
    assert (
        describe_stage_family(first, params)
        == "recorded alerted for 2 days (0 recorded moves, none back)"
    )
    assert describe_stage_family({"recorded_stage": np.nan}, params) == (
        "no stage recorded in the CRM yet"
    )
    frame = pd.DataFrame({"buyer_id": ["a"], "as_of": [T("2024-02-01")]})
    with pytest.raises(ContractError, match="no stage_history table.*features.stage_history"):
        add_stage_features(frame, None, params)
    assert add_stage_features(frame, None, Params()) is frame  # not used: never read


# --- leakage properties ----------------------------------------------------------------

records = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(NAMES),
        st.integers(0, 60 * 86400),
        st.integers(0, 10 * 86400),  # recording lag
    ),
    min_size=0,
    max_size=12,
)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def to_history(rows: list[tuple[str, str, int, int]], shift: pd.Timestamp = BASE) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "buyer_id": pd.array([r[0] for r in rows], dtype="string"),
            "stage": pd.array([r[1] for r in rows], dtype="string"),
            "entered_at": (shift + pd.to_timedelta([r[2] for r in rows], unit="s")).astype(
                "datetime64[us]"
            ),
        }
    )
    lag = pd.to_timedelta([r[3] for r in rows], unit="s")
    frame["recorded_at"] = (frame["entered_at"] + lag).astype("datetime64[us]")
    return frame


KEYS = pd.DataFrame(
    {"buyer_id": ["a", "b", "a"], "as_of": [BASE + pd.Timedelta(days=d) for d in (20, 35, 50)]}
)


@PROPERTY
@given(past=records, future=records, cut=st.integers(1, 60 * 86400))
def test_later_stage_records_never_change_earlier_feature_rows(past, future, cut) -> None:
    as_of = BASE + pd.Timedelta(seconds=cut)
    keys = pd.DataFrame({"buyer_id": ["a", "b"], "as_of": [as_of, as_of]})
    before = to_history(past)
    # Changes the CRM logged at or after t (entered whenever before that), t itself included.
    late = to_history(future, shift=as_of)
    late.loc[::2, "recorded_at"] = as_of  # logged at t exactly: not yet known at t
    late["entered_at"] = (late["recorded_at"] - pd.Timedelta(days=5)).astype("datetime64[us]")
    combined = pd.concat([before, late], ignore_index=True)
    got = build_stage_features(
        keys, combined, stages=STAGES, exits=EXITS, label_delay=pd.Timedelta(0)
    )
    want = build_stage_features(
        keys, before, stages=STAGES, exits=EXITS, label_delay=pd.Timedelta(0)
    )
    pd.testing.assert_frame_equal(got, want)


@PROPERTY
@given(past=records, future=records)
def test_records_after_the_horizon_never_change_exit_or_inflection_labels(past, future) -> None:
    config = LabelConfig(horizon="10d", label_delay="2d")
    end = BASE + pd.Timedelta(days=200)
    last_reach = KEYS["as_of"].max() + config.label_delay + config.horizon
    before = to_history(past)
    later = to_history(future, shift=last_reach + pd.Timedelta(seconds=1))

    def labels(hist: pd.DataFrame) -> pd.DataFrame:
        out = build_labels(KEYS, hist, stages=STAGES, config=config, data_end=end, exits=EXITS)
        return out[["stage", "inflection", "exit", "exited", "can_advance"]]

    combined = pd.concat([before, later], ignore_index=True)
    pd.testing.assert_frame_equal(labels(combined), labels(before))


def test_recorded_at_is_validated_and_may_be_empty() -> None:
    interactions = pd.DataFrame(
        {"buyer_id": ["a"], "occurred_at": ["2024-01-01"], "activity": ["visit"]}
    )
    raw = pd.DataFrame(
        {
            "buyer_id": ["a", "a", "a"],
            "stage": ["alerted", "engaged", "lost"],
            "entered_at": ["2024-01-01", "2024-01-02", "2024-01-05"],
            "recorded_at": ["2024-01-03", "", "2024-01-04"],
        }
    )
    export = validate_frames(
        {"interactions": interactions, "stage_history": raw},
        sources={"interactions": "i.csv", "stage_history": "s.csv"},
        stages=NAMES,
    )
    assert export.stage_history["recorded_at"].isna().tolist() == [False, True]
    assert export.rejects["reason"].tolist() == ["recorded_at_before_entered_at"]
    assert export.rejects["row"].tolist() == [3]
