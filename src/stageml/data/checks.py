"""The row checks, one function per table: raw export columns in, accepted rows and reasons out.

Each check normalises the contract columns (text, names, timestamps), gives every input
row at most one rejection reason (the first failed check) and returns the accepted rows
sorted, so that :mod:`stageml.data.validate` can account for every row. Contract
problems that concern a whole column (unknown stage names, an unparseable timestamp
column, repeated buyer ids) raise :class:`~stageml.errors.ContractError`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from stageml.data.contract import (
    DIRECTIONS,
    INTERACTION_KEYS,
    RECORDED_AT,
    STAGE_KEYS,
    UNKNOWN_CHANNEL,
)
from stageml.data.parse import (
    ROWS_NOTE,
    SHOWN,
    STRING,
    after_export,
    clean_text,
    first_failure,
    isna,
    name_text,
    optional_text,
    optional_timestamps,
    parse_timestamps,
    positions_of_repeats,
    repeats_previous_row,
    sort_stably,
)
from stageml.errors import ContractError


class Checked(NamedTuple):
    """A table after its row checks."""

    clean: pd.DataFrame  # accepted rows, sorted, RangeIndex
    buyer_id: pd.Series  # normalised id of every input row, for the rejects table
    reason: np.ndarray  # per input row: index into ``reasons``, or -1 when accepted
    reasons: tuple[str, ...]


def check_interactions(raw: pd.DataFrame, file: str) -> Checked:
    """Interactions: ids, timestamps, names, direction; exact repeats after the first."""
    n = len(raw)
    occurred_at, ts_missing, ts_bad = parse_timestamps(raw["occurred_at"], file, "occurred_at")
    direction = optional_text(raw, "direction").str.lower()
    channel = name_text(optional_text(raw, "channel"))
    frame = pd.DataFrame(
        {
            "buyer_id": clean_text(raw["buyer_id"]),
            "occurred_at": occurred_at,
            "activity": name_text(raw["activity"]),
            "channel": channel.fillna(UNKNOWN_CHANNEL),
            "direction": direction,
        }
    )
    reasons = (
        "missing_buyer_id",
        "missing_occurred_at",
        "unparseable_occurred_at",
        "missing_activity",
        "invalid_direction",
        "occurred_after_export",
        "duplicate_interaction",
    )
    reason = first_failure(
        [
            isna(frame["buyer_id"]),
            ts_missing,
            ts_bad,
            isna(frame["activity"]),
            (direction.notna() & ~direction.isin(DIRECTIONS)).to_numpy(dtype=bool),
            after_export(occurred_at, file),
        ],
        n,
    )
    # Exact repeats (CRM sync artefacts) would double-count activity: keep the first.
    position = np.flatnonzero(reason < 0)
    accepted = frame.iloc[position].reset_index(drop=True)
    ordered = sort_stably(accepted, INTERACTION_KEYS)  # stable: ties keep file order
    repeat = repeats_previous_row(ordered, INTERACTION_KEYS)
    reason[position[ordered.index.to_numpy()[repeat]]] = len(reasons) - 1
    clean = ordered.loc[~repeat].reset_index(drop=True)
    return Checked(clean, frame["buyer_id"], reason, reasons)


def check_stage_history(raw: pd.DataFrame, file: str, stages: tuple[str, ...]) -> Checked:
    """Stage history: names onto the taxonomy, repeats and contradicted rows set aside."""
    entered_at, ts_missing, ts_bad = parse_timestamps(raw["entered_at"], file, "entered_at")
    frame = pd.DataFrame(
        {
            "buyer_id": clean_text(raw["buyer_id"]),
            "stage": _taxonomy_names(raw["stage"], stages),
            "entered_at": entered_at,
        }
    )
    _require_known_stages(frame["stage"], stages, file)
    reasons: tuple[str, ...] = (
        "missing_buyer_id",
        "missing_entered_at",
        "unparseable_entered_at",
        "missing_stage",
        "entered_after_export",
    )
    failures = [
        isna(frame["buyer_id"]),
        ts_missing,
        ts_bad,
        isna(frame["stage"]),
        after_export(entered_at, file),
    ]
    if RECORDED_AT in raw.columns:
        # When the CRM logged the change; empty means "not known", read as entered_at.
        recorded_at, recorded_bad = optional_timestamps(raw[RECORDED_AT], file, RECORDED_AT)
        frame[RECORDED_AT] = recorded_at
        reasons += ("unparseable_recorded_at", "recorded_at_before_entered_at")
        failures += [recorded_bad, (recorded_at < entered_at).to_numpy(bool)]
    reasons += ("conflicting_stage_row", "duplicate_stage_row")
    reason = first_failure(failures, len(frame))
    conflicting, repeated = _superseded_stage_rows(frame, reason < 0, stages)
    reason[conflicting] = reasons.index("conflicting_stage_row")
    reason[repeated] = reasons.index("duplicate_stage_row")
    accepted = reason < 0
    rank = frame["stage"].map({s: i for i, s in enumerate(stages)})
    clean = (
        frame.loc[accepted]
        .assign(_rank=rank[accepted])
        .sort_values(["buyer_id", "entered_at", "_rank"], ignore_index=True)
        .drop(columns="_rank")
    )
    return Checked(clean, frame["buyer_id"], reason, reasons)


def _superseded_stage_rows(
    frame: pd.DataFrame, among: np.ndarray, stages: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of stage rows that another row at the same buyer and instant overrides.

    At one buyer and instant the row listed last in the file wins (CRMs append a correction
    after the entry it corrects). Earlier rows there with a stage beyond the winner's are
    ``conflicting``; earlier rows with a stage before it stay (the buyer passed through
    several stages at once, which exports write in taxonomy order). Exact repeats of a kept
    row (a rep logging the same change twice, a sync artefact) are ``repeated``; the first
    listed is kept.
    """
    rows = frame.loc[among, list(STAGE_KEYS)]
    rank = rows["stage"].map({s: i for i, s in enumerate(stages)})
    winner = rank.groupby([rows["buyer_id"], rows["entered_at"]], sort=False).transform("last")
    lost = (rank > winner).to_numpy(dtype=bool)
    repeat = rows.loc[~lost].duplicated(keep="first").to_numpy(dtype=bool)
    positions = rows.index.to_numpy()
    return positions[lost], positions[~lost][repeat]


