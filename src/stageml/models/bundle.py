"""The trained product: vocabulary + config + stage and inflection models in one object.

One object goes from raw interactions (+ buyers) and an as-of instant to stage
probabilities, predicted stage and inflection likelihood, so batch scoring, notebooks and
the MLflow pyfunc all run exactly the same code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stageml.config import Params
from stageml.features.drift import FeatureReference
from stageml.features.engine import KEYS, build_features, feature_columns
from stageml.features.stage_history import add_stage_features, stage_columns
from stageml.models.estimators import CalibratedLGBM
from stageml.models.hazard import HazardModel, probability_column


def in_exit(features: pd.DataFrame) -> np.ndarray:
    """Rows whose latest known CRM record is an exit (False without stage-history features)."""
    if "recorded_exit" not in features.columns:
        return np.zeros(len(features), dtype=bool)
    return np.asarray(features["recorded_exit"].to_numpy(dtype=float) == 1.0)


def at_final_stage(p: np.ndarray, stage_p: np.ndarray, rule: str) -> np.ndarray:
    """Inflection likelihoods after ``train.inflection_fit.final_stage``.

    "zero": zero where the final stage is the most likely (it has nowhere to go); "soft":
    times the probability of not being there; "none": unchanged.
    """
    final = stage_p[:, -1] if len(stage_p) else np.zeros(0)
    if rule == "zero":
        return np.where(stage_p.argmax(axis=1) == stage_p.shape[1] - 1, 0.0, p)
    if rule == "soft":
        return np.asarray(p * (1.0 - final))
    return p


@dataclass
class StageModel:
    """Everything needed to score a raw export exactly as the training run did."""

    params: Params
    vocabulary: object  # features.vocabulary.Vocabulary; kept loose for pickling across versions
    stage_model: CalibratedLGBM
    inflection_model: CalibratedLGBM
    # Training distribution of every feature, for the drift check at scoring time.
    drift_reference: dict[str, FeatureReference] = field(default_factory=dict)
    # The probability of leaving for an exit within the horizon; None when the taxonomy has
    # no exits (and for models registered before exits existed).
    exit_model: CalibratedLGBM | None = None
    # inflection_probability_<h> for labels.horizons; None without them.
    hazard_model: HazardModel | None = None

    @property
    def stages(self) -> tuple[str, ...]:
        """The ordered stage taxonomy the model predicts."""
        return self.params.stages

    @property
    def recorded_stages(self) -> tuple[str, ...]:
        """Every name a stage history may use: the stages, then the exits."""
        return self.params.recorded_stages

    @property
    def feature_names(self) -> list[str]:
        """Feature columns in model order."""
        engine = feature_columns(self.vocabulary, self.params.features)  # type: ignore[arg-type]
        return engine + stage_columns(self.params)

    def features(
        self,
        interactions: pd.DataFrame,
        as_of: Sequence[pd.Timestamp | str],
        buyers: pd.DataFrame | None = None,
        *,
        stage_history: pd.DataFrame | None = None,
        threads: int | None = None,
    ) -> pd.DataFrame:
        """Point-in-time features with the stored vocabulary (same columns as training).

        ``stage_history`` is read only by models trained with stage-history features,
        which need it (:func:`~stageml.features.stage_history.add_stage_features`).
        """
        features = build_features(
            interactions,
            as_of,
            vocabulary=self.vocabulary,  # type: ignore[arg-type]
            config=self.params.features,
            buyers=buyers,
            threads=threads,
        )
        return add_stage_features(features, stage_history, self.params)

    def predict_features(
        self, features: pd.DataFrame, *, threads: int | None = None
    ) -> pd.DataFrame:
        """Scores for an already built feature frame (keys kept, one row per input row)."""
        X = features[self.feature_names]
        if X.empty:  # a partition where nobody has history before the as-of instant
            stage_p = np.zeros((0, len(self.stages)))
            inflection_raw = inflection_p = np.zeros(0)
        else:
            stage_p = self.stage_model.predict_proba(X, threads=threads)
            raw = self.inflection_model.predict_proba_raw(X, threads=threads)
            inflection_raw = raw[:, 1]
            inflection_p = self.inflection_model.calibrate(raw)[:, 1]
        out = features[list(KEYS)].reset_index(drop=True).copy()
        stages = np.asarray(self.stages, dtype=object)
        predicted = stage_p.argmax(axis=1)
        out["stage"] = pd.array(stages[predicted], dtype="string")
        for k, stage in enumerate(self.stages):
            out[f"p_{stage}"] = stage_p[:, k]
        last = len(self.stages) - 1
        rule = self.params.train.inflection_fit.final_stage
        # A buyer the CRM records in an exit (known with stage-history features) has left.
        exited = in_exit(features)

        def open_deal(p: np.ndarray) -> np.ndarray:
            # The final stage has nowhere to go: train.inflection_fit.final_stage says how
            # its likelihood is discounted.
            return np.where(exited, 0.0, at_final_stage(p, stage_p, rule))

        out["inflection_probability"] = open_deal(inflection_p)
        # Calibration maps are flat beyond their last step, so the most likely buyers can
        # share one probability; the booster's own score still orders them.
        out["inflection_score"] = open_deal(inflection_raw)
        nxt = np.minimum(predicted + 1, last)
        out["next_stage"] = pd.array(np.where(predicted == last, None, stages[nxt]), dtype="string")
        if self.exit_model is not None:
            exit_p = (
                self.exit_model.predict_proba(X, threads=threads)[:, 1] if len(X) else np.zeros(0)
            )
            # A buyer at the final stage has no open deal to lose; one in an exit has left.
            out["exit_probability"] = np.where(exited, 1.0, at_final_stage(exit_p, stage_p, rule))
        if self.hazard_model is not None:
            by_horizon = (
                self.hazard_model.predict(X, threads=threads)
                if len(X)
                else np.zeros((0, len(self.hazard_model.horizons)))
            )
            for k, horizon in enumerate(self.hazard_model.horizons):
                column = probability_column(horizon)
                out[column] = open_deal(by_horizon[:, k])
        return out

    def predict(
        self,
        interactions: pd.DataFrame,
        as_of: Sequence[pd.Timestamp | str],
        buyers: pd.DataFrame | None = None,
        *,
        stage_history: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Stage probabilities, predicted stage and inflection likelihood per (buyer, as-of)."""
        return self.predict_features(
            self.features(interactions, as_of, buyers, stage_history=stage_history)
        )
