"""The stage x touch lift table of a training run: estimated, logged to its run, described.

The estimate is next-touch's own (:func:`stageml.tactics.next_touch.report_touches`):
a T-learner when the export holds a randomised trial log, else the model-based
counterfactual, whose caution the report repeats.
"""

from __future__ import annotations

import time

import mlflow
import pandas as pd
from matplotlib.figure import Figure

from stageml.data.validate import Export
from stageml.errors import StageMLError
from stageml.models.estimators import free_threads
from stageml.models.train import TrainingResult
from stageml.tactics.next_touch import COUNTERFACTUAL_CAUTION, report_touches
from stageml.tactics.plots import lift_heatmap
from stageml.tracking.report import LiftSection


def lift_section(result: TrainingResult, export: Export, trial: pd.DataFrame | None) -> LiftSection:
    """Estimate the training run's lift table, log it (``next_touch/``) and describe it."""
    model = result.model
    clock = time.perf_counter()
    try:
        as_of, lifts = report_touches(
            model,
            export,
            result.test_frame,
            trial=trial,
            seed=model.params.seed,
            threads=free_threads(),
        )
    except StageMLError as exc:  # the model stands without its next-touch table
        return LiftSection(f"No lift table: {exc}")
    seconds = time.perf_counter() - clock
    mlflow.log_metric("time.touch_lifts_s", seconds)
    figure = lift_heatmap(
        lifts.lift_table, title=f"mean lift by touch, as of {as_of:%Y-%m-%d} ({lifts.method})"
    )
    log_lift_table(lifts.lift_table, figure, lifts.method)
    how = (
        f"a T-learner fitted on {lifts.trial_rows:,} rows of the export's randomised trial"
        if lifts.method == "t_learner"
        else f"the model-based counterfactual. Caution: {COUNTERFACTUAL_CAUTION}"
    )
    note = (
        f"Mean estimated lift (change in the chance of moving on within the horizon if the "
        f"touch happened now) per predicted stage, as of {as_of:%Y-%m-%d} (the test period's "
        f"last instant), over {lifts.touches['buyer_id'].nunique():,} sampled buyers "
        f"(touches.report_buyers: {model.params.touches.report_buyers:,}; left out: those "
        f"predicted in the final stage and, with a trial, those outside its support), by "
        f"{how}. Estimated in {seconds:.1f} s."
    )
    return LiftSection(note, lifts.lift_table, figure)


def log_lift_table(table: pd.DataFrame, figure: Figure, method: str) -> None:
    """Log a stage x touch lift table and its heat map to the active run."""
    mlflow.log_figure(figure, "next_touch/lift_heatmap.png")
    mlflow.log_dict(
        {
            "method": method,
            "stages": list(table.index),
            "touches": list(table.columns),
            "lift": table.to_numpy().tolist(),
        },
        "next_touch/lift_table.json",
    )
