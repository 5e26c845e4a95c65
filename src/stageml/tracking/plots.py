"""Figures for training runs: confusion matrix, reliability curve, per-stage importance."""

from __future__ import annotations

from collections.abc import Sequence

# No matplotlib.use() here: importing stageml must not change a notebook's backend; with no
# display (jobs, CI) matplotlib falls back to Agg by itself.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from stageml.models.estimators import CalibratedLGBM


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


def reliability_figure(curves: dict[str, dict[str, list[float]]], title: str) -> Figure:
    """Observed rate vs predicted probability for each curve, with the diagonal."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    for name, curve in curves.items():
        ax.plot(curve["predicted"], curve["observed"], marker="o", label=name)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


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
    reliability: dict[str, dict[str, list[float]]],
    stage_model: CalibratedLGBM,
    inflection_model: CalibratedLGBM,
    stages: Sequence[str],
) -> dict[str, Figure]:
    """Return the standard figures of a training run, keyed by file stem."""
    return {
        "confusion_matrix": confusion_figure(confusion, stages),
        "reliability": reliability_figure(reliability, "Inflection (raw, calibrated) and exit"),
        "importance_stage": importance_figure(per_class_gain(stage_model, stages)),
        "importance_inflection": importance_figure(
            per_class_gain(inflection_model, ["no", "inflection"])
        ),
    }
