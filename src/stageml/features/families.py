"""Families of correlated feature columns, each one behaviour a seller can act on, in words.

A reason code names a behaviour, not a column: "3 × demo request in the last 7 days, none
before" instead of three near-duplicate window counts each carrying a third of the effect,
or a ratio of 1.0x that tells a seller nothing. Every column belongs to exactly one family
(tested), so family contributions, the sums of their columns' TreeSHAP values, still add
up to the model's margin.

Families: one per activity (its counts over every window and all history, and the time
since it last happened), one per channel, the buyer's pace (counts, active days,
intensity, trend, tenure), inbound vs outbound, variety, recency (time since the last
interaction and the gaps between them), the sequence of last activities, and one per
buyer attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stageml.config import FeatureConfig
from stageml.durations import format_duration
from stageml.features.columns import feature_columns
from stageml.features.columns import windows as feature_windows
from stageml.features.text import (
    _ALL,
    UnknownFeatureError,
    _duration_text,
    _elapsed,
    _missing,
    _number,
    _span_text,
    describer,
    humanise,
)
from stageml.features.vocabulary import OTHER, Vocabulary, slug

_NAN = float("nan")  # what a member column absent from the values reads as


def feature_families(vocabulary: Vocabulary, config: FeatureConfig) -> dict[str, tuple[str, ...]]:
    """Member columns of each family, keyed by family name, in feature-column order.

    Raises
    ------
    UnknownFeatureError
        If a feature column falls in no family, or in two.

    """
    spans = [*feature_windows(config), _ALL]
    trend = format_duration(config.trend_window)
    families: dict[str, list[str]] = {}
    for s in vocabulary.activity_slugs():
        families[f"activity_{s}"] = [f"act_{s}_{w}" for w in spans] + [f"days_since_act_{s}"]
    for s in vocabulary.channel_slugs():
        families[f"channel_{s}"] = [f"chan_{s}_{w}" for w in spans]
    # Pace: how much the buyer does, and relative to its own history (intensity is a
    # window's rate over the rate since the first interaction, so tenure belongs here).
    families["pace"] = [f"n_{w}" for w in spans] + [f"active_days_{w}" for w in spans]
    families["pace"] += [f"intensity_{w}" for w in feature_windows(config)]
    families["pace"] += [f"n_prev_{trend}", f"trend_ratio_{trend}", "days_since_first"]
    families["direction"] = [f"dir_{d}_{w}" for d in ("inbound", "outbound") for w in spans]
    families["direction"] += [f"inbound_share_{w}" for w in feature_windows(config)]
    families["variety"] = ["distinct_activities_all", "distinct_channels_all"]
    families["recency"] = ["days_since_last", "gap_last_days", "gap_mean_days", "gap_max_days"]
    families["sequence"] = [f"last_activity_{k}" for k in range(1, config.last_activities + 1)]
    for name in vocabulary.attributes:
        families[f"attribute_{slug(name)}"] = [f"buyer_{slug(name)}"]
    columns = feature_columns(vocabulary, config)
    order = {c: i for i, c in enumerate(columns)}
    members = [c for cols in families.values() for c in cols]
    if sorted(members) != sorted(columns):
        unplaced = sorted(set(columns) - set(members))
        raise UnknownFeatureError(
            f"feature columns {unplaced[:5]} belong to no reason family (or a family lists "
            "a column the engine does not make). Fix: add them to "
            "stageml.features.families.feature_families"
        )
    return {
        name: tuple(sorted(cols, key=order.__getitem__)) for name, cols in families.items() if cols
    }


def family_describer(
    vocabulary: Vocabulary, config: FeatureConfig
) -> Callable[[str, Mapping[str, Any]], str]:
    """Return ``describe(family, values)``: one sentence from a buyer's member values."""
    windows = dict(sorted(feature_windows(config).items(), key=lambda item: item[1]))
    trend = format_duration(config.trend_window)
    trend_text = _duration_text(config.trend_window)
    # The catch-all levels get a noun, as in stageml.features.text.
    nouns = dict(
        zip(vocabulary.activity_slugs(), (*vocabulary.activities, f"{OTHER} activity"), strict=True)
    )
    channels = dict(
        zip(vocabulary.channel_slugs(), (*vocabulary.channels, f"{OTHER} channels"), strict=True)
    )
    one_column = describer(vocabulary, config)

    def counts(values: Mapping[str, Any], prefix: str) -> tuple[list[tuple[str, float]], float]:
        found = [(w, _count(values.get(f"{prefix}_{w}", _NAN))) for w in windows]
        return found, _count(values.get(f"{prefix}_{_ALL}", _NAN))

    def story(values: Mapping[str, Any], prefix: str, noun: str, none: str) -> str:
        """Return the count in the shortest window that has any, and how many came before."""
        found, total = counts(values, prefix)
        if total == 0:
            return f"no {none} ever"
        for w, count in found:
            if count > 0:
                before = total - count
                rest = "none before" if before == 0 else f"{_number(before)} before"
                return f"{_number(count)} {noun} {_span_text(w, windows)}, {rest}"
        longest = _span_text(found[-1][0], windows) if found else ""
        return f"no {none} {longest}, {_number(total)} before".replace("  ", " ")

    def describe_one(family: str, values: Mapping[str, Any]) -> str:
        kind, _, key = family.partition("_")
        if kind == "activity":
            noun = humanise(nouns.get(key, key))
            text = story(values, f"act_{key}", f"× {noun}", noun)
            since = values.get(f"days_since_act_{key}", _NAN)
            if not _missing(since) and "ever" not in text:
                text += f" (the last {_elapsed(float(since))} ago)"
            return text
        if kind == "channel":
            noun = f"interactions via {humanise(channels.get(key, key))}"
            return story(values, f"chan_{key}", noun, noun)
        if family == "pace":
            text = story(values, "n", "interactions", "interactions")
            first = values.get("days_since_first", _NAN)
            if not _missing(first) and "ever" not in text:
                text += f" (first {_elapsed(float(first))} ago)"
            ratio = values.get(f"trend_ratio_{trend}", _NAN)
            if not _missing(ratio) and "ever" not in text:
                text += f"; {float(ratio):.1f}x as many in the last {trend_text} as before"
            return text
        if family == "direction":
            for w in windows:
                inbound = _count(values.get(f"dir_inbound_{w}", _NAN))
                outbound = _count(values.get(f"dir_outbound_{w}", _NAN))
                if inbound + outbound > 0:
                    span = _span_text(w, windows)
                    return f"{_number(inbound)} inbound, {_number(outbound)} outbound {span}"
            return "no inbound or outbound interactions recently"
        if family == "variety":
            kinds = _number(_count(values.get("distinct_activities_all", _NAN)))
            used = _number(_count(values.get("distinct_channels_all", _NAN)))
            return f"{kinds} different activity types over {used} channels in total"
        if family == "recency":
            last = values.get("days_since_last", _NAN)
            if _missing(last):
                return "no interaction yet"
            text = f"no interaction for {_elapsed(float(last))}"
            usual = values.get("gap_mean_days", _NAN)
            return text if _missing(usual) else f"{text} (usual gap {_elapsed(float(usual))})"
        if family == "sequence":
            seen = [humanise(str(v)) for v in values.values() if not _missing(v)]
            return "latest activities: " + ", ".join(seen) if seen else "no activity yet"
        if kind == "attribute":
            (column, value), *_ = values.items()
            return one_column(column, value)
        raise UnknownFeatureError(f"reason family {family!r} has no text")

    return describe_one


def _count(value: Any) -> float:
    return 0.0 if _missing(value) else float(value)
