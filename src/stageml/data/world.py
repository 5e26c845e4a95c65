"""The simulated world behind :mod:`stageml.data.simulate`: vocabulary, profiles, dynamics.

Everything stage-specific is written once, for five *anchor* positions along a funnel
(0 = first stage, 0.75 = last stage before purchase, 1 = the absorbing last stage), and
interpolated to the actual stage list. A 3-stage or 7-stage taxonomy therefore gets
sensible mixes and rates without anyone writing new tables, and the default five stages
land exactly on the anchors.

The dynamics below are pure functions of arrays (one element per buyer, event or stage
entry) and an explicit ``numpy.random.Generator``. Times are integer seconds since the
export start; "days" are the buyer's local days, so day order and time order agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from stageml.errors import ConfigError

ANCHORS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
DAY = 86_400

# activity: (channel, direction, weights at the five anchors). Neighbouring anchors share
# most activities, so no single event reveals the stage; only the mix shifts.
ACTIVITIES: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "ad_click": ("paid_ads", "inbound", (30, 12, 4, 1, 1)),
    "site_visit": ("web", "inbound", (30, 25, 18, 12, 8)),
    "social_engagement": ("social", "inbound", (15, 10, 4, 2, 2)),
    "newsletter_signup": ("email", "inbound", (10, 6, 2, 0, 0)),
    "content_download": ("web", "inbound", (10, 12, 6, 2, 1)),
    "event_visit": ("event", "inbound", (5, 6, 4, 2, 1)),
    "webinar": ("event", "inbound", (0, 10, 8, 3, 2)),
    "case_study_download": ("web", "inbound", (0, 8, 10, 3, 0)),
    "pricing_page": ("web", "inbound", (0, 6, 14, 8, 2)),
    "inbound_email": ("email", "inbound", (0, 5, 8, 12, 6)),
    "call_inbound": ("phone", "inbound", (0, 0, 3, 6, 3)),
    "demo_request": ("web", "inbound", (0, 1, 8, 3, 0)),
    "demo_attended": ("meeting", "inbound", (0, 0, 6, 8, 0)),
    "proposal_view": ("web", "inbound", (0, 0, 2, 14, 0)),
    "contract_review": ("meeting", "inbound", (0, 0, 0, 10, 0)),
    "security_review": ("meeting", "inbound", (0, 0, 1, 8, 0)),
    "onboarding_session": ("meeting", "inbound", (0, 0, 0, 0, 6)),
    "support_ticket": ("web", "inbound", (0, 0, 0, 0, 10)),
    "product_login": ("web", "inbound", (0, 0, 0, 1, 40)),
    "sales_email": ("email", "outbound", (50, 35, 25, 15, 20)),
    "linkedin_message": ("social", "outbound", (25, 10, 5, 2, 2)),
    "sales_call": ("phone", "outbound", (25, 30, 25, 20, 10)),
    "meeting_invite": ("meeting", "outbound", (0, 25, 30, 20, 15)),
    "proposal_sent": ("email", "outbound", (0, 0, 10, 25, 0)),
    "contract_sent": ("email", "outbound", (0, 0, 0, 18, 0)),
    "check_in_call": ("phone", "outbound", (0, 0, 0, 0, 53)),
}
# Activities that mark the late funnel; tests use them to check the mix moves with stage.
LATE_ACTIVITIES = (
    "demo_request",
    "demo_attended",
    "proposal_view",
    "contract_review",
    "security_review",
)

# The true effect of each seller touch on moving on, at the five anchors, used when
# ``WorldParams.touch_effects`` is on (off, every touch adds ``touch_boost``). A touch on day
# d multiplies the buyer's move-on hazard by ``1 + effect`` on days d+1 .. d+window.
# Stage-appropriate by design: a LinkedIn note wakes an alerted buyer, a call engages, a
# meeting (the demo) moves an evaluating buyer but barely an alerted one, a contract moves a
# committed one; a customer check-in moves nobody (the planted zero). Each stage's best touch
# beats the runner-up by a clear margin so a good estimator can recover it.
TOUCH_EFFECTS: dict[str, tuple[float, ...]] = {
    "sales_email": (0.6, 0.4, 0.2, 0.1, 0.0),
    "linkedin_message": (2.0, 0.5, 0.1, 0.0, 0.0),
    "sales_call": (0.8, 2.0, 0.8, 0.4, 0.0),
    "meeting_invite": (0.1, 1.0, 3.0, 1.0, 0.0),
    "proposal_sent": (0.0, 0.2, 1.2, 2.0, 0.0),
    "contract_sent": (0.0, 0.0, 0.4, 3.5, 0.0),
    "check_in_call": (0.0, 0.0, 0.0, 0.0, 0.0),
}

# Per-stage rates at the anchors (per buyer-day, before per-buyer multipliers).
INBOUND_RATE = (0.28, 0.50, 0.75, 0.85, 0.15)
TOUCH_RATE = (0.06, 0.12, 0.18, 0.25, 0.03)
# Mean days to move on without any seller touch (a 5-stage funnel; rescaled so longer
# taxonomies are not slower). Touches cut the stay of those who move on to ~25-35 days;
# with QUIET_RATE, ~25% reach the last stage and ~13% of weekly 30-day labels are positive.
MEAN_DAYS = (70.0, 90.0, 100.0, 70.0, 70.0)
QUIET_RATE = (0.008, 0.006, 0.005, 0.004, 0.0)
REGRESS_RATE = (0.0, 0.0008, 0.0008, 0.0008, 0.0)

# Buyer attributes: value -> probability, and the segment's effect on behaviour.
SEGMENTS = ("smb", "mid_market", "enterprise")
SEGMENT_P = (0.6, 0.3, 0.1)
SEGMENT_SPEED = (1.25, 1.0, 0.7)  # enterprise deals move slower
SEGMENT_ACTIVITY = (0.8, 1.0, 1.5)  # and involve more people, so more events
SEGMENT_SELLER = (0.7, 1.0, 1.6)  # and get more seller attention
SEGMENT_EMPLOYEES = ((5, 200), (200, 2000), (2000, 100_000))
INDUSTRIES = (
    "software",
    "manufacturing",
    "financial_services",
    "healthcare",
    "retail",
    "education",
)
INDUSTRY_P = (0.25, 0.18, 0.15, 0.14, 0.14, 0.14)
REGIONS = ("north_america", "emea", "apac", "latam")
REGION_P = (0.45, 0.30, 0.15, 0.10)
REGION_UTC_OFFSET_H = (-5, 1, 8, -3)

# Local hour-of-day weights: people browse into the evening, sellers keep office hours.
INBOUND_HOURS = (1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 13, 11, 13, 14, 13, 11, 9, 7, 7, 6, 5, 3, 2)
OUTBOUND_HOURS = (0, 0, 0, 0, 0, 0, 0, 2, 10, 14, 14, 12, 8, 12, 14, 13, 10, 6, 1, 0, 0, 0, 0, 0)
# Share of weekend events kept (the rest never happen), by direction.
WEEKEND_KEEP = {"inbound": 0.4, "outbound": 0.08}


@dataclass(frozen=True)
class WorldParams:
    """Scalar knobs of the simulated world; the defaults are what the docs describe.

    Attributes
    ----------
    activity_sigma, speed_sigma, seller_sigma
        Log-scale spread of the per-buyer multipliers (mean 1) of inbound activity,
        stage-transition speed and seller attention. Buyers differ a lot in activity.
    touch_boost, touch_window_days
        A seller touch multiplies the hazard of moving to the next stage by
        ``1 + touch_boost`` for the following ``touch_window_days`` days.
    quiet_tau_days, quiet_seller_tau_days
        After a buyer goes quiet, inbound (seller) activity decays with this time constant.
    missing_history_share
        Share of buyers whose stage changes were never recorded in the CRM.
    skip_share, wrong_share
        Per change: share not recorded, and share recorded as an adjacent stage.
    lag_mean_days, lag_max_days
        Recording delay: exponential with this mean, capped at the maximum.
    touch_effects
        Each touch's boost is its stage-appropriate :data:`TOUCH_EFFECTS` entry instead of
        ``touch_boost``, so the walk draws each touch's activity when it happens.
    randomised_share, enrol_share, trial_every_days, trial_horizon_days
        The randomised arm (needs ``touch_effects``): this share of buyers may be enrolled,
        at most once per stage and never while an earlier trial touch could still act, on
        a trial day (every ``trial_every_days`` days from the export start, at midnight
        UTC) with probability ``enrol_share`` while in play; each enrolment gets one touch
        drawn uniformly from :data:`TOUCH_EFFECTS` or none (the control). The true lift
        written for them is over ``trial_horizon_days`` (the label horizon).
    exit_share, exit_lag_days
        When the taxonomy has exits: share of buyers gone quiet whom the CRM closes as an
        exit (``disqualified`` from the first stage, ``lost`` after it), a uniform number
        of days in ``exit_lag_days`` after they went quiet.

    """

    activity_sigma: float = 0.9
    speed_sigma: float = 0.4
    seller_sigma: float = 0.5
    touch_boost: float = 1.5
    touch_window_days: int = 7
    quiet_tau_days: float = 10.0
    quiet_seller_tau_days: float = 21.0
    missing_history_share: float = 0.15
    skip_share: float = 0.04
    wrong_share: float = 0.05
    lag_mean_days: float = 2.5
    lag_max_days: float = 10.0
    touch_effects: bool = False
    randomised_share: float = 0.0
    enrol_share: float = 0.25
    trial_every_days: int = 7
    trial_horizon_days: int = 30
    exit_share: float = 0.8
    exit_lag_days: tuple[float, float] = (10.0, 45.0)


@dataclass(frozen=True)
class World:
    """Stage-indexed arrays for one taxonomy (row k = stage k)."""

    stages: tuple[str, ...]
    activities: tuple[str, ...]
    channels: tuple[str, ...]
    is_outbound: np.ndarray  # (n_activities,) bool
    mix_cum: np.ndarray  # (2, n_stages, n_activities): cumulative mix, inbound then outbound
    inbound_rate: np.ndarray
    touch_rate: np.ndarray
    up_hazard: np.ndarray
    quiet_hazard: np.ndarray
    down_hazard: np.ndarray


def build_world(stages: Sequence[str]) -> World:
    """Interpolate the anchor profiles onto ``stages`` (ordered, at least two, unique).

    Raises
    ------
    ConfigError
        If the taxonomy has fewer than two stages or repeats a name.

    """
    names = tuple(str(s) for s in stages)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(
            f"stages must be at least two unique names in funnel order, got {list(names)}. "
            "Fix: pass e.g. ('alerted', 'engaged', 'evaluating', 'committed', 'purchased')"
        )
    k = len(names)
    at = _interpolator(k)

    activities = tuple(ACTIVITIES)
    outbound = np.array([ACTIVITIES[a][1] == "outbound" for a in activities])
    weights = np.stack([at(ACTIVITIES[a][2]) for a in activities], axis=1)  # (k, n_act)
    mix = np.stack([np.where(outbound, 0.0, weights), np.where(outbound, weights, 0.0)])
    mix_cum = np.cumsum(mix, axis=2) / mix.sum(axis=2, keepdims=True)
    mix_cum[..., -1] = 1.0
    # A k-stage funnel has k-1 steps; scale so the whole journey takes as long as with 5.
    up = (k - 1) / 4.0 / at(MEAN_DAYS)
    up[-1] = 0.0
    quiet, down = at(QUIET_RATE), at(REGRESS_RATE)
    quiet[-1] = 0.0
    down[0] = down[-1] = 0.0
    return World(
        stages=names,
        activities=activities,
        channels=tuple(ACTIVITIES[a][0] for a in activities),
        is_outbound=outbound,
        mix_cum=mix_cum,
        inbound_rate=at(INBOUND_RATE),
        touch_rate=at(TOUCH_RATE),
        up_hazard=up,
        quiet_hazard=quiet,
        down_hazard=down,
    )


def _interpolator(k: int) -> Callable[[Sequence[float]], np.ndarray]:
    """Anchor values -> one value per stage of a ``k``-stage funnel."""
    # The absorbing last stage is always the customer profile; the stages before it
    # spread over the pre-purchase anchors so none of them looks half like a customer.
    pos = np.r_[np.linspace(0.0, ANCHORS[-2], k - 1), ANCHORS[-1]]

    def at(values: Sequence[float]) -> np.ndarray:
        return np.asarray(np.interp(pos, ANCHORS, np.asarray(values, dtype=float)))

    return at


def touch_effect_table(world: World) -> np.ndarray:
    """Spread :data:`TOUCH_EFFECTS` over this taxonomy: effect per (stage, activity), else 0."""
    at = _interpolator(len(world.stages))
    table = np.zeros((len(world.stages), len(world.activities)))
    for j, name in enumerate(world.activities):
        if name in TOUCH_EFFECTS:
            table[:, j] = at(TOUCH_EFFECTS[name])
    table[-1] = 0.0
    return table


def trial_arms(world: World) -> np.ndarray:
    """Give the activity index of each randomised arm; arm 0 is the control (-1, no touch)."""
    return np.asarray([-1, *(world.activities.index(a) for a in TOUCH_EFFECTS)], np.int64)


def true_lift(
    hazard: np.ndarray, effect: np.ndarray, *, window_days: int, horizon_days: int
) -> np.ndarray:
    """Compute the added chance of moving on within the horizon from one touch now.

    Other touches are held off.

    With daily hazard ``h`` the chance of staying put for ``H`` days is ``(1 - h)^H``; the
    touch raises the hazard to ``h (1 + e)`` for its ``w``-day window.
    """
    h = np.clip(hazard, 0.0, 1.0)
    boosted = np.clip(h * (1 + effect), 0.0, 1.0)
    w = min(window_days, horizon_days)
    return np.asarray((1 - h) ** (horizon_days - w) * ((1 - h) ** w - (1 - boosted) ** w))


class Trial(NamedTuple):
    """Buyers enrolled in the randomised arm: when (walk day), their stage, and the arm."""

    buyer: np.ndarray
    day: np.ndarray
    stage: np.ndarray
    arm: np.ndarray  # activity index of the touch given; -1 for the control


class Steps(NamedTuple):
    """Stage entries, one element each: buyer index, when, and the stage entered."""

    buyer: np.ndarray
    at: np.ndarray
    stage: np.ndarray


class Walk(NamedTuple):
    """What :func:`walk` decided: moves and seller touches by day, and quiet days."""

    moves: Steps  # ``at`` is the local day of the move
    touch_buyer: np.ndarray
    touch_day: np.ndarray
    quiet_day: np.ndarray  # per buyer; -1 if the buyer never went quiet
    # Activity of each touch when the walk chose it (touch_effects), else None: drawn later.
    touch_activity: np.ndarray | None = None
    trial: Trial | None = None


def walk(
    rng: np.random.Generator,
    world: World,
    knobs: WorldParams,
    *,
    entry_day: np.ndarray,
    n_days: int,
    speed: np.ndarray,
    seller: np.ndarray,
    weekday0: int,
) -> Walk:
    """Walk the buyers still in play (entered, not final, not quiet) one day at a time.

    Per day each buyer in play may get a seller touch and then moves up, goes quiet or
    moves down (competing risks, one draw). A touch on day d multiplies the up hazard on
    days d+1 .. d+window, so a touch always precedes the move it helps. Only buyers in
    play are carried, so the cost follows the open funnel, not the whole population.
    With ``knobs.touch_effects`` the boost is the touch's own stage-appropriate effect, and
    a trial touch (the randomised arm) adds its effect on top of the last organic touch's.
    Without it no extra random number is drawn, so the default world is unchanged.
    """
    final = len(world.stages) - 1
    effects = touch_effect_table(world) if knobs.touch_effects else None
    if effects is None and knobs.randomised_share > 0:
        raise ConfigError("randomised_share > 0 needs touch_effects=True (the arm's truth)")
    arms = trial_arms(world)
    may_enrol = (
        rng.random(len(entry_day)) < knobs.randomised_share
        if effects is not None and knobs.randomised_share > 0
        else np.zeros(len(entry_day), bool)
    )
    by_entry = np.argsort(entry_day, kind="stable")
    entered = np.searchsorted(entry_day[by_entry], np.arange(n_days + 1), side="left")
    enrolled_at = np.full(len(entry_day), -1, np.int64)  # stage of the last enrolment
    live_b, live_s, live_touch, live_trial = (np.empty(0, np.int64) for _ in range(4))
    live_boost, live_extra = np.empty(0), np.empty(0)
    moves: list[tuple[np.ndarray, ...]] = []
    touches: list[tuple[np.ndarray, ...]] = []
    trials: list[tuple[np.ndarray, ...]] = []
    quiet_day = np.full(len(entry_day), -1, np.int64)
    for d in range(1, n_days):
        new = by_entry[entered[d - 1] : entered[d]]  # buyers who entered on day d - 1
        never = np.full(len(new), -(10**6))
        live_b = np.concatenate([live_b, new])
        live_s = np.concatenate([live_s, np.zeros(len(new), np.int64)])
        live_touch = np.concatenate([live_touch, never])
        live_trial = np.concatenate([live_trial, never])
        live_boost = np.concatenate([live_boost, np.full(len(new), knobs.touch_boost)])
        live_extra = np.concatenate([live_extra, np.zeros(len(new))])
        u = rng.random((2, len(live_b)))
        weekend = WEEKEND_KEEP["outbound"] if (weekday0 + d) % 7 >= 5 else 1.0
        touched = u[0] < world.touch_rate[live_s] * seller[live_b] * weekend
        activity = np.full(int(touched.sum()), -1, np.int64)
        if effects is not None:
            activity = draw_activities(rng, world, live_s[touched], np.ones(len(activity), bool))
            live_boost[touched] = effects[live_s[touched], activity]
            if may_enrol.any() and d % knobs.trial_every_days == 0:
                pick = may_enrol[live_b] & (enrolled_at[live_b] < live_s)
                pick &= d - live_trial > 2 * knobs.touch_window_days
                pick &= rng.random(len(live_b)) < knobs.enrol_share
                arm = arms[rng.integers(0, len(arms), int(pick.sum()))]
                enrolled_at[live_b[pick]] = live_s[pick]
                trials.append((live_b[pick], np.full(len(arm), d), live_s[pick], arm))
                live_trial[pick] = d
                live_extra[pick] = np.where(arm >= 0, effects[live_s[pick], arm], 0.0)
        window = knobs.touch_window_days
        boost = np.where(d - live_touch <= window, 1 + live_boost, 1.0)
        boost = boost + np.where(d - live_trial <= window, live_extra, 0.0)
        p_up = world.up_hazard[live_s] * speed[live_b] * boost
        p_quiet = p_up + world.quiet_hazard[live_s]
        up, to_quiet = u[1] < p_up, (u[1] >= p_up) & (u[1] < p_quiet)
        down = (u[1] >= p_quiet) & (u[1] < p_quiet + world.down_hazard[live_s])
        live_s = live_s + up - down
        moved = up | down
        moves.append((live_b[moved], np.full(moved.sum(), d), live_s[moved]))
        touches.append((live_b[touched], np.full(touched.sum(), d), activity))
        quiet_day[live_b[to_quiet]] = d
        live_touch = np.where(touched, d, live_touch)
        stay = ~to_quiet & (live_s != final)
        live_b, live_s, live_touch = live_b[stay], live_s[stay], live_touch[stay]
        live_trial, live_boost, live_extra = live_trial[stay], live_boost[stay], live_extra[stay]
    moved_b, moved_d, moved_s = _stack(moves, 3)
    touch_b, touch_d, touch_a = _stack(touches, 3)
    return Walk(
        Steps(moved_b, moved_d, moved_s),
        touch_b,
        touch_d,
        quiet_day,
        touch_activity=touch_a if effects is not None else None,
        trial=Trial(*_stack(trials, 4)) if effects is not None else None,
    )


def episode_events(
    rng: np.random.Generator,
    buyer: np.ndarray,
    t_start: np.ndarray,
    t_end: np.ndarray,
    rate: np.ndarray,
    tau_days: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson event times per episode: flat at ``rate`` (tau = inf) or decaying from it.

    Drawing a count per episode and then uniform (or truncated-exponential) offsets costs
    one draw per event, instead of one per buyer-day.
    """
    days = np.maximum(t_end - t_start, 0) / DAY
    decays = np.isfinite(tau_days)
    tau = np.where(decays, tau_days, 1.0)
    mass = np.where(decays, 1 - np.exp(-days / tau), 0.0)
    counts = rng.poisson(np.where(decays, rate * tau * mass, rate * days))
    row = np.repeat(np.arange(len(buyer)), counts)
    u = rng.random(len(row))
    offset = np.where(decays[row], -tau[row] * np.log1p(-u * mass[row]), u * days[row])
    return buyer[row], t_start[row] + (offset * DAY).astype(np.int64)


