"""The data contract: required columns, the validated tables' schemas and the result type.

The schemas are postconditions of validation (a failure is a stageml bug, not bad input);
:class:`Export` is what every command receives after the checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from stageml.data.pandera_quiet import pa
from stageml.data.parse import STRING, TIMESTAMP

DIRECTIONS = ("inbound", "outbound")
UNKNOWN_CHANNEL = "unknown"

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "interactions": ("buyer_id", "occurred_at", "activity"),
    "buyers": ("buyer_id",),
    "stage_history": ("buyer_id", "stage", "entered_at"),
}
INTERACTION_KEYS = ("buyer_id", "occurred_at", "activity", "channel", "direction")
STAGE_KEYS = ("buyer_id", "stage", "entered_at")
# Optional stage_history column: when the CRM logged the change (features honour it).
RECORDED_AT = "recorded_at"
REJECT_COLUMNS = ("table", "row", "buyer_id", "reason")


def exactly(dtype: Any) -> pa.Check:
    """Check the exact dtype: pandera accepts object columns as strings and ignores the unit.

    Downstream code relies on the exact dtype (string, datetime64[us]).
    """
    return pa.Check(lambda s: s.dtype == dtype, error=f"dtype is exactly {dtype}")


def column_schema(
    dtype: Any, *checks: pa.Check, nullable: bool = False, unique: bool = False
) -> pa.Column:
    """Return a pandera column of exactly ``dtype`` with the given checks."""
    return pa.Column(dtype, [exactly(dtype), *checks], nullable=nullable, unique=unique)


_RANGE_INDEX = pa.Check(
    lambda df: df.index.equals(pd.RangeIndex(len(df))), error="index is a RangeIndex from 0"
)

InteractionsSchema = pa.DataFrameSchema(
    {
        "buyer_id": column_schema(STRING),
        "occurred_at": column_schema(TIMESTAMP),
        "activity": column_schema(STRING),
        "channel": column_schema(STRING),
        "direction": column_schema(STRING, pa.Check.isin(DIRECTIONS), nullable=True),
    },
    checks=[_RANGE_INDEX],
    strict=True,
    ordered=True,
    name="interactions",
)
BuyersSchema = pa.DataFrameSchema(
    {"buyer_id": column_schema(STRING, unique=True)}, checks=[_RANGE_INDEX], name="buyers"
)
# The stage vocabulary comes from params; load_export adds the taxonomy check per call.
StageHistorySchema = pa.DataFrameSchema(
    {
        "buyer_id": column_schema(STRING),
        "stage": column_schema(STRING),
        "entered_at": column_schema(TIMESTAMP),
    },
    checks=[_RANGE_INDEX],
    unique=list(STAGE_KEYS),
    strict=True,
    ordered=True,
    name="stage_history",
)


@dataclass(frozen=True)
class TableReport:
    """Row accounting for one table: ``accepted_rows + sum(rejected.values()) == input_rows``."""

    table: str
    path: str
    input_rows: int
    accepted_rows: int
    rejected: dict[str, int]

    @property
    def rejected_rows(self) -> int:
        """Rows rejected for any reason."""
        return sum(self.rejected.values())


@dataclass(frozen=True, eq=False)
class Export:
    """A CRM export that passed the contract checks, plus what was rejected and why.

    Attributes
    ----------
    interactions
        ``buyer_id`` string, ``occurred_at`` datetime64[us] (UTC, tz-naive), ``activity``
        string, ``channel`` string (``"unknown"`` when absent), ``direction`` string
        ``"inbound"``/``"outbound"`` or <NA> when unknown. Sorted by buyer_id, occurred_at,
        activity, channel, direction; RangeIndex.
    buyers
        ``buyer_id`` string (unique) then the attribute columns, text as string and numbers
        kept numeric; sorted by buyer_id. None when the export has no buyers table.
    stage_history
        ``buyer_id`` string, ``stage`` string (in the taxonomy), ``entered_at``
        datetime64[us] (UTC, tz-naive); sorted by buyer_id, entered_at, stage order
        (several stages at one instant: passed through at once). None when the export has
        no stage history.
    rejects
        One row per rejected input row: ``table``, ``row`` (1-based data row in its file),
        ``buyer_id`` (may be <NA>), ``reason``.
    reports
        Row accounting per table, in the order interactions, buyers, stage_history.
    warnings
        Problems worth a look that do not stop the run.
    sources
        The file each table was read from.

    """

    interactions: pd.DataFrame
    buyers: pd.DataFrame | None
    stage_history: pd.DataFrame | None
    rejects: pd.DataFrame
    reports: tuple[TableReport, ...]
    warnings: tuple[str, ...]
    sources: dict[str, Path]

    @cached_property
    def buyer_ids(self) -> frozenset[str]:
        """Every buyer id seen in any table, accepted or rejected rows alike.

        Callers check against it that every input buyer ends up scored or explained.
        """
        frames = (self.interactions, self.buyers, self.stage_history, self.rejects)
        ids = pd.concat([f["buyer_id"] for f in frames if f is not None], ignore_index=True)
        return frozenset(ids.dropna().unique().tolist())
