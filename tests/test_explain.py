"""Reason codes: TreeSHAP agreement with shap, additivity, readable labels, ordering."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import shap

from stageml.config import FeatureConfig
from stageml.errors import ModelError
from stageml.explain.contributions import (
    PARALLEL_MIN_ROWS,
    class_contributions,
    contributions,
    default_workers,
    shared_pool,
    stage_contributions,
)
from stageml.explain.reasons import model_families, reason_codes, reason_table
from stageml.features.engine import feature_columns
from stageml.features.families import family_describer
from stageml.features.text import UnknownFeatureError, describe, describer
from stageml.features.vocabulary import Vocabulary
from stageml.models.train import TrainingResult


@pytest.fixture(scope="module")
def rows(trained: TrainingResult) -> pd.DataFrame:
    frame = trained.test_frame
    take = np.random.default_rng(3).choice(len(frame), size=min(300, len(frame)), replace=False)
    return frame.iloc[np.sort(take)][trained.model.feature_names]


@pytest.mark.parametrize("task", ["stage_model", "inflection_model"])
def test_pred_contrib_agrees_with_shap_tree_explainer(
    trained: TrainingResult, rows: pd.DataFrame, task: str
) -> None:
    estimator = getattr(trained.model, task)
    # The booster's part (without a linear base margin, if the model has one).
    ours = contributions(estimator, rows, workers=1, linear=False)
    # shap gets the same pandas frame (categorical dtypes included) and, because a
    # LightGBM Booster keeps the trees grown after the early-stopping best round, the
    # same tree limit; without it shap explains every tree.
    explainer = shap.TreeExplainer(estimator.booster_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = np.asarray(explainer.shap_values(rows, tree_limit=estimator.best_iteration_))
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))
    n_features = rows.shape[1]
    if estimator.n_classes == 2:
        assert theirs.shape == (len(rows), n_features)
        theirs = theirs[:, None, :]
    else:
        assert theirs.shape == (len(rows), n_features, estimator.n_classes)
        theirs = theirs.transpose(0, 2, 1)
    np.testing.assert_allclose(ours[:, :, :n_features], theirs, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours[0, :, n_features], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("task", ["stage_model", "inflection_model"])
def test_contributions_sum_to_raw_margin(
    trained: TrainingResult, rows: pd.DataFrame, task: str
) -> None:
    estimator = getattr(trained.model, task)
    raw = estimator.booster_.predict(rows, raw_score=True, num_iteration=estimator.best_iteration_)
    trees = contributions(estimator, rows, workers=1, linear=False).sum(axis=2)
    np.testing.assert_allclose(trees, np.asarray(raw).reshape(len(rows), -1), atol=1e-9, rtol=0)
    # With the linear base margin, if any: the model's whole raw margin.
    total = contributions(estimator, rows, workers=1).sum(axis=2)
    np.testing.assert_allclose(total, estimator.raw_margin(rows), atol=1e-9, rtol=0)


def test_multiprocess_contributions_equal_serial(
    trained: TrainingResult, rows: pd.DataFrame
) -> None:
    for estimator in (trained.model.stage_model, trained.model.inflection_model):
        serial = contributions(estimator, rows, workers=1)
        parallel = contributions(estimator, rows, workers=2)
        assert np.array_equal(serial, parallel)


def test_class_contributions_equal_full_model_for_the_chosen_class(
    trained: TrainingResult, rows: pd.DataFrame
) -> None:
    estimator = trained.model.stage_model
    classes = np.arange(len(rows)) % estimator.n_classes  # every class, mixed rows
    full = contributions(estimator, rows, workers=1)[np.arange(len(rows)), classes]
    serial = class_contributions(estimator, rows, classes, workers=1)
    np.testing.assert_allclose(serial, full, atol=1e-9, rtol=0)
    assert np.array_equal(class_contributions(estimator, rows, classes, workers=2), serial)


def test_binary_models_explain_both_classes(trained: TrainingResult, rows: pd.DataFrame) -> None:
    # A two-stage taxonomy makes the stage model binary: one logit f for the later stage,
    # -f for the earlier one (Olist and Maven; reason codes and plots failed on them).
    binary = trained.model.inflection_model
    both = stage_contributions(binary, rows)
    margin = binary.raw_margin(rows)[:, 0]
    np.testing.assert_allclose(both[:, 1].sum(axis=1), margin, atol=1e-9)
    np.testing.assert_allclose(both[:, 0].sum(axis=1), -margin, atol=1e-9)
    classes = np.arange(len(rows)) % 2
    chosen = class_contributions(binary, rows, classes, workers=1)
    np.testing.assert_allclose(chosen, both[np.arange(len(rows)), classes], atol=1e-12)
    assert np.array_equal(class_contributions(binary, rows, classes, workers=2), chosen)


def test_default_workers_keep_small_batches_in_process() -> None:
    assert default_workers(PARALLEL_MIN_ROWS - 1) == 1
    assert default_workers(PARALLEL_MIN_ROWS) >= 1


def test_reason_table_same_with_default_and_explicit_workers(
    trained: TrainingResult,
) -> None:
    frame = trained.test_frame.iloc[np.resize(np.arange(len(trained.test_frame)), 3000)]
    frame = frame.reset_index(drop=True)
    pd.testing.assert_frame_equal(
        reason_table(trained.model, frame, workers=2), reason_table(trained.model, frame, workers=1)
    )
    # The pool is kept for the next call with the same model, replaced for another one.
    pool = shared_pool((trained.model.stage_model, trained.model.inflection_model), 2)
    assert shared_pool((trained.model.stage_model, trained.model.inflection_model), 2) is pool
    assert shared_pool((trained.model.stage_model,), 2) is not pool


def test_contributions_reject_bad_workers(trained: TrainingResult, rows: pd.DataFrame) -> None:
    with pytest.raises(ModelError, match="workers must be at least 1"):
        contributions(trained.model.stage_model, rows, workers=0)


VOCABULARY = Vocabulary(
    activities=("pricing_page_visit", "Demo Attended", "email-open", "webinar"),
    channels=("web", "email", "Paid Social"),
    attributes={"segment": ("smb", "mid_market", "enterprise"), "employee count": None},
)
CONFIGS = [
    FeatureConfig(windows=("7d", "30d", "90d")),
    FeatureConfig(windows=("12h", "7d"), trend_window="12h", last_activities=2),
]
SAMPLE_VALUES = {"last_activity": "Demo Attended", "buyer_segment": "enterprise"}


@pytest.mark.parametrize("config", CONFIGS, ids=["days", "hours"])
def test_every_feature_name_has_readable_text(config: FeatureConfig) -> None:
    describe_one = describer(VOCABULARY, config)
    names = feature_columns(VOCABULARY, config)
    assert any(n.endswith("_12h") for n in names) or config.windows[0] != pd.Timedelta("12h")
    for name in names:
        value = next((v for k, v in SAMPLE_VALUES.items() if name.startswith(k)), 4.0)
        for shown in (value, np.nan):
            text = describe_one(name, shown)
            assert text.strip(), name
            assert text != name, name
            assert "_" not in text, (name, text)


def test_texts_read_as_intended() -> None:
    config = CONFIGS[0]
    assert describe("act_pricing_page_visit_7d", 4.0, VOCABULARY, config) == (
        "4 × pricing page visit in the last 7 days"
    )
    assert describe("days_since_last", 45.0, VOCABULARY, config) == "no interaction for 45 days"
    assert describe("buyer_segment", "enterprise", VOCABULARY, config) == "segment = enterprise"
    assert (
        describe("last_activity_1", "Demo Attended", VOCABULARY, config)
        == "last activity: Demo Attended"
    )
    assert (
        describe("inbound_share_30d", 0.8, VOCABULARY, config)
        == "inbound share 80% in the last 30 days"
    )
    assert describe("intensity_7d", 2.3, VOCABULARY, config) == (
        "activity 2.3x the buyer's usual rate in the last 7 days"
    )
    assert describe("days_since_act_pricing_page_visit", np.nan, VOCABULARY, config) == (
        "no pricing page visit ever"
    )
    assert describe("n_12h", 3.0, VOCABULARY, CONFIGS[1]) == "3 interactions in the last 12 hours"


def test_unknown_feature_name_is_an_error() -> None:
    with pytest.raises(UnknownFeatureError, match="'act_fax_7d' is not produced"):
        describe("act_fax_7d", 1.0, VOCABULARY, CONFIGS[0])


def test_reason_codes_are_signed_and_sorted(trained: TrainingResult) -> None:
    model = trained.model
    frame = trained.test_frame.iloc[:25]
    table = reason_table(model, frame, k=3, workers=1)
    assert set(table["model"]) == {"stage", "inflection"} or set(table["model"]) == {"stage"}
    for (_, _, direction), group in table.groupby(["row", "model", "direction"]):
        values = group.sort_values("rank")["contribution"].to_numpy()
        assert len(values) <= 3
        if direction == "up":
            assert (values > 0).all() and (np.diff(values) <= 0).all()
        else:
            assert (values < 0).all() and (np.diff(values) >= 0).all()
    assert table["text"].str.match(r".+ \([+-]\d+\.\d\d\)$").all()
    # Each row's words and values are its own buyer's (texts are made once per distinct
    # values and shared): the row's feature values, described one by one, give its text.
    describe_one = family_describer(model.vocabulary, model.params.features)
    families = model_families(model, model.feature_names)
    for row in table.itertuples():
        members = list(families[row.feature])
        mine = frame[members].iloc[row.row]
        assert list(row.value) == members
        pairs = zip(row.value.values(), mine, strict=True)
        assert all(a == b or (pd.isna(a) and pd.isna(b)) for a, b in pairs)
        if row.feature != "recorded_stage":
            assert row.text == f"{describe_one(row.feature, row.value)} ({row.contribution:+.2f})"

    # Batch scoring hands over the stages it predicted; the reasons are the same.
    given = model.stage_model.predict(frame[model.feature_names])
    pd.testing.assert_frame_equal(
        reason_table(model, frame, k=3, workers=1, predicted=given), table
    )

    wide = reason_codes(model, frame, k=3, workers=1)
    assert len(wide) == len(frame)
    expected = [
        f"{t}_{d}_{r}" for t in ("stage", "inflection") for d in ("up", "down") for r in (1, 2, 3)
    ]
    assert list(wide.columns) == ["buyer_id", "as_of", "stage", *expected]
    first = table[(table["row"] == 0) & (table["model"] == "stage") & (table["direction"] == "up")]
    if len(first):
        assert wide.loc[0, "stage_up_1"] == first.iloc[0]["text"]
    # With final_stage "zero" the predicted final stage has no inflection: no reasons.
    zeroed = dataclasses.replace(
        model,
        params=model.params.model_copy(
            update={
                "train": model.params.train.model_copy(
                    update={
                        "inflection_fit": model.params.train.inflection_fit.model_copy(
                            update={"final_stage": "zero"}
                        )
                    }
                )
            }
        ),
    )
    scored = model.predict_features(trained.test_frame)
    at_final = trained.test_frame[(scored["stage"] == model.stages[-1]).to_numpy()].iloc[:10]
    wide = reason_codes(zeroed, at_final, k=3, workers=1)
    final = wide["stage"] == model.stages[-1]
    assert final.all() and len(final)
    assert wide.loc[final, [c for c in expected if c.startswith("inflection")]].isna().all().all()


def test_reason_codes_reject_bad_k(trained: TrainingResult) -> None:
    with pytest.raises(ModelError, match="k must be at least 1"):
        reason_table(trained.model, trained.test_frame.iloc[:2], k=0)


def test_shap_figures_render(trained: TrainingResult) -> None:
    import matplotlib.pyplot as plt

    from stageml.explain.plots import global_figures, waterfall_figure

    model = trained.model
    figures = global_figures(model, trained.test_frame, sample=200, seed=1)
    expected = {f"beeswarm_{s}" for s in model.stages} | {f"mean_abs_{s}" for s in model.stages}
    assert expected | {"mean_abs_inflection"} <= set(figures)
    assert sum(name.startswith("dependence_") for name in figures) == 3
    for task in ("stage", "inflection"):
        figures[f"waterfall_{task}"] = waterfall_figure(
            model, trained.test_frame.iloc[3], task=task
        )  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="explains one buyer"):
        waterfall_figure(model, trained.test_frame.iloc[:2])
    for figure in figures.values():
        plt.close(figure)
