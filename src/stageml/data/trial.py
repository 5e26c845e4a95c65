"""The randomised touch trial's two tables: the log the product may read, the truth it never does.

:func:`stageml.data.world.walk` enrols buyers and draws their touch; this turns its record
into ``trial`` (``buyer_id``, ``assigned_at``, ``touch``; ``"none"`` for the control) and
``touch_truth`` (the same rows with the true ``stage`` and ``lift_<touch>``, the true lift of
every candidate touch for that buyer at that instant; :func:`~stageml.data.world.true_lift`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stageml.data.world import (
    DAY,
    Trial,
    World,
    WorldParams,
    touch_effect_table,
    trial_arms,
    true_lift,
)


def trial_tables(
    world: World,
    knobs: WorldParams,
    trial: Trial,
    *,
    buyer_ids: pd.Series,
    speed: np.ndarray,
    t0: pd.Timestamp,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the trial log and its truth; ``buyer_ids`` and ``speed`` are per trial row."""
    names = np.asarray(("none", *world.activities), dtype=object)
    base = np.datetime64(t0.as_unit("s").asm8, "s")
    log = pd.DataFrame(
        {
            "buyer_id": buyer_ids.reset_index(drop=True),
            "assigned_at": pd.Series((base + trial.day * DAY).astype("datetime64[us]")),
            "touch": pd.Series(names[trial.arm + 1], dtype="str"),
        }
    )
    stages = np.asarray(world.stages, dtype=object)
    truth = log.assign(stage=pd.Series(stages[trial.stage], dtype="str"))
    hazard = world.up_hazard[trial.stage] * speed
    effects = touch_effect_table(world)
    for arm in trial_arms(world)[1:]:
        truth[f"lift_{world.activities[arm]}"] = true_lift(
            hazard,
            effects[trial.stage, arm],
            window_days=knobs.touch_window_days,
            horizon_days=knobs.trial_horizon_days,
        )
    return log, truth
