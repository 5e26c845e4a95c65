"""Model-based counterfactual lift: score the history with each candidate touch appended now.

The lift of touch ``a`` for a buyer is ``p(history + a now) - p(history)``, both read from the
trained inflection model. It needs no experiment, but it is only as causal as the model: it
learned from the sellers' own choices (who got which touch, and why), so a touch that sellers
give to buyers already about to move looks effective whether or not it is. README,
"Next touches", says when to trust it.
"""

from __future__ import annotations

import pandas as pd

from stageml.models.bundle import StageModel
from stageml.tactics.points import features_at_points, touch_channels


def counterfactual_lift(
    model: StageModel,
    interactions: pd.DataFrame,
    buyers: pd.DataFrame | None,
    points: pd.DataFrame,
    touches: tuple[str, ...],
    *,
    stage_history: pd.DataFrame | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Per point: the inflection probability now and the lift of each candidate touch.

    Returns
    -------
    pandas.DataFrame
        The model's scores without a touch (``buyer_id``, ``as_of``, ``stage``, ``p_<stage>``,
        ``inflection_probability``, ...) and one ``lift_<touch>`` column per touch, one row
        per row of ``points``, in its order. ``stage_history`` is passed on to
        :func:`~stageml.tactics.points.features_at_points`.

    """
    channels = touch_channels(interactions, touches)

    def scored(touch: str | None) -> pd.DataFrame:
        features = features_at_points(
            model,
            interactions,
            buyers,
            points,
            stage_history=stage_history,
            touch=touch,
            channel=channels.get(touch or "", "unknown"),
            threads=threads,
        )
        return model.predict_features(features, threads=threads)

    base = scored(None)
    out = base.copy()
    for touch in touches:
        out[f"lift_{touch}"] = (
            scored(touch)["inflection_probability"] - base["inflection_probability"]
        )
    return out
