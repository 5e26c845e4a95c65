"""The feature table's schema: which columns exist, in which order, and what they count.

The column set and order are a function of the fitted vocabulary and the feature config
only, never of the rows being featurised, so every export scored by one model (and every
cut of one export) yields the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from stageml.config import FeatureConfig
from stageml.durations import format_duration
from stageml.features.vocabulary import Vocabulary, slug

KEYS = ("buyer_id", "as_of")
DIRECTIONS = ("inbound", "outbound")


@dataclass(frozen=True)
class Counter:
    """A cumulative count over a buyer's events: its column stem and what it counts.

    ``source`` names the per-event code it counts (``act``, ``chan``, ``dir``) with
    ``code`` the value counted, or a per-event flag (``event``, ``new_day``, ``new_act``,
    ``new_chan``) counted wherever it is true.
    """

    name: str
    source: str
    code: int = 0


def windows(config: FeatureConfig) -> dict[str, pd.Timedelta]:
    """Map each trailing window's column suffix (``7d``, ``12h``) to its duration."""
    return {format_duration(w): w for w in config.windows}


def counters(vocabulary: Vocabulary) -> list[Counter]:
    """Every cumulative count, in column order."""
    out = [Counter("n", "event")]
    out += [Counter(f"act_{s}", "act", i) for i, s in enumerate(vocabulary.activity_slugs())]
    out += [Counter(f"chan_{s}", "chan", i) for i, s in enumerate(vocabulary.channel_slugs())]
    out += [Counter(f"dir_{d}", "dir", i) for i, d in enumerate(DIRECTIONS)]
    out += [Counter("active_days", "new_day"), Counter("distinct_activities", "new_act")]
    out += [Counter("distinct_channels", "new_chan")]
    return out


def windowed(counter: str) -> bool:
    """Distinct counts only make sense over all history; the rest is also given per window."""
    return counter not in ("distinct_activities", "distinct_channels")


def offsets(config: FeatureConfig) -> dict[str, pd.Timedelta]:
    """Instants read besides t, as t - offset: t - w per window, t - 2·trend for the trend base."""
    out = {f"w{name}": w for name, w in windows(config).items()}
    out["trend"] = config.trend_window
    out["trend2"] = 2 * config.trend_window
    return out


def feature_columns(vocabulary: Vocabulary, config: FeatureConfig) -> list[str]:
    """Every feature column in output order (without the ``buyer_id``/``as_of`` keys)."""
    columns: list[str] = []
    spans = list(windows(config)) + ["all"]
    for counter in counters(vocabulary):
        columns += [f"{counter.name}_{s}" for s in (spans if windowed(counter.name) else ["all"])]
    columns += [f"inbound_share_{w}" for w in windows(config)]
    columns += [f"intensity_{w}" for w in windows(config)]
    trend = format_duration(config.trend_window)
    columns += [f"n_prev_{trend}", f"trend_ratio_{trend}"]
    columns += ["days_since_last", "days_since_first"]
    columns += [f"days_since_act_{s}" for s in vocabulary.activity_slugs()]
    columns += ["gap_mean_days", "gap_max_days", "gap_last_days"]
    columns += sequence_columns(config)
    columns += [f"buyer_{slug(a)}" for a in vocabulary.attributes]
    return columns


def sequence_columns(config: FeatureConfig) -> list[str]:
    """Name the last k activities, most recent first (categoricals over the activity levels)."""
    return [f"last_activity_{k}" for k in range(1, config.last_activities + 1)]


def numeric_columns(vocabulary: Vocabulary, config: FeatureConfig) -> list[str]:
    """List the float32 columns the engine computes (not the sequence or buyer attributes)."""
    return [
        c
        for c in feature_columns(vocabulary, config)
        if not c.startswith("last_activity_") and not c.startswith("buyer_")
    ]


def categorical_columns(vocabulary: Vocabulary, config: FeatureConfig) -> list[str]:
    """Feature columns that LightGBM must treat as categorical."""
    cats = sequence_columns(config)
    cats += [
        f"buyer_{slug(a)}" for a, levels in vocabulary.attributes.items() if levels is not None
    ]
    return cats
