"""Time-based training and backtest of the stage and inflection models.

The as-of instants are split in time order into train | validation | test. Training rows
whose label window reaches into the next period are purged, so no label ever looks past
the start of the period it is evaluated against. The validation period drives early
stopping and calibration; the test period is touched once, for the reported metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stageml.config import BoosterConfig, Params
from stageml.data.span import data_span, snapshot_dates
from stageml.data.validate import Export
from stageml.errors import StageMLError
from stageml.features.drift import fit_reference
from stageml.features.engine import KEYS, feature_columns
from stageml.features.stage_history import stage_columns
from stageml.features.vocabulary import Vocabulary, fit_vocabulary
from stageml.models.baselines import (
    LastActivityRule,
    MajorityBaseline,
    count_gbm_baseline,
    fit_in_background,
    logistic_baseline,
)
from stageml.models.bundle import StageModel, at_final_stage, in_exit
from stageml.models.choices import behaviour_only, elapsed_columns, linear_columns, recency
from stageml.models.description import describe_data
from stageml.models.estimators import CalibratedLGBM, Calibration
from stageml.models.hazard import fit_hazard, horizon_metrics
from stageml.models.metrics import (
    inflection_metrics,
    reliability_curve,
    stage_confusion,
    stage_metrics,
)
from stageml.models.row_predictions import RowPredictions
from stageml.models.snapshots import build_snapshots


@dataclass(frozen=True)
class TimeSplit:
    """As-of instants of each period (train rows already purged)."""

    train: list[pd.Timestamp]
    valid: list[pd.Timestamp]
    test: list[pd.Timestamp]

    def describe(self) -> dict[str, str]:
        """Period boundaries for logging."""
        return {
            f"{name}_{edge}": str(getattr(self, name)[i].date())
            for name in ("train", "valid", "test")
            for edge, i in (("start", 0), ("end", -1))
        }


@dataclass
class TrainingResult:
    """The fitted model and everything the run reports."""

    model: StageModel
    metrics: dict[str, float]
    split: TimeSplit
    data_description: dict[str, Any]
    confusion: np.ndarray
    reliability: dict[str, dict[str, list[float]]]
    test_frame: pd.DataFrame = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    # The product's calibrated inflection on buyers who can still advance, per period (the
    # train and validation curves are in-sample for the refitted booster and the map).
    reliability_by_period: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # Labelled test rows: keys, label, can_advance and every candidate's inflection score,
    # for intervals and paired comparisons (stageml.models.metrics.paired_bootstrap).
    inflection_test: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)


def time_split(instants: list[pd.Timestamp], params: Params) -> TimeSplit:
    """Split sorted as-of instants into train | valid | test, purging label overlap."""
    dates = sorted(instants)
    n = len(dates)
    n_test = max(1, round(n * params.train.test_fraction))
    n_valid = max(1, round(n * params.train.valid_fraction))
    if n - n_test - n_valid < 2:
        raise StageMLError(
            f"only {n} snapshot instants: too few for a train/validation/test split. Fix: "
            "use a longer export, a shorter snapshots.every, or smaller fractions"
        )
    test = dates[n - n_test :]
    valid = dates[n - n_test - n_valid : n - n_test]
    reach = params.labels.label_delay + params.labels.horizon
    train = [t for t in dates[: n - n_test - n_valid] if t + reach <= valid[0]]
    valid = [t for t in valid if t + reach <= test[0]]
    if len(train) < 1 or len(valid) < 1:
        raise StageMLError(
            "after purging as-of instants whose label horizon overlaps the next period, a "
            "period is empty. Fix: use a longer export or a shorter labels.horizon"
        )
    return TimeSplit(train=train, valid=valid, test=test)


def _booster(
    config: BoosterConfig, params: Params, n_classes: int, task: str, columns: list[str]
) -> CalibratedLGBM:
    calibration: Calibration = params.train.calibration
    refit, linear, class_weight, half_life = False, None, params.train.class_weight, None
    decreasing = None
    if task in BINARY_TASKS:
        # The exit model is fitted like the inflection model, except for cooling: going
        # quiet is what makes a buyer leave, so elapsed time may not only lower it.
        own = params.train.inflection_fit
        calibration = own.calibration or calibration
        refit = own.refit
        linear = linear_columns(own.linear_base, columns)
        decreasing = elapsed_columns(columns) if own.cooling and task == "inflection" else None
        class_weight = own.class_weight
        half_life = recency(own.recency_half_life, params.labels.horizon)
    return CalibratedLGBM(
        n_classes=n_classes,
        **config.model_dump(),
        class_weight=class_weight,
        recency_half_life=half_life,
        calibration=calibration,
        refit=refit,
        linear_columns=linear,
        decreasing_columns=decreasing,
        ignored_columns=behaviour_only(columns) if task == "stage" else None,
        random_state=params.seed,
    )


# The binary questions asked of buyers who can still advance: move on, or leave.
BINARY_TASKS = ("inflection", "exit")


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}.{k}": v for k, v in values.items()}


@dataclass
class TrainingData:
    """Snapshots with features and labels, the vocabulary and the split: the fit's input.

    Kept apart from fitting so that a pipeline can cache the expensive snapshots and so
    that everything a fit depends on is one inspectable object.
    """

    snapshots: pd.DataFrame = field(repr=False)
    vocabulary: Vocabulary
    split: TimeSplit
    description: dict[str, Any]
    seconds: float = 0.0


def prepare_training(
    export: Export, params: Params, *, progress: Callable[[str], None] | None = None
) -> TrainingData:
    """Snapshot instants, time split, vocabulary (pre-test data only), features + labels."""
    say = progress or (lambda _msg: None)
    if export.stage_history is None or export.stage_history.empty:
        raise StageMLError(
            "training needs a stage_history table. Fix: add stage_history.csv|.parquet "
            "(buyer_id, stage, entered_at) to the export folder"
        )
    clock = time.perf_counter()
    start, end = data_span(export.interactions, export.stage_history)
    instants = snapshot_dates(params, start, end)
    split = time_split(instants, params)
    # The vocabulary is learned from what was known before the test period only.
    known = export.interactions[export.interactions["occurred_at"] < split.test[0]]
    vocabulary = fit_vocabulary(known, export.buyers, params.features)
    say(f"building snapshots at {len(instants)} as-of instants")
    snaps = build_snapshots(
        export.interactions,
        export.stage_history,
        params=params,
        vocabulary=vocabulary,
        buyers=export.buyers,
        as_of=split.train + split.valid + split.test,
    )
    period = _periods(snaps, split)
    return TrainingData(
        snapshots=snaps,
        vocabulary=vocabulary,
        split=split,
        description=describe_data(export, snaps, period, params),
        seconds=time.perf_counter() - clock,
    )


def _periods(snaps: pd.DataFrame, split: TimeSplit) -> pd.Series:
    return snaps["as_of"].map(
        {
            **{t: "train" for t in split.train},
            **{t: "valid" for t in split.valid},
            **{t: "test" for t in split.test},
        }
    )


def train(
    export: Export,
    params: Params,
    *,
    progress: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Build snapshots, fit both models with a time-based backtest, and score baselines."""
    return fit(prepare_training(export, params, progress=progress), params, progress=progress)


