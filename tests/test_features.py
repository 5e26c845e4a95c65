"""Point-in-time correctness of the feature engine: reference match and invariants."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_features import reference_features
from stageml.config import FeatureConfig
from stageml.durations import parse_duration
from stageml.features.engine import build_features, categorical_columns, feature_columns
from stageml.features.vocabulary import UnseenActivityWarning, Vocabulary, fit_vocabulary

ACTIVITIES = ["visit", "pricing", "demo", "email", "Case Study!"]
CHANNELS = ["web", "email", "phone", None]
BASE = pd.Timestamp("2024-03-01")
CONFIG = FeatureConfig(
    windows=("1d", "7d", "30d"),
    trend_window="7d",
    top_activities=3,
    top_channels=2,
    last_activities=3,
)


def random_interactions(seed: int, n: int = 60, buyers: int = 4, days: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, days * 86400, size=n)
    # Some exact-instant ties across different activities exercise the tie-break order.
    seconds[: n // 10] = seconds[n // 10 : 2 * (n // 10)]
    return pd.DataFrame(
        {
            "buyer_id": pd.array(
                [f"b{i}" for i in rng.integers(0, buyers, size=n)], dtype="string"
            ),
            "occurred_at": (BASE + pd.to_timedelta(seconds, unit="s")).astype("datetime64[us]"),
            "activity": pd.array(rng.choice(ACTIVITIES, size=n), dtype="string"),
            "channel": pd.array(
                rng.choice(np.array(CHANNELS, dtype=object), size=n), dtype="string"
            ),
            "direction": pd.array(
                rng.choice(["inbound", "outbound", None], size=n), dtype="string"
            ),
        }
    )


def as_ofs(days: list[int], hour: int = 0) -> list[pd.Timestamp]:
    return [BASE + pd.Timedelta(days=d, hours=hour) for d in days]


def fast(
    frame: pd.DataFrame,
    instants: list[pd.Timestamp],
    vocab: Vocabulary,
    config: FeatureConfig = CONFIG,
) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenActivityWarning)
        return build_features(frame, instants, vocabulary=vocab, config=config)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["buyer_id"] = out["buyer_id"].astype(str)
    out["as_of"] = pd.to_datetime(out["as_of"]).astype("datetime64[us]")
    for col in out.columns:
        if col.startswith("last_activity_"):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
        elif col not in ("buyer_id", "as_of"):
            # The engine emits float32; the reference computes in float64.
            out[col] = out[col].astype("float32")
    return out.sort_values(["buyer_id", "as_of"]).reset_index(drop=True)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("hour", [0, 7])
def test_matches_pandas_reference(seed: int, hour: int) -> None:
    data = random_interactions(seed)
    vocab = fit_vocabulary(data, None, CONFIG)
    instants = as_ofs([5, 20, 33, 61], hour=hour)
    got = comparable(fast(data, instants, vocab))
    want = comparable(reference_features(data, instants, vocab, CONFIG))
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) > 0
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-9)


def test_hour_windows_match_reference() -> None:
    config = FeatureConfig(
        windows=("12h", "36h"), trend_window="6h", top_activities=2, top_channels=2
    )
    data = random_interactions(11, n=80, days=4)
    vocab = fit_vocabulary(data, None, config)
    instants = [BASE + pd.Timedelta(hours=h, minutes=30) for h in (20, 50, 90)]
    got = comparable(fast(data, instants, vocab, config))
    want = comparable(reference_features(data, instants, vocab, config))
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-9)


events = st.lists(
    st.tuples(
        st.integers(0, 3),  # buyer
        st.integers(0, 40 * 86400),  # seconds after BASE
        st.sampled_from(ACTIVITIES),
        st.sampled_from(["web", "email", "phone"]),
        st.sampled_from(["inbound", "outbound"]),
    ),
    min_size=1,
    max_size=40,
)


def to_frame(rows: list[tuple[int, int, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "buyer_id": pd.array([f"b{r[0]}" for r in rows], dtype="string"),
            "occurred_at": (BASE + pd.to_timedelta([r[1] for r in rows], unit="s")).astype(
                "datetime64[us]"
            ),
            "activity": pd.array([r[2] for r in rows], dtype="string"),
            "channel": pd.array([r[3] for r in rows], dtype="string"),
            "direction": pd.array([r[4] for r in rows], dtype="string"),
        }
    )


FIXED_VOCAB = Vocabulary(
    activities=("visit", "pricing", "demo"),
    channels=("web", "email"),
    known_activities=frozenset(ACTIVITIES),
)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(past=events, future=events, cut=st.integers(1, 40 * 86400))
def test_later_interactions_never_change_features(past, future, cut) -> None:
    as_of = BASE + pd.Timedelta(seconds=cut)
    before = to_frame(past)
    # Future rows are moved to at-or-after the as-of instant (at it exactly, too).
    late = to_frame(future)
    late["occurred_at"] = (as_of + (late["occurred_at"] - BASE)).astype("datetime64[us]")
    combined = pd.concat([before, late], ignore_index=True)
    got = fast(combined, [as_of], FIXED_VOCAB)
    want = fast(before, [as_of], FIXED_VOCAB)
    pd.testing.assert_frame_equal(comparable(got), comparable(want))


@PROPERTY
@given(rows=events, seed=st.integers(0, 2**32 - 1), cut=st.integers(1, 40 * 86400))
def test_row_order_never_changes_features(rows, seed, cut) -> None:
    frame = to_frame(rows)
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    instants = [BASE + pd.Timedelta(seconds=cut), BASE + pd.Timedelta(days=41)]
    pd.testing.assert_frame_equal(
        comparable(fast(frame, instants, FIXED_VOCAB)),
        comparable(fast(shuffled, instants, FIXED_VOCAB)),
    )


@PROPERTY
@given(rows=events, shift=st.integers(-(10**9), 10**9), cut=st.integers(1, 40 * 86400))
def test_shifting_time_never_changes_features(rows, shift, cut) -> None:
    frame = to_frame(rows)
    moved = frame.assign(
        occurred_at=(frame["occurred_at"] + pd.Timedelta(seconds=shift)).astype("datetime64[us]")
    )
    t = BASE + pd.Timedelta(seconds=cut)
    got = comparable(fast(moved, [t + pd.Timedelta(seconds=shift)], FIXED_VOCAB)).drop(
        columns="as_of"
    )
    want = comparable(fast(frame, [t], FIXED_VOCAB)).drop(columns="as_of")
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-9)


def test_buyer_appears_only_with_history_before_as_of() -> None:
    data = to_frame([(0, 100, "visit", "web", "inbound"), (1, 5 * 86400, "demo", "web", "inbound")])
    got = fast(data, [BASE + pd.Timedelta(seconds=100), BASE + pd.Timedelta(days=1)], FIXED_VOCAB)
    # b0's only event is AT the first as-of (excluded); b1 starts after both instants.
    pairs = list(zip(got["buyer_id"], got["as_of"], strict=True))
    assert pairs == [("b0", BASE + pd.Timedelta(days=1))]


def test_unseen_activity_goes_to_other_with_warning() -> None:
    data = to_frame(
        [(0, 100, "visit", "web", "inbound"), (0, 200, "brand_new_thing", "web", "inbound")]
    )
    with pytest.warns(UnseenActivityWarning, match="brand_new_thing"):
        got = build_features(
            data, [BASE + pd.Timedelta(days=1)], vocabulary=FIXED_VOCAB, config=CONFIG
        )
    assert got.loc[0, "act_other_all"] == 1
    assert got.loc[0, "n_all"] == 2
    assert got.loc[0, "last_activity_1"] == "other"


def test_columns_are_fixed_by_the_vocabulary() -> None:
    train = random_interactions(1)
    vocab = fit_vocabulary(train, None, CONFIG)
    other_export = random_interactions(2).assign(activity=pd.array(["zzz"] * 60, dtype="string"))
    a = fast(train, as_ofs([30]), vocab)
    b = fast(other_export, as_ofs([30]), vocab)
    assert (
        list(a.columns) == list(b.columns) == ["buyer_id", "as_of", *feature_columns(vocab, CONFIG)]
    )
    assert (a.dtypes == b.dtypes).all()


def test_buyer_attributes_are_categoricals_not_one_hot() -> None:
    data = to_frame([(0, 100, "visit", "web", "inbound"), (1, 100, "visit", "web", "inbound")])
    buyers = pd.DataFrame(
        {"buyer_id": ["b0", "b1"], "segment": ["smb", "enterprise"], "employees": [10, 900]}
    )
    vocab = fit_vocabulary(data, buyers, CONFIG)
    got = build_features(
        data, [BASE + pd.Timedelta(days=1)], vocabulary=vocab, config=CONFIG, buyers=buyers
    )
    assert isinstance(got["buyer_segment"].dtype, pd.CategoricalDtype)
    assert list(got["buyer_segment"].astype(str)) == ["smb", "enterprise"]
    assert list(got["buyer_employees"]) == [10.0, 900.0]
    assert "buyer_segment" in categorical_columns(vocab, CONFIG)


def test_buyer_partitions_give_the_same_sorted_result() -> None:
    data = random_interactions(5, n=3000, buyers=50)
    vocab = fit_vocabulary(data, None, CONFIG)
    one = fast(data, as_ofs([10, 40]), vocab)
    calls: list[tuple[int, int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenActivityWarning)
        many = build_features(
            data,
            as_ofs([10, 40]),
            vocabulary=vocab,
            config=CONFIG.model_copy(update={"partition_rows": 500}),
            progress=lambda done, total: calls.append((done, total)),
        )
    assert calls == [(k, 6) for k in range(1, 7)]
    # Ranges of buyer ids concatenate into the globally sorted table, with no re-sort.
    pd.testing.assert_frame_equal(one, many)
    assert many.equals(many.sort_values(["buyer_id", "as_of"]).reset_index(drop=True))
    assert many["buyer_id"].nunique() == data["buyer_id"].nunique()


def test_wide_outputs_are_split_to_fit_the_engine_memory() -> None:
    # Few interactions but many as-of instants: the feature rows, not the interactions,
    # decide how many buyer partitions fit the memory limit (one partition of 20,000
    # buyers x 66 training instants ran out of the default 1 GB).
    data = random_interactions(9, n=20_000, buyers=2_000, days=60)
    vocab = fit_vocabulary(data, None, CONFIG)
    instants = as_ofs(list(range(2, 61)))
    roomy = fast(data, instants, vocab)
    calls: list[tuple[int, int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenActivityWarning)
        tight = build_features(
            data,
            instants,
            vocabulary=vocab,
            config=CONFIG.model_copy(update={"engine_memory_mb": 64}),
            progress=lambda done, total: calls.append((done, total)),
        )
    width = len(feature_columns(vocab, CONFIG)) + 2
    expected = -(-len(roomy) * width * 8 // (64 * 2**20 // 4))
    assert len(roomy) > 80_000 and expected > 1
    assert calls[-1] == (expected, expected)
    pd.testing.assert_frame_equal(roomy, tight)


def test_durations_in_names() -> None:
    assert "n_12h" in feature_columns(FIXED_VOCAB, FeatureConfig(windows=("12h",)))
    assert parse_duration("2w") == pd.Timedelta(days=14)


SCHEMA_CONFIG = CONFIG.model_copy(update={"top_activities": 2, "top_channels": 1})


@PROPERTY
@given(rows=events, seed=st.integers(0, 2**32 - 1), cut=st.integers(1, 40 * 86400))
def test_schema_never_depends_on_later_rows_or_row_order(rows, seed, cut) -> None:
    # `stageml features` without a model fits the vocabulary on the export itself: the
    # export and its past alone, shuffled, must give the same columns in the same order.
    as_of = BASE + pd.Timedelta(seconds=cut)
    frame = to_frame(rows)
    past = frame[frame["occurred_at"] < as_of].sample(frac=1.0, random_state=seed)
    vocab = fit_vocabulary(frame, None, SCHEMA_CONFIG, before=as_of)
    assert fit_vocabulary(past, None, SCHEMA_CONFIG, before=as_of) == vocab
    got = fast(frame, [as_of], vocab, SCHEMA_CONFIG)
    want = fast(past.reset_index(drop=True), [as_of], vocab, SCHEMA_CONFIG)
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(comparable(got), comparable(want))


def test_features_command_columns_ignore_later_rows_and_row_order(tmp_path) -> None:
    from typer.testing import CliRunner

    from stageml.cli import app
    from stageml.data.io import read_table
    from stageml.data.simulate import simulate, write_export

    sim = simulate(40, seed=3)
    as_of = sim.interactions["occurred_at"].quantile(0.5).floor("D")
    shuffled = sim.interactions[sim.interactions["occurred_at"] < as_of].sample(
        frac=1.0, random_state=0
    )
    outputs = []
    for name, export in (("full", sim), ("past", replace(sim, interactions=shuffled))):
        write_export(export, tmp_path / name)
        out = tmp_path / f"{name}.parquet"
        result = CliRunner().invoke(
            app,
            ["features", "--data", str(tmp_path / name), "--as-of", str(as_of), "--out", str(out)],
        )
        assert result.exit_code == 0, result.output
        outputs.append(read_table(out))
    full, past = outputs
    # Later rows would reorder the frequency-ranked activity columns of a vocabulary
    # fitted on the whole file; fitted on the rows before the as-of instant they cannot.
    assert list(full.columns) == list(past.columns)
    pd.testing.assert_frame_equal(full, past)
