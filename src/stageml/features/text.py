"""Plain-language text for a feature and a buyer's value of it, for reason codes and plots.

Texts are generated from the feature *definitions* (the same counters, windows and
vocabulary that :func:`stageml.features.engine.feature_columns` uses), not from a hand-kept list
of names, so a renamed activity or a new window gets its text automatically. A name that
no definition produces is an error, never a silent echo of the raw name: that way a test
can prove every generated column is covered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from stageml.config import FeatureConfig
from stageml.durations import format_duration
from stageml.errors import ModelError
from stageml.features.columns import counters, feature_columns, windowed
from stageml.features.columns import windows as feature_windows
from stageml.features.vocabulary import OTHER, Vocabulary, slug

_ALL = "all"
_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


class UnknownFeatureError(ModelError):
    """A feature name that no feature definition of this vocabulary/config produces."""


@dataclass(frozen=True)
class _Spec:
    """What a column means: its family, the noun it counts (if any) and its time span."""

    family: str
    subject: str = ""
    span: str = ""


def humanise(name: str) -> str:
    """``"pricing_page_visit"`` → ``"pricing page visit"``."""
    return " ".join(str(name).replace("_", " ").replace("-", " ").split())


def _duration_text(value: pd.Timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} seconds"  # pragma: no cover - every whole duration has a unit


def _span_text(span: str, windows: dict[str, pd.Timedelta]) -> str:
    return "in total" if span == _ALL else f"in the last {_duration_text(windows[span])}"


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return (
        f"{value:,.1f}"
        if abs(value) >= 10
        else f"{value:.2g}"
        if abs(value) < 0.1
        else f"{value:.1f}"
    )


def _elapsed(days: float) -> str:
    """Write a duration given in days in the coarsest unit that keeps it readable."""
    if days >= 2:
        return f"{days:.0f} days"
    hours = days * 24
    if hours >= 2:
        return f"{hours:.0f} hours"
    minutes = hours * 60
    return "1 minute" if round(minutes) == 1 else f"{minutes:.0f} minutes"


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _ordinal_last(k: int) -> str:
    if k == 1:
        return "last activity"
    suffix = {2: "nd", 3: "rd"}.get(k if k < 20 else k % 10, "th")
    return f"{k}{suffix}-to-last activity"


def feature_specs(vocabulary: Vocabulary, config: FeatureConfig) -> dict[str, _Spec]:
    """Meaning of every feature column, keyed by column name.

    Raises
    ------
    UnknownFeatureError
        If :func:`feature_columns` yields a column no definition here explains (a new
        feature family was added without its text).

    """
    windows = list(feature_windows(config)) + [_ALL]
    # The catch-all level gets a noun so that "no other activity" reads as English.
    activities = dict(
        zip(
            vocabulary.activity_slugs(), vocabulary.activities + (f"{OTHER} activity",), strict=True
        )
    )
    channels = dict(
        zip(vocabulary.channel_slugs(), vocabulary.channels + (f"{OTHER} channels",), strict=True)
    )
    subjects: dict[str, _Spec] = {"n": _Spec("count"), "dir_inbound": _Spec("count", "inbound")}
    subjects["dir_outbound"] = _Spec("count", "outbound")
    subjects.update(
        {f"act_{s}": _Spec("activity_count", humanise(a)) for s, a in activities.items()}
    )
    subjects.update({f"chan_{s}": _Spec("channel_count", humanise(c)) for s, c in channels.items()})
    subjects["active_days"] = _Spec("active_days")
    subjects["distinct_activities"] = _Spec("distinct", "activity types")
    subjects["distinct_channels"] = _Spec("distinct", "channels")

    specs: dict[str, _Spec] = {}
    for counter in counters(vocabulary):
        base = subjects[counter.name]
        for span in windows if windowed(counter.name) else [_ALL]:
            specs[f"{counter.name}_{span}"] = _Spec(base.family, base.subject, span)
    for span in feature_windows(config):
        specs[f"inbound_share_{span}"] = _Spec("inbound_share", span=span)
        specs[f"intensity_{span}"] = _Spec("intensity", span=span)
    trend = format_duration(config.trend_window)
    specs[f"n_prev_{trend}"] = _Spec("n_prev")
    specs[f"trend_ratio_{trend}"] = _Spec("trend_ratio")
    specs["days_since_last"] = _Spec("days_since_last")
    specs["days_since_first"] = _Spec("days_since_first")
    specs.update(
        {f"days_since_act_{s}": _Spec("days_since_act", humanise(a)) for s, a in activities.items()}
    )
    specs["gap_mean_days"] = _Spec("gap", "average gap between interactions")
    specs["gap_max_days"] = _Spec("gap", "longest gap between interactions")
    specs["gap_last_days"] = _Spec("gap", "gap before the latest interaction")
    for k in range(1, config.last_activities + 1):
        specs[f"last_activity_{k}"] = _Spec("last_activity", _ordinal_last(k))
    for name, levels in vocabulary.attributes.items():
        family = "attribute_numeric" if levels is None else "attribute_category"
        specs[f"buyer_{slug(name)}"] = _Spec(family, humanise(name))

    unexplained = [c for c in feature_columns(vocabulary, config) if c not in specs]
    if unexplained:
        raise UnknownFeatureError(
            f"no readable text for feature columns {unexplained[:5]}. Fix: add their family "
            "to stageml.features.text.feature_specs"
        )
    return specs


def _render(spec: _Spec, value: Any, windows: dict[str, pd.Timedelta], trend: pd.Timedelta) -> str:
    missing = _missing(value)
    span = _span_text(spec.span, windows) if spec.span else ""
    family = spec.family
    if family in ("count", "activity_count", "channel_count"):
        noun = {
            "count": f"{spec.subject} interactions".strip(),
            "activity_count": f"× {spec.subject}",
            "channel_count": f"interactions via {spec.subject}",
        }[family]
        if missing or float(value) == 0:
            none = spec.subject if family == "activity_count" else noun.replace("× ", "")
            return f"no {none} {span}"
        return f"{_number(value)} {noun} {span}"
    if family == "active_days":
        return f"active on {_number(0 if missing else value)} separate days {span}"
    if family == "distinct":
        return f"{_number(0 if missing else value)} different {spec.subject} used {span}"
    if family == "inbound_share":
        if missing:
            return f"no interactions {span}, so no inbound share"
        return f"inbound share {float(value):.0%} {span}"
    if family == "intensity":
        if missing:
            return f"no activity rate {span}"
        return f"activity {float(value):.1f}x the buyer's usual rate {span}"
    if family == "n_prev":
        window = _duration_text(trend)
        count = _number(0 if missing else value)
        return f"{count} interactions in the {window} before the last {window}"
    if family == "trend_ratio":
        window = _duration_text(trend)
        if missing:
            return f"no interaction trend over the last {window}"
        return f"interactions in the last {window} {float(value):.1f}x the {window} before"
    if family == "days_since_last":
        return "no interaction yet" if missing else f"no interaction for {_elapsed(float(value))}"
    if family == "days_since_first":
        return (
            "no first interaction yet"
            if missing
            else f"first interaction {_elapsed(float(value))} ago"
        )
    if family == "days_since_act":
        if missing:
            return f"no {spec.subject} ever"
        return f"last {spec.subject} {_elapsed(float(value))} ago"
    if family == "gap":
        if missing:
            return f"{spec.subject}: none yet (a single interaction)"
        return f"{spec.subject} {_elapsed(float(value))}"
    if family == "last_activity":
        if missing:
            return f"{spec.subject}: none"
        return f"{spec.subject}: {humanise(str(value))}"
    if family == "attribute_numeric":
        return f"{spec.subject} unknown" if missing else f"{spec.subject} = {_number(float(value))}"
    if family == "attribute_category":
        return f"{spec.subject} unknown" if missing else f"{spec.subject} = {humanise(str(value))}"
    raise UnknownFeatureError(f"feature family {family!r} has no text")  # pragma: no cover


def describer(vocabulary: Vocabulary, config: FeatureConfig) -> Callable[[str, Any], str]:
    """Return a ``describe(feature, value)`` bound to one vocabulary/config (specs built once).

    Use this when describing many cells: :func:`describe` rebuilds the specs per call.
    """
    specs = feature_specs(vocabulary, config)
    windows = feature_windows(config)
    trend = config.trend_window

    def describe_one(feature: str, value: Any) -> str:
        spec = specs.get(feature)
        if spec is None:
            raise UnknownFeatureError(
                f"feature {feature!r} is not produced by this vocabulary and config "
                f"({len(specs)} known columns). Fix: describe features of the model's own "
                "vocabulary (model.vocabulary, model.params.features)"
            )
        text = _render(spec, value, windows, trend)
        return " ".join(text.split())

    return describe_one


def describe(feature: str, value: Any, vocabulary: Vocabulary, config: FeatureConfig) -> str:
    """Human-readable text for one feature and one buyer's value.

    Parameters
    ----------
    feature
        A column name from :func:`stageml.features.engine.feature_columns`.
    value
        The buyer's value (NaN / None / ``pd.NA`` for missing, a category label for
        categorical columns).
    vocabulary, config
        The model's vocabulary and feature config (slugs are mapped back to raw names).

    Returns
    -------
    str
        E.g. ``"4 × pricing page visit in the last 7 days"``,
        ``"no interaction for 45 days"``, ``"segment = enterprise"``.

    Raises
    ------
    UnknownFeatureError
        If no feature definition produces ``feature``.

    """
    return describer(vocabulary, config)(feature, value)