def at_hour(
    rng: np.random.Generator,
    local_day: np.ndarray,
    offset: np.ndarray,
    hours: Sequence[int],
) -> np.ndarray:
    """Place one moment on each local day at a typical hour (seconds since export start)."""
    weights = np.asarray(hours, dtype=float)
    hour = rng.choice(24, len(local_day), p=weights / weights.sum())
    seconds = rng.integers(0, 3600, len(local_day))
    return np.asarray(np.asarray(local_day, np.int64) * DAY + hour * 3600 + seconds - offset)


def draw_activities(
    rng: np.random.Generator,
    world: World,
    stage: np.ndarray,
    outbound: np.ndarray,
) -> np.ndarray:
    """Activity index per event from its (direction, stage) mix, in one vectorised search.

    Group g = direction * n_stages + stage has its cumulative mix shifted into (g, g + 1],
    so a single ``searchsorted`` of ``g + u`` serves every group.
    """
    n_act = len(world.activities)
    group = outbound.astype(np.int64) * len(world.stages) + stage
    mixes = world.mix_cum.reshape(-1, n_act)
    flat = (np.arange(len(mixes))[:, None] + mixes).ravel()
    u = rng.random(len(group)) * (1 - 1e-12)  # keeps g + u strictly below g + 1 in floats
    return np.asarray(np.searchsorted(flat, group + u, side="right") - group * n_act)


def _stack(parts: Sequence[tuple[np.ndarray, ...]], width: int) -> tuple[np.ndarray, ...]:
    if not parts:
        return tuple(np.empty(0, np.int64) for _ in range(width))
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))
