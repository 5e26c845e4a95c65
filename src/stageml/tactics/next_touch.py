"""Each buyer's best next touches as of an instant: the library side of ``stageml next-touch``.

With a randomised trial log the lifts come from a T-learner fitted on the trial (causal by
design); without one, from the model-based counterfactual (only as good as the history the
model learned from; see README, "Next touches"). Every buyer is accounted for: listed with
``k`` touches, or rejected with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stageml.config import TouchConfig
from stageml.data.io import find_table, read_table
from stageml.data.validate import Export
from stageml.errors import ConfigError, ContractError
from stageml.features.engine import KEYS
from stageml.models.bundle import StageModel
from stageml.models.labels import build_labels
from stageml.tactics.check import stage_touch_table
from stageml.tactics.counterfactual import counterfactual_lift
from stageml.tactics.points import features_at_points
from stageml.tactics.recommend import model_inputs, top_touches
from stageml.tactics.uplift import CONTROL, TLearner

TRIAL_COLUMNS = ("buyer_id", "assigned_at", "touch")
COUNTERFACTUAL_CAUTION = (
    "without a randomised trial these lifts come from the model's reading of past seller "
    "choices, not from an experiment (README, 'Next touches')"
)


@dataclass(frozen=True)
class NextTouches:
    """One next-touch run's output.

    ``touches``: k rows per listed buyer; ``rejects``: ``buyer_id``, ``reason``;
    ``lift_table``: mean lift per predicted stage and touch; ``method``: which estimate.
    """

    touches: pd.DataFrame
    rejects: pd.DataFrame
    lift_table: pd.DataFrame
    method: str
    trial_rows: int = 0


def read_trial(path: str | Path, touches: tuple[str, ...]) -> pd.DataFrame:
    """Read a trial log (``buyer_id``, ``assigned_at``, ``touch``; ``"none"`` = control).

    Raises
    ------
    ContractError
        For a missing column, an unreadable instant or a touch that is not a configured one.

    """
    frame = read_table(path)
    for column in TRIAL_COLUMNS:
        if column not in frame.columns:
            raise ContractError(
                file=str(path),
                column=column,
                problem=f"missing; found columns {list(frame.columns)}",
                fix="a trial log has buyer_id, assigned_at (the instant) and touch",
            )
    stamps = pd.to_datetime(frame["assigned_at"], errors="coerce", utc=True)
    unknown = ~frame["touch"].isin((*touches, CONTROL))
    for column, bad, what in (
        ("assigned_at", stamps.isna(), "not an instant"),
        ("touch", unknown, f"not one of touches.activities {list(touches)} or {CONTROL!r}"),
    ):
        if bad.any():
            rows = [int(r) + 1 for r in np.flatnonzero(bad.to_numpy())]
            raise ContractError(
                file=str(path),
                column=column,
                rows=rows,
                problem=f"{what} (first: {frame.loc[bad, column].iloc[0]!r})",
                fix="correct those rows, or add the touch to touches.activities in params.yaml",
            )
    out = frame[list(TRIAL_COLUMNS)].copy()
    out["assigned_at"] = stamps.dt.tz_localize(None).astype("datetime64[us]")
    out["buyer_id"] = out["buyer_id"].astype("string")
    return out


def export_trial(folder: str | Path, touches: tuple[str, ...]) -> pd.DataFrame | None:
    """Read the export folder's trial log (``trial.parquet`` or ``.csv``), if it holds one.

    None also when the params name no touches: without candidates a trial has nothing to
    estimate.
    """
    path = find_table(folder, "trial")
    return None if path is None or not touches else read_trial(path, touches)


def next_touches(
    model: StageModel,
    export: Export,
    as_of: pd.Timestamp,
    config: TouchConfig,
    *,
    k: int,
    trial: pd.DataFrame | None = None,
    buyer_ids: list[str] | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> NextTouches:
    """List the ``k`` best touches per buyer as of ``as_of`` (all buyers, or ``buyer_ids``).

    Raises
    ------
    ConfigError
        When the params name no touches (``touches.activities`` is empty).

    """
    if not config.activities:
        raise ConfigError(
            "touches.activities is empty: there is no touch to weigh. Fix: name the seller's "
            "touches (outbound activities) under touches.activities in params.yaml"
        )
    interactions = export.interactions
    ids = pd.Series(
        sorted(
            set(interactions["buyer_id"])
            | (set() if export.buyers is None else set(export.buyers["buyer_id"]))
        )
        if buyer_ids is None
        else buyer_ids,
        dtype="string",
    )
    seen = set(interactions.loc[interactions["occurred_at"] < as_of, "buyer_id"])
    active = ids.isin(seen).to_numpy()
    points = pd.DataFrame({"buyer_id": ids[active].to_numpy(), "as_of": as_of})
    touches = config.activities
    if trial is None:
        method, trial_rows, support = "counterfactual", 0, None
        scores = counterfactual_lift(
            model,
            interactions,
            export.buyers,
            points,
            touches,
            stage_history=export.stage_history,
            threads=threads,
        )
        lift, low, high = scores, None, None
    else:
        method = "t_learner"
        learner, trial_rows, support = _fit_trial(
            model, export, as_of, trial, config, seed, threads
        )
        scores = model.predict_features(
            features_at_points(
                model,
                interactions,
                export.buyers,
                points,
                stage_history=export.stage_history,
                threads=threads,
            )
        )
        lift, low, high = learner.predict_lift(model_inputs(scores, model.stages))
    # Why a scored buyer gets no touches (NA: listed).
    reason = pd.Series(pd.NA, index=scores.index, dtype="string")
    reason[scores["stage"] == model.stages[-1]] = (
        f"predicted stage {model.stages[-1]}: no later stage to move to"
    )
    if support is not None:
        lo, hi = support
        outside = reason.isna() & ~scores["inflection_probability"].between(lo, hi)
        reason[outside] = (
            f"inflection likelihood outside {lo:.1%} .. {hi:.1%}, where the trial's buyers "
            f"lie (touches.support {config.support:.0%}): the trial has no buyer like this one"
        )
    keep = reason.isna().to_numpy()
    keys = scores[[*KEYS, "stage", "inflection_probability"]]
    listed = top_touches(keys[keep], lift[keep], _rows(low, keep), _rows(high, keep), k=k)
    rejects = pd.concat(
        [
            pd.DataFrame(
                {"buyer_id": ids[~active].to_numpy(), "reason": f"no interaction before {as_of}"}
            ),
            pd.DataFrame({"buyer_id": scores["buyer_id"][~keep], "reason": reason[~keep]}),
        ],
        ignore_index=True,
    )
    table = stage_touch_table(lift[keep].assign(stage=scores.loc[keep, "stage"]), model.stages)
    # Touches in params order whichever estimate (a T-learner knows the trial's arms only).
    table = table[[t for t in touches if t in table.columns]]
    return NextTouches(listed, rejects, table, method, trial_rows)


def report_touches(
    model: StageModel,
    export: Export,
    test_frame: pd.DataFrame,
    *,
    trial: pd.DataFrame | None,
    seed: int,
    threads: int | None = None,
) -> tuple[pd.Timestamp, NextTouches]:
    """Estimate the stage x touch lift table of a training run as next-touch does.

    Read as of the test period's last instant, over a seeded sample of at most
    ``touches.report_buyers`` of the buyers scored then, so its cost stays bounded
    whatever the size of the export.
    """
    as_of = pd.Timestamp(test_frame["as_of"].max())
    ids = test_frame.loc[test_frame["as_of"] == as_of, "buyer_id"].drop_duplicates()
    config = model.params.touches
    sample = ids.sample(min(config.report_buyers, len(ids)), random_state=seed)
    result = next_touches(
        model,
        export,
        as_of,
        config,
        k=1,
        trial=trial,
        buyer_ids=sorted(sample),
        seed=seed,
        threads=threads,
    )
    return as_of, result


def _rows(frame: pd.DataFrame | None, mask: np.ndarray) -> pd.DataFrame | None:
    return None if frame is None else frame[mask]


def _fit_trial(
    model: StageModel,
    export: Export,
    as_of: pd.Timestamp,
    trial: pd.DataFrame,
    config: TouchConfig,
    seed: int,
    threads: int | None,
) -> tuple[TLearner, int, tuple[float, float]]:
    """Fit the T-learner on trial rows whose outcome was known by ``as_of`` (no leakage).

    Also returns the trial's support: the central ``touches.support`` share of its rows'
    inflection likelihoods. The outcome models are fitted there only; outside it (buyers gone
    quiet, whom no trial enrols) their difference is an extrapolation, not an estimate.
    """
    if export.stage_history is None:
        raise ContractError(
            file="stage_history",
            problem="a trial's outcomes are read from the stage history, which is missing",
            fix="add stage_history to the export, or drop --trial",
        )
    rows = trial[trial["assigned_at"] < as_of].rename(columns={"assigned_at": "as_of"})
    labels = build_labels(
        rows,
        export.stage_history,
        stages=model.stages,
        config=model.params.labels,
        data_end=as_of,
        exits=model.params.exits,
    )
    known = labels["inflection"].notna().to_numpy()
    rows, y = rows[known].reset_index(drop=True), labels["inflection"][known].astype(int)
    features = features_at_points(
        model,
        export.interactions,
        export.buyers,
        rows,
        stage_history=export.stage_history,
        threads=threads,
    )
    X = model_inputs(model.predict_features(features, threads=threads), model.stages)
    learner = TLearner(n_bags=config.bags, interval=config.interval, random_state=seed)
    tail = (1 - config.support) / 2
    lo, hi = np.quantile(X["inflection_probability"], [tail, 1 - tail])
    return learner.fit(X, rows["touch"], y.to_numpy()), len(rows), (float(lo), float(hi))
