"""The interactions as numeric events: the feature engine's only view of its input.

Each text column is dictionary-encoded once by Arrow (a hash pass, no sort of the rows);
only its few distinct values are sorted or looked up in the vocabulary, and the codes are
mapped through that small table. Buyers are numbered in the order of their ids, so
contiguous ranges of numbers are contiguous ranges of ids and the engine's partitions come
out in the output's sort order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stageml.features.columns import DIRECTIONS
from stageml.features.vocabulary import Vocabulary


@dataclass(frozen=True)
class Events:
    """Interactions before the engine's last instant, one array per field, in input order.

    ``buyer`` numbers the buyers by id (``buyer_ids[buyer]`` is the id); ``at`` is in
    microseconds; ``act``/``chan`` are vocabulary positions (the vocabulary's length for
    ``other``); ``direction`` is 0 inbound, 1 outbound, 2 neither; ``activity``/``channel``
    number the raw names (for distinct counts; -1 for a missing channel).
    """

    buyer: np.ndarray
    at: np.ndarray
    act: np.ndarray
    chan: np.ndarray
    direction: np.ndarray
    activity: np.ndarray
    channel: np.ndarray
    buyer_ids: pa.Array
    activities: frozenset[str]

    def take(self, index: np.ndarray | slice) -> Events:
        """Select the events at ``index`` (same id tables)."""
        fields = ("buyer", "at", "act", "chan", "direction", "activity", "channel")
        arrays = {f: getattr(self, f)[index] for f in fields}
        return Events(**arrays, buyer_ids=self.buyer_ids, activities=self.activities)


def encode_events(interactions: pd.DataFrame, vocabulary: Vocabulary, before: int) -> Events:
    """Encode the interactions with ``occurred_at`` before ``before`` (microseconds).

    Later rows are never read, so they cannot change a feature, the buyers or a warning.
    """
    at = _microseconds(interactions["occurred_at"])
    keep = np.flatnonzero(at < before)
    buyer_codes, buyer_names = _encode(_strings(interactions["buyer_id"]), keep)
    # Renumber the buyers seen before ``before`` densely, still in id order.
    present = np.zeros(len(buyer_names) + 1, dtype=bool)
    present[buyer_codes] = True
    number = np.cumsum(present[:-1], dtype=np.int32) - 1
    activity, activities = _encode(_strings(interactions["activity"]), keep)
    channel, channels = _encode(_optional(interactions, "channel"), keep)
    direction, directions = _encode(_optional(interactions, "direction"), keep)
    names = activities.to_pylist()
    return Events(
        buyer=number[buyer_codes],
        at=at[keep],
        act=_lookup(activity, names, vocabulary.activities),
        chan=_lookup(channel, channels.to_pylist(), vocabulary.channels),
        direction=_lookup(
            direction, [str(d).lower() for d in directions.to_pylist()], DIRECTIONS
        ).astype(np.int8),
        activity=activity,
        channel=channel,
        buyer_ids=pc.filter(buyer_names, pa.array(present[:-1])),
        activities=frozenset(str(n) for n in names),
    )


def _microseconds(stamps: pd.Series) -> np.ndarray:
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(stamps.to_numpy(dtype="datetime64[us]")).view(np.int64)


def _strings(values: pd.Series) -> pa.ChunkedArray:
    converted = pa.array(values, from_pandas=True)
    array = converted if isinstance(converted, pa.ChunkedArray) else pa.chunked_array([converted])
    return array if pa.types.is_large_string(array.type) else array.cast(pa.large_string())


def _optional(interactions: pd.DataFrame, column: str) -> pa.ChunkedArray:
    if column in interactions.columns:
        return _strings(interactions[column])
    return pa.chunked_array([pa.nulls(len(interactions), pa.large_string())])


def _encode(values: pa.ChunkedArray, keep: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Codes of ``values[keep]`` by rank of the value (-1 for missing), and the sorted values.

    Codes follow the values' byte order (Arrow's string order, which is also DuckDB's and
    Python's code-point order), so sorting codes sorts the values.
    """
    encoded = pc.dictionary_encode(values).unify_dictionaries()
    dictionary = (
        encoded.chunk(0).dictionary if encoded.num_chunks else pa.array([], pa.large_string())
    )
    indices = pc.fill_null(
        pa.chunked_array([c.indices for c in encoded.chunks], pa.int32()), -1
    ).to_numpy()
    order = pc.array_sort_indices(dictionary).to_numpy()
    rank = np.empty(len(order) + 1, dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    rank[-1] = -1  # index -1 (missing) reads the last slot
    return rank[indices[keep]], dictionary.take(pa.array(order))


def _lookup(codes: np.ndarray, names: list[str], levels: tuple[str, ...]) -> np.ndarray:
    """Map name codes to positions in ``levels``; anything else (and missing) is ``len(levels)``."""
    position = {name: i for i, name in enumerate(levels)}
    table = np.array([position.get(n, len(levels)) for n in names] + [len(levels)], np.int16)
    return np.asarray(table[codes])
