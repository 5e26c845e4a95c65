"""Terminal tables: metrics of the model next to its baselines, as a reader compares them."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

CANDIDATES = (
    "model",
    "model_raw",
    "baseline_majority",
    "baseline_rule",
    "baseline_logistic",
    "baseline_counts",
)
HEADERS = ("model", "uncalibrated", "majority", "rule", "logistic", "count GBM")
ROWS = {
    "stage": ("accuracy", "macro_f1", "balanced_accuracy", "log_loss", "ece"),
    "inflection": ("roc_auc", "pr_auc", "brier", "ece"),
    "inflection.can_advance": (
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "positive_rate",
        "mean_probability",
    ),
    # Only when the taxonomy has exits (rows without any value are left out).
    "exit.can_advance": ("roc_auc", "brier", "ece", "positive_rate", "mean_probability"),
}
# Rows that describe the data or the level, where no candidate is "best".
UNRANKED = ("positive_rate", "mean_probability")


def metric_key(task: str, candidate: str, metric: str) -> str:
    """Return the flat metric name as logged.

    For example ``stage.macro_f1`` or ``inflection.baseline_rule.can_advance.brier``.
    """
    base, _, subset = task.partition(".")
    parts = [base] + ([] if candidate == "model" else [candidate]) + ([subset] if subset else [])
    return ".".join([*parts, metric])


def metrics_table(metrics: dict[str, float], stages: Sequence[str]) -> Table:
    """Test-period metrics, model vs baselines, one row per metric."""
    table = Table(title="Backtest on the test period (later than training)")
    table.add_column("metric", no_wrap=True)
    for header in HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    for task, names in ROWS.items():
        for name in names:
            values = [metrics.get(metric_key(task, c, name)) for c in CANDIDATES]
            if all(v is None for v in values):
                continue
            table.add_row(f"{task}.{name}", *("-" if v is None else f"{v:.4f}" for v in values))
    return table
