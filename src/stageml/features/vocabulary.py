"""The fitted vocabulary: which activities, channels and buyer attributes get columns.

It is learned once from the training export and travels with the model, so scoring a new
export yields exactly the training columns whatever activity names the new export holds.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from stageml.config import FeatureConfig

OTHER = "other"


@dataclass(frozen=True)
class Vocabulary:
    """Activity/channel levels with their own columns, and buyer attribute types.

    ``activities`` and ``channels`` are the raw names in column order; ``known_activities``
    is every activity seen in training, so only genuinely new names trigger a warning.
    ``attributes`` maps a buyer attribute to its categories, or to None when numeric.
    """

    activities: tuple[str, ...]
    channels: tuple[str, ...]
    known_activities: frozenset[str] = field(default_factory=frozenset)
    attributes: dict[str, tuple[str, ...] | None] = field(default_factory=dict)

    def activity_slugs(self) -> tuple[str, ...]:
        """Column-safe names for the activity columns, ``other`` last."""
        return unique_slugs(self.activities + (OTHER,))

    def channel_slugs(self) -> tuple[str, ...]:
        """Column-safe names for the channel columns, ``other`` last."""
        return unique_slugs(self.channels + (OTHER,))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form stored inside the model artifact."""
        return {
            "activities": list(self.activities),
            "channels": list(self.channels),
            "known_activities": sorted(self.known_activities),
            "attributes": {
                k: (list(v) if v is not None else None) for k, v in self.attributes.items()
            },
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_dict`."""
        return cls(
            activities=tuple(payload["activities"]),
            channels=tuple(payload["channels"]),
            known_activities=frozenset(payload["known_activities"]),
            attributes={
                k: (tuple(v) if v is not None else None) for k, v in payload["attributes"].items()
            },
        )


def slug(name: str) -> str:
    """Lower-case ASCII identifier: LightGBM and MLflow reject most punctuation in names."""
    text = re.sub(r"[^0-9a-zA-Z]+", "_", str(name)).strip("_").lower()
    return text or "blank"


def unique_slugs(names: tuple[str, ...]) -> tuple[str, ...]:
    """Slugs made unique by numbering collisions (``Demo`` and ``demo`` → ``demo``, ``demo_2``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        base = slug(name)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return tuple(out)


def _top_levels(values: pd.Series, limit: int) -> tuple[str, ...]:
    counts = values.dropna().astype("string").value_counts()
    # Ties broken by name so that row order never changes the vocabulary.
    ranked = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return tuple(str(name) for name, _ in ranked[:limit] if str(name) != OTHER)


def fit_vocabulary(
    interactions: pd.DataFrame,
    buyers: pd.DataFrame | None,
    config: FeatureConfig,
    *,
    before: pd.Timestamp | str | None = None,
) -> Vocabulary:
    """Learn the most frequent activities and channels and the buyer attribute types.

    With ``before``, only interactions strictly before that instant are read, so features
    as of ``before`` get columns that no later row (and no row order) can change.
    """
    if before is not None:
        stamp = pd.Timestamp(before)
        cut = stamp.tz_convert(None) if stamp.tzinfo else stamp  # the contract's UTC-naive
        interactions = interactions[interactions["occurred_at"] < cut]
    attributes: dict[str, tuple[str, ...] | None] = {}
    if buyers is not None:
        for column in buyers.columns:
            if column == "buyer_id":
                continue
            series = buyers[column]
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                attributes[column] = None
            else:
                attributes[column] = tuple(sorted(series.dropna().astype("string").unique()))
    channels = interactions["channel"] if "channel" in interactions else pd.Series(dtype="string")
    return Vocabulary(
        activities=_top_levels(interactions["activity"], config.top_activities),
        channels=_top_levels(channels, config.top_channels),
        known_activities=frozenset(str(a) for a in interactions["activity"].dropna().unique()),
        attributes=attributes,
    )


def warn_unseen(present: Iterable[str], vocabulary: Vocabulary) -> set[str]:
    """Warn about activity names the model never saw; they are counted under ``other``."""
    unseen = set(present) - vocabulary.known_activities
    if unseen:
        shown = ", ".join(sorted(unseen)[:10])
        warnings.warn(
            f"{len(unseen)} activities were not in the training data and are counted as "
            f"'{OTHER}': {shown}{' …' if len(unseen) > 10 else ''}",
            UnseenActivityWarning,
            stacklevel=2,
        )
    return unseen


class UnseenActivityWarning(UserWarning):
    """An activity name that the model was not trained on."""
