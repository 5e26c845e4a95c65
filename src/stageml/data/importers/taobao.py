"""Alibaba Taobao UserBehavior: a real e-commerce clickstream as a CRM export."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from stageml.data.importers.common import (
    Importer,
    Mapped,
    Source,
    default_params,
    events,
    first_reason,
    ids,
    rejected,
)

TAOBAO_DOC = """\
### taobao: Alibaba Taobao UserBehavior (real e-commerce clickstream)

* **Source**: `UserBehavior.csv` (headerless original) or `UserBehavior_head_users.csv`
  (`user_id, item_id, category_id, behavior_type, timestamp`). Real data, Tianchi terms.
* **Buyer**: `user_id`. **Interactions**: one per row, `activity` = `behavior_type`:
  `pv` (item page view), `fav` (favourite), `cart` (add to cart), `buy` (purchase). No
  channel, no direction, no buyers table (the data has no user attributes; item and
  category ids are not used).
* **Timestamps**: Unix seconds, an absolute instant, stored as UTC. The data set's days are
  China Standard Time (Asia/Shanghai, UTC+8, no daylight saving): its documented window
  2017-11-25 00:00 to 2017-12-04 00:00 Shanghai is 2017-11-24 16:00 to 2017-12-03 16:00
  UTC. As-of instants every 12h are aligned to UTC (00:00 and 12:00 UTC = 08:00 and
  20:00 Shanghai).
* **Stages** (ordered): `viewed` (pv) → `favourited` (fav) → `carted` (cart) →
  `purchased` (buy), the furthest behaviour so far (a `fav` after a `cart` changes
  nothing). `purchased` is terminal: repeat purchases are not inflections.
* **Inflection**: a user who has not bought yet reaches a later stage (fav, cart or buy)
  within 24h.
* **Left out as leakage**: nothing needed; every stage change is itself an interaction,
  which features see only strictly before the as-of instant.
* **Rejected**: rows outside the documented window (known dirty rows of the original,
  back to 2017-09-11); a row repeating an earlier row's user, second and behaviour (another
  item: the contract keeps one interaction per buyer, instant and activity, and would drop
  it anyway); an unknown behaviour; a missing id or timestamp.
"""

_TAOBAO_BEHAVIOURS = ("pv", "fav", "cart", "buy")
# The documented window in Shanghai dates: [first day, day after the last day).
_TAOBAO_WINDOW = ("2017-11-25", "2017-12-04")


def map_taobao(raw: Mapping[str, pd.DataFrame]) -> Mapped:
    """UserBehavior rows → one interaction each (activity = behaviour)."""
    src = raw["behaviour"]
    buyer = ids(src["user_id"])
    occurred = pd.to_datetime(pd.to_numeric(src["timestamp"], errors="coerce"), unit="s")
    behaviour = src["behavior_type"].astype("string").str.strip().str.lower()
    lo, hi = (
        pd.Timestamp(d, tz="Asia/Shanghai").tz_convert("UTC").tz_localize(None)
        for d in _TAOBAO_WINDOW
    )
    reason = first_reason(
        len(src),
        [
            ("missing user_id", buyer.isna()),
            ("missing or non-numeric timestamp (Unix seconds expected)", occurred.isna()),
            (
                "behavior_type is not one of pv, fav, cart, buy",
                ~behaviour.isin(_TAOBAO_BEHAVIOURS).fillna(False),
            ),
            (
                "timestamp outside the documented window 2017-11-25..2017-12-03 (Asia/Shanghai): "
                "a known dirty row",
                (occurred < lo) | (occurred >= hi),
            ),
        ],
    )
    ok = reason.isna().to_numpy()
    repeat = np.zeros(len(src), dtype=bool)
    repeat[ok] = pd.DataFrame({"b": buyer, "t": occurred, "a": behaviour})[ok].duplicated()
    reason[repeat] = (
        "same user, second and behaviour as an earlier row (another item); the contract "
        "keeps one interaction per buyer, instant and activity"
    )
    interactions = events("behaviour", reason.isna().to_numpy(), buyer, occurred, behaviour)
    return Mapped(interactions, None, rejected("behaviour", buyer, reason))


IMPORTER = Importer(
    kind="taobao",
    sources=(
        Source(
            "behaviour",
            ("UserBehavior.csv", "UserBehavior_head_users.csv"),
            ("user_id", "item_id", "category_id", "behavior_type", "timestamp"),
            header_optional=True,
        ),
    ),
    mapping=map_taobao,
    stages=("viewed", "favourited", "carted", "purchased"),
    stage_of={"pv": "viewed", "fav": "favourited", "cart": "carted", "buy": "purchased"},
    params=default_params(["1h", "6h", "24h", "72h"], "24h", "24h", "12h", "24h"),
    doc=TAOBAO_DOC,
)
