"""Figures for training runs: confusion matrix, calibration row, per-stage importance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# No matplotlib.use() here: importing stageml must not change a notebook's backend; with no
# display (jobs, CI) matplotlib falls back to Agg by itself.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from stageml.models.bundle import StageModel
from stageml.models.estimators import CalibratedLGBM
from stageml.models.metrics import reliability_curve


def confusion_figure(confusion: np.ndarray, stages: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix with counts, recorded stage vs predicted."""
    totals = confusion.sum(axis=1, keepdims=True)
    share = confusion / np.where(totals == 0, 1, totals)
    fig, ax = plt.subplots(figsize=(1.2 * len(stages) + 2, 1.0 * len(stages) + 1.5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(stages)):
        for j in range(len(stages)):
            colour = "white" if share[i, j] > 0.6 else "black"
            ax.text(
                j,
                i,
                f"{confusion[i, j]}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
            )
    ax.set_xticks(range(len(stages)), stages, rotation=30, ha="right")
    ax.set_yticks(range(len(stages)), stages)
    ax.set_xlabel("predicted stage")
    ax.set_ylabel("recorded stage")
    ax.set_title("Stage model on the test period")
    fig.tight_layout()
    return fig


Curve = dict[str, list[float]]


def calibration_curves(model: StageModel, test: pd.DataFrame) -> dict[str, dict[str, Curve]]:
    """Reliability on the test period of each model, on the rows it is fitted for.

    Stage model: top-label confidence against accuracy, and every stage's probability
    against its one-vs-rest outcome, pooled. Inflection model: raw and calibrated, on the
    labelled rows of ``params.train.inflection_fit.rows`` (by default the buyers who can
    still advance), before the product zeroes the final stage; that is the model's own
    calibration, which the zeroed rows would flatter.
    """
    stage_rows = test[test["stage_index"].notna()]
    y = stage_rows["stage_index"].astype(int).to_numpy()
    proba = model.stage_model.predict_proba(stage_rows[model.feature_names])
    top = proba.argmax(axis=1)
    onehot = np.eye(proba.shape[1])[y]
    curves: dict[str, dict[str, Curve]] = {
        "stage": {
            "top label": reliability_curve((top == y).astype(float), proba.max(axis=1)),
            "every stage, pooled": reliability_curve(onehot.ravel(), proba.ravel()),
        }
    }
    binary = {"inflection": model.inflection_model, "exit": model.exit_model}
    for task, estimator in binary.items():
        if estimator is None or task not in test:
            continue
        own = test[task].notna()
        if model.params.train.inflection_fit.rows == "can_advance":
            own &= test["can_advance"].fillna(False).astype(bool)
        rows = test[own]
        raw = estimator.predict_proba_raw(rows[model.feature_names])
        outcome = rows[task].astype(int).to_numpy()
        curves[task] = {
            "calibrated": reliability_curve(outcome, estimator.calibrate(raw)[:, 1]),
            "raw": reliability_curve(outcome, raw[:, 1]),
        }
    return curves


def reliability_figure(curves: dict[str, Curve], title: str) -> Figure:
    """Observed rate vs predicted probability for each curve, with the diagonal."""
    fig, ax = plt.subplots(figsize=(5, 5))
    _reliability_axes(ax, curves, title)
    fig.tight_layout()
    return fig


def calibration_figure(curves: dict[str, dict[str, Curve]]) -> Figure:
    """One row: the stage model's reliability beside the inflection (and exit) model's own."""
    titles = {
        "stage": "Stage model",
        "inflection": "Inflection model (its own rows)",
        "exit": "Exit model (its own rows)",
    }
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 5), squeeze=False)
    for ax, (task, task_curves) in zip(axes[0], curves.items(), strict=True):
        _reliability_axes(ax, task_curves, titles.get(task, task))
    fig.tight_layout()
    return fig


def _reliability_axes(ax: Any, curves: dict[str, Curve], title: str) -> None:
    """Draw the curves and the diagonal; marker area grows with the rows in the bin."""
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    for name, curve in curves.items():
        (line,) = ax.plot(curve["predicted"], curve["observed"], label=name)
        # A stray point from a handful of rows should look like one.
        counts = np.asarray(curve["count"])
        sizes = 8 + 160 * np.sqrt(counts / max(counts.max(initial=0), 1))
        ax.scatter(curve["predicted"], curve["observed"], s=sizes, color=line.get_color())
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()


def per_class_gain(model: CalibratedLGBM, class_names: Sequence[str]) -> pd.DataFrame:
    """Total split gain per feature for each class's trees (multiclass trees interleave)."""
    trees = model.booster_.trees_to_dataframe()
    trees = trees[
        trees["split_feature"].notna()
        & (trees["tree_index"] < model.best_iteration_ * len(class_names))
    ]
    k = len(class_names) if len(class_names) > 2 else 1
    trees = trees.assign(cls=trees["tree_index"] % k)
    table = trees.pivot_table(
        index="split_feature", columns="cls", values="split_gain", aggfunc="sum", fill_value=0.0
    )
    names = list(class_names) if k > 1 else [class_names[-1]]
    return table.rename(columns=dict(enumerate(names)))


def importance_figure(gain: pd.DataFrame, top: int = 12) -> Figure:
    """One bar chart of the top features by gain per class (per stage)."""
    n = gain.shape[1]
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 0.35 * top + 1.5), squeeze=False)
    for ax, name in zip(axes[0], gain.columns, strict=True):
        best = gain[name].sort_values().tail(top)
        ax.barh(best.index, best.to_numpy(), color="#4477aa")
        ax.set_title(str(name))
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("total gain")
    fig.tight_layout()
    return fig


def training_figures(
    confusion: np.ndarray,
    calibration: dict[str, dict[str, Curve]],
    stage_model: CalibratedLGBM,
    inflection_model: CalibratedLGBM,
    stages: Sequence[str],
) -> dict[str, Figure]:
    """Return the standard figures of a training run, keyed by file stem."""
    return {
        "confusion_matrix": confusion_figure(confusion, stages),
        "reliability": calibration_figure(calibration),
        "importance_stage": importance_figure(per_class_gain(stage_model, stages)),
        "importance_inflection": importance_figure(
            per_class_gain(inflection_model, ["no", "inflection"])
        ),
    }
