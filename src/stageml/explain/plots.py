"""Global and single-buyer SHAP figures drawn from LightGBM's native contributions.

The values come from :func:`stageml.explain.contributions.contributions` (raw margin
units: stage logit, inflection log-odds); ``shap`` is used only to draw them. Figures
are returned, not saved or logged: tracking decides where they go.
"""

from __future__ import annotations

from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
from matplotlib.figure import Figure

from stageml.errors import ModelError  # noqa: E402
from stageml.explain.contributions import contributions, stage_contributions
from stageml.models.bundle import StageModel  # noqa: E402

MAX_DISPLAY = 12
DEPENDENCE_TOP = 3


def _numeric(X: pd.DataFrame) -> np.ndarray:
    """Feature values as floats for colouring: categories become their codes, missing NaN."""
    columns = []
    for name in X.columns:
        series = X[name]
        if isinstance(series.dtype, pd.CategoricalDtype):
            codes = series.cat.codes.to_numpy().astype(float)
            columns.append(np.where(codes < 0, np.nan, codes))
        else:
            columns.append(pd.to_numeric(series, errors="coerce").to_numpy(dtype=float))
    return np.column_stack(columns) if columns else np.empty((len(X), 0))


def _explanation(values: np.ndarray, X: pd.DataFrame, data: np.ndarray) -> shap.Explanation:
    n_features = X.shape[1]
    return shap.Explanation(
        values=values[:, :n_features],
        base_values=values[:, n_features],
        data=data,
        feature_names=list(X.columns),
    )


def _beeswarm(explanation: shap.Explanation, title: str) -> Figure:
    fig = plt.figure()
    shap.plots.beeswarm(
        explanation, max_display=MAX_DISPLAY, show=False, plot_size=(9, 0.4 * MAX_DISPLAY + 1.5)
    )
    fig = plt.gcf()
    fig.axes[0].set_title(title)
    fig.axes[0].set_xlabel(f"{fig.axes[0].get_xlabel()} (raw margin units)")
    fig.tight_layout()
    return fig


def _mean_abs(values: np.ndarray, names: list[str], title: str, unit: str) -> Figure:
    mean_abs = pd.Series(np.abs(values).mean(axis=0), index=names).sort_values().tail(MAX_DISPLAY)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(mean_abs) + 1.5))
    ax.barh(mean_abs.index, mean_abs.to_numpy(), color="#4477aa")
    ax.set_xlabel(f"mean |SHAP| ({unit})")
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return fig


def _dependence(series: pd.Series, values: np.ndarray, title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    if isinstance(series.dtype, pd.CategoricalDtype):
        labels = ["(missing)", *map(str, series.cat.categories)]
        x = series.cat.codes.to_numpy().astype(float) + 1
        rng = np.random.default_rng(0)
        ax.scatter(x + rng.uniform(-0.2, 0.2, len(x)), values, s=6, alpha=0.5)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    else:
        x = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
        ax.scatter(x, values, s=6, alpha=0.5)
    ax.axhline(0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel(f"{series.name} (value)")
    ax.set_ylabel("contribution to inflection log-odds")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def global_figures(
    model: StageModel, features: pd.DataFrame, *, sample: int = 2000, seed: int = 0
) -> dict[str, Figure]:
    """Beeswarm and mean |SHAP| per stage, mean |SHAP| and dependence plots for inflection.

    Parameters
    ----------
    model
        The trained :class:`StageModel`.
    features
        Feature rows (e.g. the test period); at most ``sample`` rows are drawn.
    sample, seed
        Rows drawn without replacement, reproducibly.

    Returns
    -------
    dict[str, Figure]
        ``beeswarm_<stage>`` and ``mean_abs_<stage>`` per stage,
        ``mean_abs_inflection`` and ``dependence_<feature>`` for the top
        ``DEPENDENCE_TOP`` inflection features by mean |SHAP|.

    """
    if len(features) == 0:
        raise ModelError("global_figures needs at least one feature row, got an empty frame")
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(features), size=min(sample, len(features)), replace=False))
    X = features[model.feature_names].iloc[take]
    data = _numeric(X)
    names = list(X.columns)
    n_features = len(names)
    figures: dict[str, Figure] = {}
    stage = stage_contributions(model.stage_model, X)
    for k, name in enumerate(model.stages):
        figures[f"beeswarm_{name}"] = _beeswarm(
            _explanation(stage[:, k], X, data), f"Stage '{name}': SHAP values"
        )
        figures[f"mean_abs_{name}"] = _mean_abs(
            stage[:, k, :n_features], names, f"Stage '{name}': mean |SHAP|", "logit"
        )
    inflection = contributions(model.inflection_model, X)[:, 0, :n_features]
    figures["mean_abs_inflection"] = _mean_abs(
        inflection, names, "Inflection: mean |SHAP|", "log-odds"
    )
    top = np.argsort(-np.abs(inflection).mean(axis=0), kind="stable")[:DEPENDENCE_TOP]
    for j in top:
        figures[f"dependence_{names[j]}"] = _dependence(
            X.iloc[:, j], inflection[:, j], f"Inflection: dependence on {names[j]}"
        )
    return figures


def waterfall_figure(
    model: StageModel,
    features_row: pd.DataFrame | pd.Series,
    *,
    task: Literal["stage", "inflection"] = "stage",
) -> Figure:
    """SHAP waterfall for one buyer: the predicted stage's logit, or inflection log-odds.

    Parameters
    ----------
    model
        The trained :class:`StageModel`.
    features_row
        One feature row (a one-row DataFrame, or a Series as from ``frame.iloc[i]``).
    task
        ``"stage"`` explains the predicted stage's raw score; ``"inflection"`` the
        inflection log-odds.

    """
    if task not in ("stage", "inflection"):
        raise ModelError(f"task must be 'stage' or 'inflection', got {task!r}")
    frame = features_row.to_frame().T if isinstance(features_row, pd.Series) else features_row
    if len(frame) != 1:
        raise ModelError(
            f"waterfall_figure explains one buyer, got {len(frame)} rows. Fix: pass frame.iloc[[i]]"
        )
    X = frame[model.feature_names]
    if isinstance(features_row, pd.Series):
        # A row taken out as a Series loses its dtypes; restore them from the model.
        X = X.infer_objects()
        for name, levels in model.stage_model.categories_.items():
            X[name] = pd.Categorical(X[name].astype(object), categories=levels)
    if task == "stage":
        k = int(model.stage_model.predict(X)[0])
        values = stage_contributions(model.stage_model, X)[:, k]
        title = f"Stage '{model.stages[k]}' (predicted): raw logit"
    else:
        values = contributions(model.inflection_model, X)[:, 0]
        title = "Inflection: raw log-odds"
    display = X.iloc[0].to_numpy(dtype=object)
    explanation = shap.Explanation(
        values=values[0, :-1],
        base_values=float(values[0, -1]),
        data=display,
        feature_names=list(X.columns),
    )
    plt.figure()
    shap.plots.waterfall(explanation, max_display=MAX_DISPLAY, show=False)
    fig = plt.gcf()
    fig.suptitle(title)
    # shap writes E[f(X)] beside the axes; leave it room instead of tight_layout's crop.
    fig.set_size_inches(10, fig.get_size_inches()[1])
    fig.subplots_adjust(left=0.45, right=0.88, top=0.9)
    return fig
