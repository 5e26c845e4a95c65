"""A fitted model's predictions on snapshot rows, each row predicted once per fit.

The backtest asks a model about overlapping sets of rows: the stage model's probabilities
are read on the stage test rows, on the inflection (and exit) test rows to score them as
the product does, and on every period's inflection rows for the reliability curves. A
prediction of one row does not depend on the others in the call, so each row is
predicted once and read back as often as asked, with the same values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


class RowPredictions:
    """``predict(snaps.loc[index, columns])``, computed once per row of ``snaps``.

    Parameters
    ----------
    predict
        The model's prediction for a frame of rows, shape (rows, outputs), row by row.
    snaps
        The frame every asked-for index belongs to (its index unique).
    columns
        The columns ``predict`` reads.

    """

    def __init__(
        self,
        predict: Callable[[pd.DataFrame], np.ndarray],
        snaps: pd.DataFrame,
        columns: list[str],
    ) -> None:
        self.predict = predict
        self.snaps = snaps
        self.positions = snaps.columns.get_indexer(columns)
        self.done = np.zeros(len(snaps), dtype=bool)
        self.values: np.ndarray | None = None

    def __call__(self, index: pd.Index) -> np.ndarray:
        """Return the predictions of the rows at ``index``, in its order."""
        at = self.snaps.index.get_indexer(index)
        if (at < 0).any():
            raise KeyError(f"rows not among the snapshots: {list(index[at < 0][:5])}")
        todo = np.unique(at[~self.done[at]])
        if len(todo):
            fresh = np.asarray(self.predict(self.snaps.iloc[todo, self.positions]))
            if self.values is None:
                self.values = np.empty((len(self.snaps), fresh.shape[1]))
            self.values[todo] = fresh
            self.done[todo] = True
        if self.values is None:  # nothing asked for yet
            return np.empty((0, 0))
        return np.asarray(self.values[at])
