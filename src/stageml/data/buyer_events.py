"""One block of simulated buyers: their attributes, true stage paths and interaction events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from stageml.data.world import (
    DAY,
    INBOUND_HOURS,
    INDUSTRIES,
    INDUSTRY_P,
    OUTBOUND_HOURS,
    REGION_P,
    REGION_UTC_OFFSET_H,
    REGIONS,
    SEGMENT_ACTIVITY,
    SEGMENT_EMPLOYEES,
    SEGMENT_P,
    SEGMENT_SELLER,
    SEGMENT_SPEED,
    SEGMENTS,
    WEEKEND_KEEP,
    Steps,
    Walk,
    World,
    WorldParams,
    at_hour,
    episode_events,
)

TRIAL_HOUR = 10  # trial touches go out at 10:00 UTC on the trial day
BUYER_SHIFT = 33  # sort key: buyer << 33 | seconds << 1 | outbound


class Buyers(NamedTuple):
    """A block of buyers: the buyers table and the per-buyer knobs of the walk."""

    frame: pd.DataFrame
    ids: pa.Array
    offset: np.ndarray  # UTC offset of the buyer's region, seconds
    activity: np.ndarray  # per-buyer multipliers, mean 1 within a segment
    speed: np.ndarray
    seller: np.ndarray


def draw_buyers(rng: np.random.Generator, first_id: int, n: int, knobs: WorldParams) -> Buyers:
    """Attributes, and the hidden per-buyer multipliers they shift (segment matters)."""
    seg = rng.choice(len(SEGMENTS), n, p=SEGMENT_P)
    region = rng.choice(len(REGIONS), n, p=REGION_P)
    industry = rng.choice(len(INDUSTRIES), n, p=INDUSTRY_P)
    lo, hi = np.log(np.asarray(SEGMENT_EMPLOYEES, dtype=float)[seg]).T
    ids = np.char.add("B", np.char.zfill((np.arange(n) + first_id + 1).astype(str), 6))
    frame = pd.DataFrame(
        {
            "buyer_id": text_column(ids),
            "segment": text_column(np.asarray(SEGMENTS)[seg]),
            "industry": text_column(np.asarray(INDUSTRIES)[industry]),
            "employees": np.exp(rng.uniform(lo, hi)).round().astype(np.int64),
            "region": text_column(np.asarray(REGIONS)[region]),
        }
    )

    def spread(sigma: float, by_segment: tuple[float, ...]) -> np.ndarray:
        return np.asarray(rng.lognormal(-(sigma**2) / 2, sigma, n) * np.asarray(by_segment)[seg])

    return Buyers(
        frame=frame,
        ids=pa.array(ids, pa.large_string()),
        offset=np.asarray(REGION_UTC_OFFSET_H, np.int64)[region] * 3600,
        activity=spread(knobs.activity_sigma, SEGMENT_ACTIVITY),
        speed=spread(knobs.speed_sigma, SEGMENT_SPEED),
        seller=spread(knobs.seller_sigma, SEGMENT_SELLER),
    )


def true_path(
    rng: np.random.Generator,
    entry: np.ndarray,
    walked: Walk,
    offset: np.ndarray,
    span: int,
) -> tuple[Steps, np.ndarray]:
    """Place the walk's moves in time; return the true path and each buyer's quiet instant.

    A buyer who never went quiet (or only after the export instant) gets ``span``.
    """
    n, moves = len(entry), walked.moves
    buyer = np.r_[np.arange(n), moves.buyer]
    at = np.r_[entry, at_hour(rng, moves.at, offset[moves.buyer], OUTBOUND_HOURS)]
    stage = np.r_[np.zeros(n, np.int64), moves.stage]
    keep = np.flatnonzero(at < span)
    keep = keep[np.argsort(event_key(buyer[keep], at[keep]), kind="stable")]
    quiet = at_hour(rng, np.maximum(walked.quiet_day, 0), offset, OUTBOUND_HOURS)
    quiet = np.where((walked.quiet_day >= 0) & (quiet < span), quiet, span)
    return Steps(buyer[keep], at[keep], stage[keep]), quiet


def buyer_events(
    rng: np.random.Generator,
    world: World,
    knobs: WorldParams,
    pop: Buyers,
    entry: np.ndarray,
    truth: Steps,
    quiet: np.ndarray,
    walked: Walk,
    span: int,
    weekday0: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Every interaction as a sorted key ``buyer << 33 | seconds << 1 | outbound``.

    Inbound events come from each stage episode (flat rate) and from the quiet tail
    (decaying); seller touches of buyers in play come from :func:`walk`, those of
    customers and quiet buyers from episodes. Events before entry or at/after the export
    instant are dropped; the entry itself is always the buyer's first event. Beside the
    keys: the activity the walk already chose for a touch (trial touches included), else -1.
    """
    n = len(entry)
    last = np.r_[truth.buyer[1:] != truth.buyer[:-1], True]
    ends = np.where(last, quiet[truth.buyer], np.r_[truth.at[1:], 0])
    q = np.flatnonzero(quiet < span)
    q_stage = truth.stage[
        np.searchsorted(event_key(truth.buyer, truth.at), event_key(q, quiet[q]), side="right") - 1
    ]
    final = truth.stage == len(world.stages) - 1
    flat, to_end = np.full(len(final), np.inf), np.full(len(q), span)
    episodes = (  # buyer, start, end, daily rate, decay time constant (days), outbound
        (
            truth.buyer,
            truth.at,
            ends,
            world.inbound_rate[truth.stage] * pop.activity[truth.buyer],
            flat,
            False,
        ),
        (
            truth.buyer[final],
            truth.at[final],
            ends[final],
            world.touch_rate[-1] * pop.seller[truth.buyer[final]],
            flat[final],
            True,
        ),
        (
            q,
            quiet[q],
            to_end,
            world.inbound_rate[q_stage] * pop.activity[q],
            np.full(len(q), knobs.quiet_tau_days),
            False,
        ),
        (
            q,
            quiet[q],
            to_end,
            world.touch_rate[q_stage] * pop.seller[q],
            np.full(len(q), knobs.quiet_seller_tau_days),
            True,
        ),
    )
    parts = [(np.arange(n), entry, np.zeros(n, bool), np.full(n, -1))]
    for buyer, t_start, t_end, rate, tau, out in episodes:
        b, t = episode_events(rng, buyer, t_start, t_end, rate, tau)
        local_day = (t + pop.offset[b]) // DAY
        t = at_hour(rng, local_day, pop.offset[b], OUTBOUND_HOURS if out else INBOUND_HOURS)
        weekend = (weekday0 + local_day) % 7 >= 5
        kept = ~weekend | (rng.random(len(t)) < WEEKEND_KEEP["outbound" if out else "inbound"])
        kept_n = int(kept.sum())
        parts.append((b[kept], t[kept], np.full(kept_n, out, dtype=bool), np.full(kept_n, -1)))
    touched = walked.touch_buyer
    chosen = walked.touch_activity
    parts.append(
        (
            touched,
            at_hour(rng, walked.touch_day, pop.offset[touched], OUTBOUND_HOURS),
            np.ones(len(touched), bool),
            np.full(len(touched), -1) if chosen is None else chosen,
        )
    )
    if walked.trial is not None:
        given = walked.trial.arm >= 0
        at = walked.trial.day[given] * DAY + TRIAL_HOUR * 3600
        parts.append((walked.trial.buyer[given], at, given[given], walked.trial.arm[given]))
    b, t, outbound, activity = (np.concatenate(column) for column in zip(*parts, strict=True))
    keep = (t >= entry[b]) & (t < span)
    key = event_key(b[keep], t[keep]) | outbound[keep]
    order = np.argsort(key, kind="stable")
    return key[order], activity[keep][order]


def event_key(buyer: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Sort key: buyer, then time; the lowest bit is left for the direction."""
    return (np.asarray(buyer, np.int64) << BUYER_SHIFT) | (np.asarray(seconds, np.int64) << 1)


def text_column(values: Any) -> pd.Series:
    """Text as the export writes it (pandas' default string dtype)."""
    return pd.Series(values, dtype="str")


def label_column(vocabulary: Sequence[str], codes: np.ndarray) -> pd.Series:
    """Names for integer codes into a vocabulary."""
    # Arrow gathers the strings directly; a numpy unicode array would cost 4 bytes a char.
    return text_column(pa.array(vocabulary, pa.large_string()).take(pa.array(codes)))


def stamp_column(t0: pd.Timestamp, seconds: np.ndarray) -> pd.Series:
    """Timestamps ``seconds`` after ``t0``, in microseconds as the contract wants."""
    base = np.datetime64(t0.as_unit("s").asm8, "s")
    return pd.Series((base + np.asarray(seconds, np.int64)).astype("datetime64[us]"))
