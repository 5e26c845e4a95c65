"""Typed configuration loaded from ``params.yaml``.

Unknown or missing keys are errors, never silent defaults: a typo in a scheduled job's
params must stop the job, not quietly train something else.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from stageml.durations import parse_duration
from stageml.errors import ConfigError

DEFAULT_STAGES: tuple[str, ...] = ("alerted", "engaged", "evaluating", "committed", "purchased")

Duration = Annotated[pd.Timedelta, BeforeValidator(parse_duration)]
NonNegativeDuration = Annotated[
    pd.Timedelta, BeforeValidator(functools.partial(parse_duration, allow_zero=True))
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model registered before a setting existed still loads: the setting takes its
        # default, as it would have in that run's params.yaml.
        super().__setstate__(state)
        for name, field in type(self).model_fields.items():
            if name not in self.__dict__:
                self.__dict__[name] = field.get_default(call_default_factory=True)


class FeatureConfig(_Section):
    """How interaction histories become point-in-time features."""

    windows: tuple[Duration, ...] = Field(
        default_factory=lambda: tuple(parse_duration(w) for w in ("7d", "30d", "90d"))
    )
    trend_window: Duration = Field(default_factory=lambda: parse_duration("30d"))
    top_activities: int = Field(default=20, ge=1)
    top_channels: int = Field(default=10, ge=1)
    last_activities: int = Field(default=3, ge=0)
    # Buyers are processed in partitions of about this many interactions each, so the
    # engine's working memory follows the partition size and not the export size.
    partition_rows: int = Field(default=1_000_000, ge=1000)
    # The feature engine's working-memory budget: more partitions when a partition's
    # feature rows would pass a quarter of it (scoring also sizes DuckDB's limit from it).
    engine_memory_mb: int = Field(default=1024, ge=64)
    # Stage-aware features from the recorded stage history as known at t
    # (features/stage_history.py); a model using them needs stage_history to score.
    stage_history: bool = False

    @field_validator("windows")
    @classmethod
    def _sorted_unique(cls, value: tuple[pd.Timedelta, ...]) -> tuple[pd.Timedelta, ...]:
        if not value:
            raise ValueError("at least one window is needed")
        return tuple(sorted(set(value)))


class LabelConfig(_Section):
    """What counts as an inflection and when a recorded stage is trusted."""

    horizon: Duration = Field(default_factory=lambda: parse_duration("30d"))
    # CRMs record stage changes late; the stage label of (buyer, t) may be read at
    # t + label_delay so that it reflects the buyer's state at t, not the clerk's delay.
    label_delay: NonNegativeDuration = Field(default_factory=lambda: pd.Timedelta(0))
    # Further horizons answered by one discrete-time hazard model (models/hazard.py), as
    # inflection_probability_<h>; empty: the single-horizon model only.
    horizons: tuple[Duration, ...] = ()

    @field_validator("horizons")
    @classmethod
    def _sorted_horizons(cls, value: tuple[pd.Timedelta, ...]) -> tuple[pd.Timedelta, ...]:
        return tuple(sorted(set(value)))


class SnapshotConfig(_Section):
    """The as-of instants that training snapshots are taken at."""

    every: Duration = Field(default_factory=lambda: parse_duration("7d"))
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    # Leave this much history before the first snapshot so early features are not empty.
    warmup: Duration = Field(default_factory=lambda: parse_duration("30d"))

    @field_validator("start", "end", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> pd.Timestamp | None:
        if value is None:
            return None
        stamp = pd.Timestamp(value)
        return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


class BoosterConfig(_Section):
    """LightGBM capacity for one model; defaults chosen from the capacity table in README.

    These are the stage model's defaults; ``train.inflection`` defaults to 7 leaves of
    depth 3 (see :class:`TrainConfig`).
    """

    num_leaves: int = Field(default=15, ge=2)
    max_depth: int = Field(default=6, ge=-1)
    # 0.1 x 200 rounds learns as far as 0.05 x 400 did at half the trees: fitting, prediction
    # and reason codes cost half, metrics within 0.002 (README, "Fitting speed").
    learning_rate: float = Field(default=0.1, gt=0)
    n_estimators: int = Field(default=200, ge=1)
    min_child_samples: int = Field(default=40, ge=1)
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_fraction: float = Field(default=0.8, gt=0, le=1)
    lambda_l2: float = Field(default=1.0, ge=0)
    early_stopping_rounds: int = Field(default=30, ge=1)
    # Categorical splits (LightGBM's own defaults here). Many-level attributes such as a
    # sales agent or a landing page otherwise get splits fitted to a few buyers each.
    cat_smooth: float = Field(default=10.0, ge=0)
    cat_l2: float = Field(default=10.0, ge=0)
    min_data_per_group: int = Field(default=100, ge=1)
    max_cat_threshold: int = Field(default=32, ge=1)


class InflectionFitConfig(_Section):
    """How the inflection model is fitted (its booster capacity is ``train.inflection``)."""

    # "can_advance": learn from buyers whose stage can still advance only. The final stage's
    # inflection is zero by definition (the product says so without a model), and mixing
    # those easy rows in steers early stopping and the splits away from the real question.
    rows: Literal["can_advance", "all"] = "can_advance"
    # After early stopping on the validation period, refit on train + validation with the
    # chosen number of rounds; the calibration map stays the first fit's out-of-time one.
    refit: bool = True
    # Calibration of the inflection model; "centered_isotonic" keeps the booster's ranking
    # (no ties from isotonic steps). None: the same as train.calibration.
    calibration: Literal["isotonic", "centered_isotonic", "sigmoid", "none"] | None = (
        "centered_isotonic"
    )
    # Linear base margin: "activity_counts" fits an L2 logistic regression on the
    # standardised log1p of every activity count (act_<activity>_<window> and _all) and
    # boosts the trees from its log-odds, so they learn only what it misses; reason codes
    # add its exact SHAP values to the trees'. "none": trees only.
    linear_base: Literal["none", "activity_counts"] = "none"
    # Class weighting of the inflection booster, apart from train.class_weight (the stage
    # model's). None: unweighted, so early stopping reads an honest validation log-loss
    # instead of one that a reweighted booster's shifted scores inflate from the start.
    class_weight: Literal["balanced"] | None = None
    # Recency weighting: a training row counts 0.5 ** (age / (this × labels.horizon)), its
    # age measured from the latest as-of instant of the rows being fitted, for exports whose
    # advance rates drift between periods. A number, null (every row counts the same), or a
    # list of candidates, simplest (null, then longest) first: each run keeps the simplest
    # whose first fit's validation log-loss is within one standard error of the best, since
    # how fast rates drift belongs to the export (README, "Recency chosen per run").
    recency_half_life: float | None | list[float | None] = [None, 1.0, 0.25]

    @field_validator("recency_half_life")
    @classmethod
    def _positive_half_life(cls, value: float | None | list[float | None]) -> Any:
        values = value if isinstance(value, list) else [value]
        if not values or any(v is not None and v <= 0 for v in values):
            raise ValueError("recency_half_life: a positive number, null, or a non-empty list")
        return value

    # Cooling: the likelihood can only fall as time passes without the buyer acting (every
    # days_since_* and gap_* feature is a decreasing monotone constraint). Chosen on the
    # validation periods like the rest (README, "Real exports"); false: unconstrained.
    cooling: bool = True
    # The likelihood near the final stage: "zero" where it is the predicted stage (nowhere
    # to go), "soft" (times 1 - P(final stage)), or "none" (the inflection model alone).
    # CRMs record purchases late, so a buyer the stage model places at the final stage
    # can still be recorded as advancing. "soft" won the nested validation rule (README,
    # "Inflection quality").
    final_stage: Literal["zero", "soft", "none"] = "soft"


class TrainConfig(_Section):
    """Time split, class balance and calibration for both models."""

    # Shares of the snapshot as-of instants, in time order: train | validation | test.
    valid_fraction: float = Field(default=0.2, gt=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    # The stage model's (and the inflection model's calibration default); the inflection
    # model's class weighting is inflection_fit.class_weight.
    class_weight: Literal["balanced"] | None = "balanced"
    calibration: Literal["isotonic", "sigmoid", "none"] = "isotonic"
    stage: BoosterConfig = Field(default_factory=BoosterConfig)
    # The inflection model is as accurate with 7 leaves of depth 3 and costs a fifth as
    # much to explain (README, "Explanations": capacity table); its categorical splits are
    # regularised harder (README, "Real exports": chosen on the validation period). It keeps
    # 0.05 x 400: at 0.1 x 200 the simulator's test-period ECE rose from 0.009 to 0.011,
    # over the 0.01 target, for a fifth of the fitting time the stage model saves.
    inflection: BoosterConfig = Field(
        default_factory=lambda: BoosterConfig(
            num_leaves=7,
            max_depth=3,
            learning_rate=0.05,
            n_estimators=400,
            cat_smooth=200.0,
            cat_l2=100.0,
            min_data_per_group=500,
            max_cat_threshold=8,
        )
    )
    inflection_fit: InflectionFitConfig = Field(default_factory=InflectionFitConfig)
    # Fit the baselines in a worker process beside the boosters (on two or more cores):
    # about 2x faster training for about 1.4 GB more peak memory at 20,000 buyers (README,
    # "Fitting speed, closing round"). false: after the boosters, in this process.
    baselines_in_worker: bool = True


class RegistryConfig(_Section):
    """How a new version earns the ``champion`` alias."""

    name: str = "stageml"
    # A challenger is promoted when neither headline metric is worse than the champion's
    # by more than this (absolute), on the same backtest.
    tolerance: float = Field(default=0.005, ge=0)
    # Compile both boosters to native code when registering (README, "Compiled
    # prediction"); without a C toolchain the model is registered uncompiled.
    compile: bool = True


class DataConfig(_Section):
    """Where the pipeline's export comes from: the simulator, or a folder of real tables."""

    source: str = "simulate"  # "simulate" or a folder holding a CRM export
    simulate_buyers: int = Field(default=5000, ge=10)
    # Score as of this instant; None means the end of the data (the nightly-job case).
    score_as_of: pd.Timestamp | None = None

    @field_validator("score_as_of", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> pd.Timestamp | None:
        return SnapshotConfig._timestamp(value)


class ScoringConfig(_Section):
    """Nightly scoring: trend thresholds and the drift warning level."""

    # |p_today - p_previous| below this is "steady"; above, improving or declining.
    trend_threshold: float = Field(default=0.05, ge=0, le=1)
    # Features whose population stability index exceeds this are reported as drifted.
    drift_threshold: float = Field(default=0.25, ge=0)


class TouchConfig(_Section):
    """The seller's touches that ``stageml next-touch`` weighs, and its uplift learner."""

    # Outbound activities a seller can choose to do now; each is a candidate next touch.
    activities: tuple[str, ...] = (
        "sales_email",
        "linkedin_message",
        "sales_call",
        "meeting_invite",
        "proposal_sent",
        "contract_sent",
        "check_in_call",
    )
    k: int = Field(default=3, ge=1)  # touches listed per buyer (--k overrides)
    # The T-learner (used when a randomised trial log is given): bootstrap refits per arm,
    # and the central coverage of the lift interval read from their spread.
    bags: int = Field(default=32, ge=2)
    interval: float = Field(default=0.9, gt=0, lt=1)
    # A buyer whose inflection likelihood lies outside this central share of the trial's
    # gets no T-learner touches (rejected with the reason): nothing like it was tried.
    support: float = Field(default=0.99, gt=0, le=1)
    # A training run's report estimates the stage x touch lift table on at most this many
    # buyers of the test period's last instant (a bounded cost; README, "Next touches").
    report_buyers: int = Field(default=500, ge=1)

    @field_validator("activities")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Empty is allowed: a company that names no touches trains and scores as before.
        if len(set(value)) != len(value):
            raise ValueError(f"touches must be unique activity names; got {value}")
        return tuple(value)


class Params(_Section):
    """The whole of ``params.yaml``."""

    stages: tuple[str, ...] = DEFAULT_STAGES
    # Terminal exits besides the ordered stages (a lost or disqualified deal): stage_history
    # may record them; a buyer in an exit cannot advance until a later record re-opens it.
    exits: tuple[str, ...] = ()
    seed: int = 7
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    touches: TouchConfig = Field(default_factory=TouchConfig)

    @field_validator("stages")
    @classmethod
    def _ordered_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) < 2:
            raise ValueError("the stage taxonomy needs at least two ordered stages")
        if len(set(value)) != len(value):
            raise ValueError(f"stage names must be unique, got {list(value)}")
        return tuple(value)

    @field_validator("exits")
    @classmethod
    def _distinct_exits(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        clash = sorted(set(value) & set(info.data.get("stages", ())))
        if clash or len(set(value)) != len(value):
            raise ValueError(
                f"exit names must be unique and not stage names, got {list(value)} "
                f"(shared with stages: {clash})"
            )
        return tuple(value)

    @property
    def recorded_stages(self) -> tuple[str, ...]:
        """Every name stage_history may use: the ordered stages, then the exits."""
        return self.stages + self.exits


def load_params(path: str | Path | None = None) -> Params:
    """Read ``params.yaml``; with no path, the built-in defaults."""
    if path is None:
        return Params()
    file = Path(path)
    if not file.exists():
        raise ConfigError(
            f"{file}: params file not found. Fix: pass --params with an existing file"
        )
    raw = yaml.safe_load(file.read_text()) or {}
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"{file}: {problems}. Fix: correct these keys (see README, 'params.yaml')"
        ) from exc
