"""Maven Analytics CRM: a fictitious company's simulated pipeline as a CRM export."""

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

MAVEN_DOC = """\
### maven: Maven Analytics CRM + Sales + Opportunities (FICTITIOUS company, simulated)

* **Not real**: the publisher describes it as B2B sales data of a *fictitious* company
  ("MavenTech", selling computer hardware). It is realistic simulated data, useful to test
  the pipeline on a CRM-shaped export, not evidence about real buyers.
* **Sources**: `sales_pipeline.csv` (one row per opportunity); `products.csv` and
  `sales_teams.csv` as lookups. `accounts.csv` is not read (see leakage).
* **Buyer**: `opportunity_id`. **Interactions**: `engaged` at `engage_date`; `deal_won`
  or `deal_lost` at `close_date`. **Buyers table**: `product`, `series`, `sales_price`
  (products.csv; the pipeline's `GTXPro` is matched to `GTX Pro` ignoring spaces),
  `sales_agent`, `manager`, `regional_office` (sales_teams.csv).
* **Stages** (ordered): `engaging` (engaged) → `won` (deal_won). `Prospecting`
  opportunities carry no date at all and cannot be placed in time: rejected.
  **Exit**: `lost` (deal_lost, at `close_date`; params `exits: [lost]`). A lost deal is
  in an exit from its close date on, so it is not `can_advance`: the inflection model
  learns from open deals only, and the exit model predicts which open deals are lost.
* **Inflection**: an engaging opportunity is won within 60 days.
* **Left out as leakage**: `account` and everything joined from accounts.csv (sector,
  revenue, employees, ...): the account is empty for 1,088 of the 1,589 open (Engaging)
  deals and never for a closed one, so whether it is filled reveals whether the deal has
  closed. `close_value` (set only once closed, 0 when lost).
* **Timestamps**: dates without zone, taken as UTC midnight. Weekly as-of instants fall
  on UTC midnights too, so a deal closed on an as-of day is already `won` at t while its
  `deal_won` interaction (at t, not before it) is not yet seen by the features.
* **Coverage**: engagements start 2016-10-20 but the first close is 2017-03-01, so
  snapshots start at the first recorded win.
* **Rejected**: `Prospecting` rows (no dates); `close_date` earlier than `engage_date` (a
  data error; none in the published copy); a missing date the stage requires; a close
  date on an open deal; an unknown `deal_stage`; repeated ids.
"""

_MAVEN_DEAL_STAGES = ("Prospecting", "Engaging", "Won", "Lost")


def _squash(names: pd.Series) -> pd.Series:
    """Lookup key ignoring case and spaces (the pipeline's ``GTXPro`` is ``GTX Pro``)."""
    return names.astype("string").str.replace(r"\s+", "", regex=True).str.lower()


def map_maven(raw: Mapping[str, pd.DataFrame]) -> Mapped:
    """Opportunities → ``engaged`` and ``deal_won``/``deal_lost`` interactions."""
    deals = raw["pipeline"]
    buyer = ids(deals["opportunity_id"])
    stage = deals["deal_stage"].astype("string").str.strip()
    engaged = pd.to_datetime(deals["engage_date"], format="%Y-%m-%d", errors="coerce")
    closed = pd.to_datetime(deals["close_date"], format="%Y-%m-%d", errors="coerce")
    is_closed = stage.isin(["Won", "Lost"]).fillna(False).to_numpy()
    reason = first_reason(
        len(deals),
        [
            ("missing opportunity_id", buyer.isna()),
            ("opportunity_id repeats an earlier row", buyer.duplicated() & buyer.notna()),
            (
                f"deal_stage is not one of {', '.join(_MAVEN_DEAL_STAGES)}",
                ~stage.isin(_MAVEN_DEAL_STAGES).fillna(False),
            ),
            (
                "Prospecting: no engage_date or close_date, cannot be placed in time",
                stage == "Prospecting",
            ),
            ("missing or unparseable engage_date", engaged.isna()),
            ("Won/Lost without a parseable close_date", is_closed & closed.isna()),
            ("open (Engaging) deal with a close_date", ~is_closed & closed.notna()),
            ("close_date earlier than engage_date (data error)", closed < engaged),
        ],
    )
    ok = reason.isna().to_numpy()
    outcome = pd.Series(np.where(stage == "Won", "deal_won", "deal_lost"), index=stage.index)
    interactions = pd.concat(
        [
            events("pipeline", ok, buyer, engaged, "engaged"),
            events("pipeline", ok & is_closed, buyer, closed, outcome),
        ],
        ignore_index=True,
    )
    products = (
        raw["products"]
        .assign(
            _key=lambda f: _squash(f["product"]),
            sales_price=lambda f: pd.to_numeric(f["sales_price"], errors="coerce"),
        )
        .drop(columns="product")
    )
    buyers = (
        pd.DataFrame(
            {
                "buyer_id": buyer[ok].to_numpy(),
                "product": deals["product"][ok].to_numpy(),
                "sales_agent": deals["sales_agent"][ok].to_numpy(),
            }
        )
        .assign(_key=lambda f: _squash(f["product"]))
        .merge(products, on="_key", how="left")
        .drop(columns="_key")
        .merge(raw["teams"], on="sales_agent", how="left")
    )
    return Mapped(interactions, buyers, rejected("pipeline", buyer, reason))


IMPORTER = Importer(
    kind="maven",
    sources=(
        Source(
            "pipeline",
            ("sales_pipeline.csv",),
            (
                "opportunity_id",
                "sales_agent",
                "product",
                "deal_stage",
                "engage_date",
                "close_date",
            ),
        ),
        Source("products", ("products.csv",), ("product", "series", "sales_price"), counted=False),
        Source(
            "teams",
            ("sales_teams.csv",),
            ("sales_agent", "manager", "regional_office"),
            counted=False,
        ),
    ),
    mapping=map_maven,
    stages=("engaging", "won"),
    stage_of={"engaged": "engaging", "deal_won": "won", "deal_lost": "lost"},
    exits=("lost",),
    params=default_params(["7d", "30d", "90d"], "30d", "60d", "7d", "30d"),
    doc=MAVEN_DOC,
)
