"""A self-contained HTML model report per training run (figures inlined as base64 PNG).

One file a reviewer can open anywhere, attach to a ticket or archive: metrics beside
baselines, calibration, confusion matrix, global explanations, the stage x touch lift table
of the next touches and the data description.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from stageml.durations import format_duration
from stageml.models.choices import recency_choice
from stageml.models.train import TrainingResult
from stageml.tracking.tables import CANDIDATES, HEADERS, ROWS, UNRANKED, metric_key

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right} \
th:first-child,td:first-child{text-align:left}
th{background:#f3f5f8} td.best{font-weight:700;background:#eaf4ea}
figure{display:inline-block;margin:.5rem;vertical-align:top} \
figure img{max-width:520px;border:1px solid #eee}
figcaption{font-size:.8rem;color:#555;text-align:center}
"""
_LOWER_IS_BETTER = {"log_loss", "ece", "brier"}


@dataclass(frozen=True)
class LiftSection:
    """The report's next-touch section: how the lifts were read, their table and heat map.

    Without a table, ``note`` says why there is none (no touches named, no usable trial).
    """

    note: str
    table: pd.DataFrame | None = None
    heatmap: Figure | None = None


def figure_png(fig: Figure) -> str:
    """Encode a matplotlib figure as a base64 PNG string (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _metrics_html(metrics: Mapping[str, float]) -> str:
    head = "".join(f"<th>{h}</th>" for h in HEADERS)
    rows = []
    for task, names in ROWS.items():
        for name in names:
            values = [metrics.get(metric_key(task, c, name)) for c in CANDIDATES]
            known = [v for v in values if v is not None]
            if not known:
                continue
            best = (
                (min if name in _LOWER_IS_BETTER else max)(known)
                if known and name not in UNRANKED
                else None
            )
            cells = "".join(
                f"<td class='best'>{v:.4f}</td>"
                if v is not None and v == best
                else f"<td>{'-' if v is None else f'{v:.4f}'}</td>"
                for v in values
            )
            rows.append(f"<tr><td>{html.escape(task)}.{name}</td>{cells}</tr>")
    return f"<table><tr><th>metric (test period)</th>{head}</tr>{''.join(rows)}</table>"


def _dict_html(payload: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in payload.items()
    )
    return f"<table>{rows}</table>"


def _lift_html(section: LiftSection) -> str:
    parts = [f"<p>{html.escape(section.note)}</p>"]
    if section.heatmap is not None:
        parts.append(
            f"<figure><img alt='lift heat map' src='data:image/png;base64,"
            f"{figure_png(section.heatmap)}'><figcaption>lift_heatmap</figcaption></figure>"
        )
    if section.table is not None:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in section.table.columns)
        rows = "".join(
            f"<tr><td>{html.escape(str(stage))}</td>"
            + "".join(f"<td>{100 * v:+.1f}</td>" for v in values)
            + "</tr>"
            for stage, values in zip(section.table.index, section.table.to_numpy(), strict=True)
        )
        parts.append(
            f"<table class='lift'><tr><th>stage (lift in points)</th>{head}</tr>{rows}</table>"
        )
    return "\n".join(parts)


def render_report(
    result: TrainingResult,
    figures: Mapping[str, Figure],
    *,
    touches: LiftSection,
    title: str = "stageml model report",
) -> str:
    """Render the HTML document: every figure in ``figures`` inlined, in the given order."""
    model = result.model
    params = model.params
    images = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{figure_png(fig)}'>"
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, fig in figures.items()
    )
    settings = {
        "stages": " → ".join(params.stages),
        "exits": ", ".join(params.exits) or "none",
        "horizon": format_duration(params.labels.horizon),
        "label delay": format_duration(params.labels.label_delay)
        if params.labels.label_delay
        else "0",
        "calibration": params.train.calibration,
        "class weight (stage / inflection)": (
            f"{params.train.class_weight} / {params.train.inflection_fit.class_weight}"
        ),
        "recency half-life (inflection; validation log-loss per candidate)": recency_choice(
            model.inflection_model
        ),
        "cooling (elapsed time only lowers the likelihood)": str(
            params.train.inflection_fit.cooling
        ),
        "features": len(model.feature_names),
        **result.split.describe(),
        **{f"time {k}": f"{v:.1f}" for k, v in result.timings.items()},
    }
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\
<style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="sub">Stage model and {format_duration(params.labels.horizon)} inflection \
{"and exit models" if params.exits else "model"}; \
all figures on the test
period, which is later in time than training and calibration.</p>
<h2>Metrics vs baselines</h2>
<p>Best value per metric in bold. "uncalibrated" is the same model before isotonic calibration.</p>
{_metrics_html(result.metrics)}
<h2>Calibration, confusion and explanations</h2>
{images}
<h2>Next touches: lift by stage and touch</h2>
{_lift_html(touches)}
<h2>Data</h2>
{_dict_html(result.data_description)}
<h2>Settings</h2>
{_dict_html(settings)}
</body></html>
"""
