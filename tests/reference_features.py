"""A slow, obvious, pure-pandas reference for the feature pipeline.

One Python loop over (buyer, as-of) pairs, each feature written the most literal way. The
fast DuckDB engine must match it exactly on small random data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stageml.config import FeatureConfig
from stageml.durations import format_duration
from stageml.features.engine import feature_columns
from stageml.features.vocabulary import OTHER, Vocabulary

DAY = pd.Timedelta(days=1)


def reference_features(
    interactions: pd.DataFrame,
    as_of: list[pd.Timestamp],
    vocabulary: Vocabulary,
    config: FeatureConfig,
) -> pd.DataFrame:
    acts = list(vocabulary.activities)
    chans = list(vocabulary.channels)
    act_slugs = vocabulary.activity_slugs()
    chan_slugs = vocabulary.channel_slugs()
    ev = interactions.copy()
    ev["act"] = (
        ev["activity"].astype(object).map(lambda a: acts.index(a) if a in acts else len(acts))
    )
    ev["chan"] = [
        chans.index(c) if isinstance(c, str) and c in chans else len(chans) for c in ev["channel"]
    ]
    ev["dir"] = ev["direction"].map({"inbound": 0, "outbound": 1}).fillna(9)
    rows = []
    for t in sorted(set(as_of)):
        for buyer, hist in ev.groupby("buyer_id"):
            past = hist[hist["occurred_at"] < t].sort_values(
                ["occurred_at", "act", "chan", "dir", "activity"]
            )
            if past.empty:
                continue
            row: dict[str, object] = {"buyer_id": buyer, "as_of": t}
            first, last = past["occurred_at"].min(), past["occurred_at"].max()

            def in_window(
                w: pd.Timedelta | None, frame: pd.DataFrame = past, t: pd.Timestamp = t
            ) -> pd.DataFrame:
                return frame if w is None else frame[frame["occurred_at"] >= t - w]

            def first_day_flags(frame: pd.DataFrame, hist: pd.DataFrame = hist) -> pd.Series:
                idx = (frame["occurred_at"] - hist["occurred_at"].min()) // DAY
                return ~idx.duplicated()

            spans = [(format_duration(w), w) for w in config.windows] + [("all", None)]
            flags = first_day_flags(past)
            for name, w in spans:
                win = in_window(w)
                row[f"n_{name}"] = len(win)
                for i, s in enumerate(act_slugs):
                    row[f"act_{s}_{name}"] = int((win["act"] == i).sum())
                for i, s in enumerate(chan_slugs):
                    row[f"chan_{s}_{name}"] = int((win["chan"] == i).sum())
                row[f"dir_inbound_{name}"] = int((win["dir"] == 0).sum())
                row[f"dir_outbound_{name}"] = int((win["dir"] == 1).sum())
                # A day counts in the window when its first interaction falls in the window.
                row[f"active_days_{name}"] = int(flags[win.index].sum())
            row["distinct_activities_all"] = past["activity"].nunique()
            row["distinct_channels_all"] = past["channel"].dropna().nunique()
            tenure = (t - first) / DAY
            for name, w in spans[:-1]:
                n_w = row[f"n_{name}"]
                row[f"inbound_share_{name}"] = row[f"dir_inbound_{name}"] / n_w if n_w else np.nan
                row[f"intensity_{name}"] = (n_w / (w / DAY)) / (len(past) / max(tenure, w / DAY))
            trend = config.trend_window
            tname = format_duration(trend)
            recent = len(past[past["occurred_at"] >= t - trend])
            prev = len(
                past[(past["occurred_at"] >= t - 2 * trend) & (past["occurred_at"] < t - trend)]
            )
            row[f"n_prev_{tname}"] = prev
            row[f"trend_ratio_{tname}"] = (recent + 1) / (prev + 1)
            row["days_since_last"] = (t - last) / DAY
            row["days_since_first"] = tenure
            for i, s in enumerate(act_slugs):
                hits = past[past["act"] == i]
                row[f"days_since_act_{s}"] = (
                    (t - hits["occurred_at"].max()) / DAY if len(hits) else np.nan
                )
            gaps = past["occurred_at"].diff().dropna() / DAY
            row["gap_mean_days"] = gaps.mean() if len(gaps) else np.nan
            row["gap_max_days"] = gaps.max() if len(gaps) else np.nan
            row["gap_last_days"] = gaps.iloc[-1] if len(gaps) else np.nan
            names = acts + [OTHER]
            seq = list(past["act"])[::-1]
            for k in range(1, config.last_activities + 1):
                row[f"last_activity_{k}"] = names[seq[k - 1]] if k <= len(seq) else np.nan
            rows.append(row)
    columns = ["buyer_id", "as_of", *feature_columns(vocabulary, config)]
    frame = pd.DataFrame(rows)
    for col in columns:
        if col not in frame:
            frame[col] = np.nan
    return frame[columns]
