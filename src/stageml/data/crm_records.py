"""What the CRM records of a buyer's true path: late, imperfect stage changes and exits."""

from __future__ import annotations

import numpy as np

from stageml.data.world import DAY, Steps, WorldParams


def record_history(
    rng: np.random.Generator,
    truth: Steps,
    *,
    n_buyers: int,
    n_stages: int,
    span: int,
    knobs: WorldParams,
) -> Steps:
    """Turn the true path (sorted by buyer, time) into the CRM's late, imperfect record."""
    kept = (rng.random(n_buyers) >= knobs.missing_history_share)[truth.buyer]
    kept &= rng.random(len(kept)) >= knobs.skip_share
    wrong = rng.random(len(kept)) < knobs.wrong_share
    side = np.where(rng.random(len(kept)) < 0.5, -1, 1)
    side = np.where(truth.stage == 0, 1, np.where(truth.stage == n_stages - 1, -1, side))
    stage = np.where(wrong, truth.stage + side, truth.stage)[kept]
    lag = np.minimum(rng.exponential(knobs.lag_mean_days, len(kept)), knobs.lag_max_days)
    b, t = truth.buyer[kept], truth.at[kept] + (lag[kept] * DAY).astype(np.int64)
    # A clerk enters one buyer's changes in order: keep them at least a minute apart.
    first = np.r_[True, b[1:] != b[:-1]]
    pos = np.arange(len(b)) - np.maximum.accumulate(np.where(first, np.arange(len(b)), 0))
    shift = b * (1 << 40)  # per-buyer running max in one pass over the sorted rows
    t = np.maximum.accumulate(t - pos * 60 + shift) - shift + pos * 60
    keep = t < span  # changes recorded after the export instant are not in it yet
    return Steps(b[keep], t[keep], stage[keep])


def record_exits(
    rng: np.random.Generator,
    truth: Steps,
    quiet: np.ndarray,
    *,
    n_exits: int,
    n_stages: int,
    span: int,
    knobs: WorldParams,
) -> Steps:
    """Close some buyers who went quiet as an exit, weeks after they went quiet (the CRM).

    Exit ``n_stages + 0`` (e.g. lost) for buyers quiet past the first stage, the last exit
    (e.g. disqualified) for buyers quiet in the first stage. Drawn after everything else,
    so the other tables do not depend on whether the taxonomy has exits.
    """
    if n_exits == 0:
        return Steps(*(np.empty(0, np.int64) for _ in range(3)))
    last = np.r_[truth.buyer[1:] != truth.buyer[:-1], True]  # truth is sorted by buyer, time
    stage_at_end = np.zeros(len(quiet), np.int64)
    stage_at_end[truth.buyer[last]] = truth.stage[last]
    closed = (quiet < span) & (rng.random(len(quiet)) < knobs.exit_share)
    low, high = knobs.exit_lag_days
    at = quiet + (rng.uniform(low, high, len(quiet)) * DAY).astype(np.int64)
    which = np.where(stage_at_end == 0, n_exits - 1, 0)
    buyer = np.flatnonzero(closed & (at < span))
    return Steps(buyer, at[buyer], n_stages + which[buyer])
