"""Reason families: one behaviour per family, its own numbers in words, sums kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stageml.explain.contributions import contributions
from stageml.explain.reasons import family_matrix, reason_table
from stageml.features.engine import feature_columns
from stageml.features.families import family_describer, feature_families
from stageml.models.train import TrainingResult
from test_explain import CONFIGS, VOCABULARY


@pytest.mark.parametrize("config", CONFIGS, ids=["days", "hours"])
def test_every_column_is_in_exactly_one_family_with_readable_text(config: object) -> None:
    families = feature_families(VOCABULARY, config)  # type: ignore[arg-type]
    members = [c for cols in families.values() for c in cols]
    assert sorted(members) == sorted(feature_columns(VOCABULARY, config))  # type: ignore[arg-type]
    assert len(members) == len(set(members))
    describe = family_describer(VOCABULARY, config)  # type: ignore[arg-type]
    for family, cols in families.items():
        for values in ({c: 2.0 for c in cols}, {c: np.nan for c in cols}):
            text = describe(family, values)
            assert text.strip() and "_" not in text, (family, text)


def test_family_texts_name_a_behaviour_with_its_own_numbers() -> None:
    config = CONFIGS[0]
    describe = family_describer(VOCABULARY, config)
    demo = {"act_demo_attended_7d": 3.0, "act_demo_attended_30d": 3.0}
    demo |= {"act_demo_attended_90d": 3.0, "act_demo_attended_all": 3.0}
    demo["days_since_act_demo_attended"] = 2.0
    assert describe("activity_demo_attended", demo) == (
        "3 × Demo Attended in the last 7 days, none before (the last 2 days ago)"
    )
    older = demo | {"act_demo_attended_7d": 0.0, "act_demo_attended_all": 5.0}
    assert describe("activity_demo_attended", older).startswith(
        "3 × Demo Attended in the last 30 days, 2 before"
    )
    never = {c: 0.0 for c in demo} | {"days_since_act_demo_attended": np.nan}
    assert describe("activity_demo_attended", never) == "no Demo Attended ever"
    quiet = {"days_since_last": 1.2, "gap_last_days": 3.0, "gap_mean_days": 3.0}
    assert describe("recency", quiet | {"gap_max_days": 9.0}) == (
        "no interaction for 29 hours (usual gap 3 days)"
    )


def test_family_contributions_sum_to_the_margin_and_reasons_name_families(
    trained: TrainingResult,
) -> None:
    model = trained.model
    X = trained.test_frame[model.feature_names].iloc[:200]
    families = feature_families(model.vocabulary, model.params.features)  # type: ignore[arg-type]
    full = contributions(model.inflection_model, X, workers=1)[:, 0, :]
    grouped = full[:, :-1] @ family_matrix(list(X.columns), families)
    np.testing.assert_allclose(
        grouped.sum(axis=1) + full[:, -1], model.inflection_model.raw_margin(X)[:, 0], atol=1e-9
    )
    table = reason_table(model, trained.test_frame.iloc[:200], k=3, workers=1)
    assert set(table["feature"]) <= set(families)
    # Each reason carries its family's summed contribution and the buyer's member values.
    row = table[table["model"] == "inflection"].iloc[0]
    assert set(row["value"]) == set(families[row["feature"]])
    j = list(families).index(row["feature"])
    assert np.isclose(row["contribution"], grouped[row["row"], j])


def test_top_reasons_vary_more_across_the_most_likely_buyers_than_single_columns(
    trained: TrainingResult,
) -> None:
    model = trained.model
    frame = trained.test_frame.drop_duplicates("buyer_id", keep="last").reset_index(drop=True)
    top = model.predict_features(frame).nlargest(100, "inflection_probability").index
    table = reason_table(model, frame.iloc[top], k=3, workers=1)
    up = table[(table["model"] == "inflection") & (table["direction"] == "up")]
    by_family = up.groupby("row")["feature"].apply(frozenset)
    # The same buyers ranked by single columns (the reasons before families).
    X = frame.iloc[top][model.feature_names]
    single = contributions(model.inflection_model, X, workers=1)[:, 0, :-1]
    by_column = {frozenset(np.argsort(-row)[:3]) for row in single}
    assert len(by_family) == 100
    assert by_family.nunique() >= 5 and by_family.nunique() > 2 * len(by_column)
    assert pd.Series([f for s in by_family for f in s]).nunique() >= 6