def check_buyers(raw: pd.DataFrame, file: str) -> Checked:
    """Buyers: one row per id (repeats are a contract error); attributes as text or numbers."""
    buyer_id = clean_text(raw["buyer_id"])
    reasons = ("missing_buyer_id",)
    reason = first_failure([isna(buyer_id)], len(raw))
    accepted = reason < 0
    repeated = positions_of_repeats(buyer_id.to_frame(), accepted, ("buyer_id",))
    if len(repeated):
        shown = buyer_id.iloc[repeated].unique()[:SHOWN].tolist()
        raise ContractError(
            file=file,
            column="buyer_id",
            rows=(repeated[:SHOWN] + 1).tolist(),
            problem=f"{len(repeated)} rows share a buyer_id with another row, e.g. {shown} "
            f"{ROWS_NOTE}; a buyer's attributes must be unambiguous",
            fix="keep one row per buyer_id (aggregate or pick the latest attributes first)",
        )
    attributes = raw.drop(columns="buyer_id")
    for column in attributes.columns:
        values = attributes[column]
        if pd.api.types.is_object_dtype(values) or isinstance(
            values.dtype, pd.StringDtype | pd.CategoricalDtype
        ):
            attributes[column] = values.astype(STRING)
    frame = pd.concat([buyer_id.rename("buyer_id"), attributes], axis=1)
    clean = frame.loc[accepted].sort_values("buyer_id", ignore_index=True)
    return Checked(clean, buyer_id, reason, reasons)


def _taxonomy_names(raw: pd.Series, stages: tuple[str, ...]) -> pd.Series:
    """Stage names spelt as in the taxonomy when they differ only by case or whitespace."""
    names = clean_text(raw)
    spelling = {key: stage for stage in stages for key in name_text(pd.Series([stage]))}
    known = name_text(names).map(spelling).astype(STRING)
    return known.fillna(names)


def _require_known_stages(stage: pd.Series, stages: tuple[str, ...], file: str) -> None:
    unknown = (stage.notna() & ~stage.isin(stages)).to_numpy(dtype=bool)
    if not unknown.any():
        return
    counts = stage[unknown].value_counts()
    found = ", ".join(f"'{name}' ({count} rows)" for name, count in counts.head(SHOWN).items())
    raise ContractError(
        file=file,
        column="stage",
        rows=(np.flatnonzero(unknown)[:SHOWN] + 1).tolist(),
        problem=f"{int(unknown.sum())} rows use stage names outside the taxonomy: {found}; "
        f"expected one of {list(stages)} {ROWS_NOTE}",
        fix="map these names onto the taxonomy in the export, or add them, in buying "
        "order, to 'stages' in params.yaml",
    )
