"""Predictions made once per snapshot row and read back by the backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stageml.models.estimators import CalibratedLGBM
from stageml.models.row_predictions import RowPredictions


def test_each_row_is_predicted_once_and_reads_as_a_direct_prediction() -> None:
    rng = np.random.default_rng(2)
    snaps = pd.DataFrame(
        {
            "x": rng.normal(size=900),
            "channel": pd.Categorical(rng.choice(["a", "b", None], 900)),
            "label": rng.integers(0, 3, 900),
        },
        index=np.arange(900) * 3,  # labels that are not positions
    )
    columns = ["x", "channel"]
    model = CalibratedLGBM(n_classes=3, n_estimators=20, n_jobs=1, min_data_per_group=10)
    model.fit(
        snaps[columns],
        snaps["label"].to_numpy(),
        X_valid=snaps[columns],
        y_valid=snaps["label"].to_numpy(),
    )
    asked: list[int] = []

    def predict(rows: pd.DataFrame) -> np.ndarray:
        asked.extend(rows.index)
        return model.predict_proba_raw(rows)

    raw = RowPredictions(predict, snaps, columns)
    first, second = snaps.index[100:700], snaps.index[::-1][:500]  # overlapping, reversed
    for index in (first, second, first):
        np.testing.assert_array_equal(
            raw(index), model.predict_proba_raw(snaps.loc[index, columns])
        )
    assert len(asked) == len(set(asked)) == len(first.union(second))
    with pytest.raises(KeyError, match="not among the snapshots"):
        raw(pd.Index([1]))
