"""The stage x touch lift table as a heat map (next-touch output, MLflow, analyst notebook)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def lift_heatmap(table: pd.DataFrame, *, title: str) -> Figure:
    """Mean estimated lift per stage (rows) and touch (columns), in points of probability.

    The colour scale is symmetric around zero, so a touch that lowers the chance of moving
    on shows as clearly as one that raises it.
    """
    values = table.to_numpy(dtype=float) * 100
    bound = max(float(np.nanmax(np.abs(values))) if values.size else 1.0, 1e-9)
    fig = Figure(figsize=(1.2 * len(table.columns) + 2.5, 0.6 * len(table.index) + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(
        range(len(table.columns)), [str(c) for c in table.columns], rotation=35, ha="right"
    )
    ax.set_yticks(range(len(table.index)), [str(i) for i in table.index])
    for (i, j), value in np.ndenumerate(values):
        ax.text(
            j, i, "-" if np.isnan(value) else f"{value:+.1f}", ha="center", va="center", fontsize=8
        )
    fig.colorbar(image, ax=ax, label="lift (percentage points)")
    ax.set_title(title)
    ax.set_xlabel("touch now")
    ax.set_ylabel("stage")
    return fig