def fit(
    data: TrainingData, params: Params, *, progress: Callable[[str], None] | None = None
) -> TrainingResult:
    """Fit both models on prepared snapshots; metrics on the test period vs baselines."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {"features_s": data.seconds}
    snaps, vocabulary, split = data.snapshots, data.vocabulary, data.split
    columns = feature_columns(vocabulary, params.features) + stage_columns(params)
    period = _periods(snaps, split)
    n_stages = len(params.stages)

    advancing = snaps["can_advance"].fillna(False).astype(bool)

    def rows(
        name: str, label: str, *, only_advancing: bool = False
    ) -> tuple[pd.DataFrame, np.ndarray]:
        mask = (period == name) & snaps[label].notna()
        if only_advancing:
            mask &= advancing
        return snaps.loc[mask, columns], snaps.loc[mask, label].astype(int).to_numpy()

    clock = time.perf_counter()
    metrics: dict[str, float] = {}
    reliability: dict[str, dict[str, list[float]]] = {}
    fitted: dict[str, CalibratedLGBM] = {}
    # Each model's raw probabilities, each snapshot row predicted once (rows overlap).
    raw_of: dict[str, RowPredictions] = {}
    tasks = [
        ("stage", "stage_index", n_stages, params.train.stage),
        ("inflection", "inflection", 2, params.train.inflection),
    ]
    if params.exits:
        tasks.append(("exit", "exit", 2, params.train.inflection))
    # Each task's test labels and rows, its candidates' test probabilities, and the
    # baselines' still being fitted in the worker (read after every booster is fitted).
    backtest: dict[
        str, tuple[np.ndarray, pd.Index, dict[str, np.ndarray], dict[str, Future[np.ndarray]]]
    ] = {}
    worker = params.train.baselines_in_worker
    for task, label, n_classes, config in tasks:
        say(f"training the {task} model")
        X, y = rows("train", label)
        Xt, yt = rows("test", label)
        # The model's own rows: for inflection, optionally the buyers who can still advance.
        own = task in BINARY_TASKS and params.train.inflection_fit.rows == "can_advance"
        Xm, ym = rows("train", label, only_advancing=True) if own else (X, y)
        Xmv, ymv = rows("valid", label, only_advancing=own)
        if (
            len(np.unique(y)) < 2
            or len(np.unique(ym)) < 2
            or len(np.unique(ymv)) < 2
            or len(Xt) == 0
        ):
            raise StageMLError(
                f"the {task} model has too few labeled rows ({len(Xm)} train, {len(Xt)} test) "
                "or a single class. Fix: use a larger export or check stage_history"
            )
        model = _booster(config, params, n_classes, task, columns)
        # The baselines read what the model reads (the stage model: behaviour, not the
        # record); the count GBM, the rows and labels the product's model learned from
        # (with the refit, the validation period's too).
        ignored = list(model.ignored_columns or ())
        Xb, Xtb = X.drop(columns=ignored), Xt.drop(columns=ignored)
        yardsticks = {
            "baseline_logistic": fit_in_background(
                logistic_baseline(Xb, n_classes=n_classes, random_state=params.seed),
                Xb,
                y,
                Xtb,
                worker=worker,
            ),
            "baseline_counts": fit_in_background(
                count_gbm_baseline(columns, random_state=params.seed),
                *_final_rows(task, params, (Xm, ym), (Xmv, ymv)),
                Xt,
                worker=worker,
            ),
        }
        model.fit(
            Xm,
            ym,
            X_valid=Xmv,
            y_valid=ymv,
            as_of=snaps.loc[Xm.index, "as_of"].to_numpy(),
            as_of_valid=snaps.loc[Xmv.index, "as_of"].to_numpy(),
            groups_valid=snaps.loc[Xmv.index, "buyer_id"].to_numpy(),
        )
        fitted[task] = model
        raw_of[task] = RowPredictions(model.predict_proba_raw, snaps, columns)
        raw = raw_of[task](Xt.index)
        calibrated = model.calibrate(raw)
        if task in BINARY_TASKS:
            # As the product scores it (StageModel.predict_features): at the predicted final
            # stage, after inflection_fit.final_stage; no inflection for a buyer in an exit.
            stage_p = fitted["stage"].calibrate(raw_of["stage"](Xt.index))
            rule = params.train.inflection_fit.final_stage
            exited = in_exit(Xt) if task == "inflection" else np.zeros(len(Xt), dtype=bool)
            raw, calibrated = (
                _binary(np.where(exited, 0.0, at_final_stage(p[:, 1], stage_p, rule)))
                for p in (raw, calibrated)
            )
        backtest[task] = (
            yt,
            Xt.index,
            {
                "model": calibrated,
                "model_raw": raw,
                "baseline_majority": MajorityBaseline(n_classes=n_classes)
                .fit(X, y)
                .predict_proba(Xt),
                "baseline_rule": _rule(n_classes, X, y, Xt),
            },
            yardsticks,
        )
    for task, *_ in tasks:
        yt, test_index, ready, pending = backtest.pop(task)
        candidates = ready | {name: future.result() for name, future in pending.items()}
        model = fitted[task]
        for name, proba in candidates.items():
            prefix = f"{task}.{name}" if name != "model" else task
            if task == "stage":
                metrics.update(_prefixed(prefix, stage_metrics(yt, proba, params.stages)))
            else:
                metrics.update(_prefixed(prefix, inflection_metrics(yt, proba[:, 1])))
                can = advancing.loc[test_index].to_numpy(bool)
                metrics.update(
                    _prefixed(f"{prefix}.can_advance", inflection_metrics(yt[can], proba[can, 1]))
                )
        metrics[f"{task}.best_iteration"] = float(model.best_iteration_)
        if model.recency_half_life_ is not None:
            metrics[f"{task}.recency_half_life_days"] = model.recency_half_life_ / pd.Timedelta(
                days=1
            )
        if task == "exit":
            reliability["exit"] = reliability_curve(yt, candidates["model"][:, 1])
        elif task == "inflection":
            reliability["calibrated"] = reliability_curve(yt, candidates["model"][:, 1])
            reliability["raw"] = reliability_curve(yt, candidates["model_raw"][:, 1])
            inflection_test = (
                snaps.loc[test_index, list(KEYS)]
                .reset_index(drop=True)
                .assign(
                    label=yt,
                    can_advance=advancing.loc[test_index].to_numpy(bool),
                    **{name: proba[:, 1] for name, proba in candidates.items()},
                )
            )
        else:
            confusion = stage_confusion(yt, candidates["model"], n_stages)
    hazard = None
    if params.labels.horizons:
        say("training the multi-horizon hazard model")
        ends = {"train": split.valid[0], "valid": split.test[0]}
        inflection = fitted["inflection"]
        hazard = fit_hazard(
            snaps,
            columns,
            period,
            ends,
            params,
            decreasing_columns=inflection.decreasing_columns,
        )
        rule = params.train.inflection_fit.final_stage

        def as_scored(rows: pd.DataFrame, p: np.ndarray) -> np.ndarray:
            stage_p = fitted["stage"].calibrate(raw_of["stage"](rows.index))
            return np.where(in_exit(rows), 0.0, at_final_stage(p, stage_p, rule))

        metrics.update(horizon_metrics(hazard, snaps[period == "test"], columns, as_scored))
    timings["fit_s"] = time.perf_counter() - clock
    by_period = {
        name: _product_reliability(
            fitted, raw_of, params, *rows(name, "inflection", only_advancing=True)
        )
        for name in ("train", "valid", "test")
    }
    model_bundle = StageModel(
        params=params,
        vocabulary=vocabulary,
        stage_model=fitted["stage"],
        inflection_model=fitted["inflection"],
        drift_reference=fit_reference(snaps.loc[period == "train"], columns),
        exit_model=fitted.get("exit"),
        hazard_model=hazard,
    )
    test_frame = snaps[period == "test"].reset_index(drop=True)
    return TrainingResult(
        model=model_bundle,
        metrics=metrics,
        split=split,
        data_description=data.description,
        confusion=confusion,
        reliability=reliability,
        test_frame=test_frame,
        timings=timings,
        reliability_by_period=by_period,
        inflection_test=inflection_test,
    )


def _product_reliability(
    fitted: dict[str, CalibratedLGBM],
    raw_of: dict[str, RowPredictions],
    params: Params,
    X: pd.DataFrame,
    y: np.ndarray,
) -> dict[str, list[float]]:
    """Return the reliability curve of the product's inflection probabilities on ``X``."""
    p = fitted["inflection"].calibrate(raw_of["inflection"](X.index))[:, 1]
    stage_p = fitted["stage"].calibrate(raw_of["stage"](X.index))
    rule = params.train.inflection_fit.final_stage
    return reliability_curve(y, at_final_stage(p, stage_p, rule))


def _final_rows(
    task: str,
    params: Params,
    train_rows: tuple[pd.DataFrame, np.ndarray],
    valid_rows: tuple[pd.DataFrame, np.ndarray],
) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the rows the final model is fitted on: train, + validation if refitted."""
    if task == "inflection" and params.train.inflection_fit.refit:
        return pd.concat([train_rows[0], valid_rows[0]]), np.r_[train_rows[1], valid_rows[1]]
    return train_rows


def _binary(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - p, p])


def _rule(n_classes: int, X: pd.DataFrame, y: np.ndarray, Xt: pd.DataFrame) -> np.ndarray:
    if "last_activity_1" not in X:
        return MajorityBaseline(n_classes=n_classes).fit(X, y).predict_proba(Xt)
    return LastActivityRule(n_classes=n_classes).fit(X, y).predict_proba(Xt)
