"""Hand-built cases for stage-as-of, inflection inside/outside the horizon, and censoring."""

from __future__ import annotations

import pandas as pd
import pytest

from stageml.config import LabelConfig
from stageml.models.labels import build_labels, horizon_label

STAGES = ("alerted", "engaged", "evaluating", "committed", "purchased")
T = pd.Timestamp


def history(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "buyer_id": [r[0] for r in rows],
            "stage": [r[1] for r in rows],
            "entered_at": pd.to_datetime([r[2] for r in rows]),
        }
    )


EXITS = ("lost", "disqualified")


def label(
    buyer: str, as_of: str, hist: pd.DataFrame, *, end: str = "2024-12-31", **config: str
) -> dict:
    points = pd.DataFrame({"buyer_id": [buyer], "as_of": [T(as_of)]})
    out = build_labels(
        points,
        hist,
        stages=STAGES,
        config=LabelConfig(**config),
        data_end=T(end),
        exits=EXITS,
    )
    return out.iloc[0].to_dict()


HIST = history(
    ("a", "alerted", "2024-01-01"),
    ("a", "engaged", "2024-02-01"),
    ("a", "evaluating", "2024-02-20"),
    ("a", "purchased", "2024-06-01"),
)


def test_stage_is_last_recorded_at_or_before_as_of() -> None:
    assert label("a", "2024-01-15", HIST)["stage"] == "alerted"
    assert label("a", "2024-02-01", HIST)["stage"] == "engaged"  # entered exactly at t counts
    assert label("a", "2024-03-01", HIST)["stage"] == "evaluating"


def test_no_recorded_stage_is_unlabeled_not_first_stage() -> None:
    got = label("a", "2023-12-01", HIST)
    assert pd.isna(got["stage"]) and pd.isna(got["inflection"])
    assert pd.isna(label("zz", "2024-03-01", HIST)["stage"])


def test_inflection_inside_and_outside_horizon() -> None:
    assert label("a", "2024-01-15", HIST)["inflection"] == 1  # engaged 17 days later
    assert label("a", "2024-01-01", HIST)["inflection"] == 0  # 31 days later: outside 30d
    assert label("a", "2024-01-01", HIST, horizon="31d")["inflection"] == 1  # boundary included
    assert label("a", "2024-03-01", HIST)["inflection"] == 0


def test_hour_horizon() -> None:
    hist = history(("s", "alerted", "2024-01-01 10:00"), ("s", "engaged", "2024-01-02 08:00"))
    assert label("s", "2024-01-01 12:00", hist, horizon="24h")["inflection"] == 1
    assert label("s", "2024-01-01 12:00", hist, horizon="12h")["inflection"] == 0


def test_right_censoring_is_unknown_not_negative() -> None:
    # Horizon (Mar 1 + 30d) runs past the data end (Mar 10): no label, even if nothing happened yet.
    got = label("a", "2024-03-01", HIST, end="2024-03-10")
    assert pd.isna(got["inflection"]) and got["stage"] == "evaluating"
    assert label("a", "2024-03-01", HIST, end="2024-03-31")["inflection"] == 0


def test_regression_or_same_stage_is_not_an_inflection() -> None:
    hist = history(
        ("r", "evaluating", "2024-01-01"),
        ("r", "engaged", "2024-01-10"),
        ("r", "evaluating", "2024-01-20"),
    )
    # From engaged (Jan 15), re-entering evaluating is a move to a later stage.
    assert label("r", "2024-01-15", hist)["inflection"] == 1
    # From evaluating (Jan 5), dropping to engaged and back to evaluating is not.
    assert label("r", "2024-01-05", hist)["inflection"] == 0


def test_final_stage_cannot_advance() -> None:
    got = label("a", "2024-06-02", HIST)
    assert got["stage"] == "purchased" and got["inflection"] == 0 and not got["can_advance"]
    assert label("a", "2024-03-01", HIST)["can_advance"]


def test_label_delay_reads_stage_later_and_shifts_horizon() -> None:
    # Recorded 3 days after as-of: with a 5-day delay the label already says engaged.
    assert label("a", "2024-01-29", HIST)["stage"] == "alerted"
    got = label("a", "2024-01-29", HIST, label_delay="5d")
    assert got["stage"] == "engaged"
    assert got["inflection"] == 1  # evaluating on Feb 20 is within (Feb 3, Mar 4]


@pytest.mark.parametrize("n", [1, 50])
def test_vectorised_rows_keep_input_order(n: int) -> None:
    points = pd.DataFrame(
        {"buyer_id": ["a", "zz"] * n, "as_of": [T("2024-03-01"), T("2024-01-15")] * n}
    )
    out = build_labels(points, HIST, stages=STAGES, config=LabelConfig(), data_end=T("2024-12-31"))
    assert list(out["buyer_id"]) == list(points["buyer_id"])
    assert list(out["stage"].fillna("-")) == ["evaluating", "-"] * n


LOST = history(
    ("x", "alerted", "2024-01-01"),
    ("x", "engaged", "2024-01-10"),
    ("x", "lost", "2024-02-01"),
    ("x", "evaluating", "2024-04-01"),  # re-opened, and further along
    ("x", "disqualified", "2024-04-20"),
)


def test_exit_label_inside_horizon_and_censored() -> None:
    got = label("x", "2024-01-15", LOST)
    assert got["exit"] == 1 and got["inflection"] == 0 and got["can_advance"]
    assert label("x", "2024-01-01", LOST)["exit"] == 0  # Feb 1 is 31 days away
    assert pd.isna(label("x", "2024-01-15", LOST, end="2024-02-10")["exit"])


def test_buyer_in_an_exit_cannot_advance_until_a_later_record_reopens_it() -> None:
    got = label("x", "2024-02-15", LOST)
    assert got["exited"] and not got["can_advance"] and got["stage"] == "engaged"
    assert pd.isna(got["exit"])  # already out: "leaves within the horizon" does not apply
    assert got["inflection"] == 0  # evaluating on Apr 1 is 46 days away
    assert label("x", "2024-03-15", LOST)["inflection"] == 1  # the re-opening is an advance
    reopened = label("x", "2024-04-02", LOST)
    assert not reopened["exited"] and reopened["can_advance"]
    assert reopened["stage"] == "evaluating" and reopened["exit"] == 1


def test_exit_after_an_advance_in_the_horizon_is_not_an_exit() -> None:
    hist = history(
        ("y", "engaged", "2024-01-01"),
        ("y", "evaluating", "2024-01-10"),
        ("y", "lost", "2024-01-20"),
    )
    got = label("y", "2024-01-05", hist)
    assert got["inflection"] == 1 and got["exit"] == 0


def test_event_times_give_every_horizon_one_label() -> None:
    points = pd.DataFrame(
        {"buyer_id": ["x"] * 3, "as_of": [T("2024-01-15"), T("2024-01-01"), T("2024-03-15")]}
    )
    out = build_labels(
        points, LOST, stages=STAGES, config=LabelConfig(), data_end=T("2024-04-30"), exits=EXITS
    )
    assert list(horizon_label(out, "exit", pd.Timedelta("30D"))[:2]) == [1, 0]
    assert list(horizon_label(out, "advance", pd.Timedelta("30D"))) == [0, 1, 1]
    assert list(horizon_label(out, "advance", pd.Timedelta("90D")).fillna(-1)) == [1, 1, -1]
    assert horizon_label(out, "advance", pd.Timedelta("30D")).equals(out["inflection"])
