"""Olist marketing funnel: real B2B seller acquisition (Brazil) as a CRM export."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from stageml.data.importers.common import (
    Importer,
    Mapped,
    Source,
    default_params,
    events,
    first_reason,
    ids,
    local_midnight_utc,
    rejected,
)

OLIST_DOC = """\
### olist: Olist marketing funnel (real B2B seller acquisition, Brazil)

* **Sources**: `olist_marketing_qualified_leads_dataset.csv` (one row per marketing-
  qualified lead) and `olist_closed_deals_dataset.csv` (one row per lead that signed).
  Real data; Kaggle lists CC BY-NC-SA 4.0 (non-commercial).
* **Buyer**: `mql_id`. **Interactions**: `first_contact` at `first_contact_date`, channel
  = `origin` (an empty origin is read as channel `unknown`, like the source's own
  `unknown`), direction `inbound` (the lead filled in a landing-page form); `deal_won` at
  `won_date` for the leads that signed. **Buyers table**: `landing_page_id` only (known
  at the first contact).
* **Stages** (ordered): `mql` (first_contact) → `won` (deal_won). There is no lost stage:
  a lead without a deal is open or lost, and the data cannot tell which.
* **Inflection**: an MQL signs within 30 days.
* **Left out as leakage**: every closed-deal column except `won_date` (`seller_id`,
  `sdr_id`, `sr_id`, `business_segment`, `lead_type`, `lead_behaviour_profile`,
  `has_company`, `has_gtin`, `average_stock`, `business_type`,
  `declared_product_catalog_size`, `declared_monthly_revenue`): they exist only for won
  leads, so any of them as a buyer attribute reveals the outcome. The win enters only as
  the `deal_won` interaction and the `won` stage change, at `won_date`.
* **Timestamps**: `first_contact_date` is a calendar date without zone, taken as a São
  Paulo (America/Sao_Paulo) date and placed at the start of that local day (03:00 UTC;
  02:00 UTC in Brazilian summer time). `won_date` is taken as UTC: 61 of the 62 wins
  recorded at an exact hour are at 02:00 (December to mid-February, summer time) or 03:00
  (the rest of the year), i.e. São Paulo midnight written in UTC, and the other times
  peak at 12-21h UTC, São Paulo office hours.
* **Coverage**: the first recorded `won_date` is 2017-12-05, and leads first contacted in
  2017 signed 1-6 % of the time against 10-15 % in 2018: wins before December 2017 were
  evidently not exported, so snapshots start at the first recorded win. Leads contacted
  before then may have signed unrecorded; they stay `mql` (label noise the data cannot
  repair). New leads stop on 2018-05-31 while wins run to 2018-11-14, so snapshots end
  at the last first contact.
* **Rejected**: a deal whose `won_date` is earlier than its lead's first contact (a data
  error, one in the source): the deal row *and* the lead row, since keeping the lead
  without its win would invent a non-conversion; a deal without a (valid) lead; repeated
  ids; unparseable dates.
"""

# Closed-deal columns that exist only for won leads: as attributes they reveal the outcome.
OLIST_LEAKY_COLUMNS = (
    "seller_id",
    "sdr_id",
    "sr_id",
    "business_segment",
    "lead_type",
    "lead_behaviour_profile",
    "has_company",
    "has_gtin",
    "average_stock",
    "business_type",
    "declared_product_catalog_size",
    "declared_monthly_revenue",
)


def map_olist(raw: Mapping[str, pd.DataFrame]) -> Mapped:
    """Leads and closed deals → ``first_contact`` and ``deal_won`` interactions."""
    leads, deals = raw["leads"], raw["deals"]
    lead_id, deal_id = ids(leads["mql_id"]), ids(deals["mql_id"])
    contact = local_midnight_utc(leads["first_contact_date"], "America/Sao_Paulo")
    won = pd.to_datetime(deals["won_date"], format="ISO8601", errors="coerce")
    lead_reason = first_reason(
        len(leads),
        [
            ("missing mql_id", lead_id.isna()),
            ("mql_id repeats an earlier lead", lead_id.duplicated() & lead_id.notna()),
            ("missing or unparseable first_contact_date (YYYY-MM-DD expected)", contact.isna()),
        ],
    )
    valid = lead_reason.isna().to_numpy()
    contact_of_deal = pd.Series(contact[valid].to_numpy(), index=lead_id[valid].to_numpy())
    contact_of_deal = contact_of_deal.reindex(deal_id.to_numpy())
    early = won.to_numpy() < contact_of_deal.to_numpy()  # NaT compares False
    deal_reason = first_reason(
        len(deals),
        [
            ("missing mql_id", deal_id.isna()),
            ("mql_id repeats an earlier deal", deal_id.duplicated() & deal_id.notna()),
            ("no valid marketing-qualified lead with this mql_id", contact_of_deal.isna()),
            ("missing or unparseable won_date", won.isna()),
            ("won_date earlier than the lead's first contact (data error)", early),
        ],
    )
    # Without its (impossible) win the lead would read as one that never signed, which
    # the data does not say: reject it as well.
    impossible = lead_id.isin(set(deal_id[early].dropna())).fillna(False).to_numpy()
    lead_reason[impossible & valid] = (
        "its closed deal is dated before its first contact (data error)"
    )
    interactions = pd.concat(
        [
            events(
                "leads",
                lead_reason.isna().to_numpy(),
                lead_id,
                contact,
                "first_contact",
                channel=ids(leads["origin"]),
                direction="inbound",
            ),
            events("deals", deal_reason.isna().to_numpy(), deal_id, won, "deal_won"),
        ],
        ignore_index=True,
    )
    kept = lead_reason.isna().to_numpy()
    buyers = pd.DataFrame(
        {
            "buyer_id": lead_id[kept].to_numpy(),
            "landing_page_id": ids(leads["landing_page_id"])[kept].to_numpy(),
        }
    )
    rejects = pd.concat(
        [rejected("leads", lead_id, lead_reason), rejected("deals", deal_id, deal_reason)],
        ignore_index=True,
    )
    return Mapped(interactions, buyers, rejects)


IMPORTER = Importer(
    kind="olist",
    sources=(
        Source(
            "leads",
            ("olist_marketing_qualified_leads_dataset.csv",),
            ("mql_id", "first_contact_date", "landing_page_id", "origin"),
        ),
        Source("deals", ("olist_closed_deals_dataset.csv",), ("mql_id", "won_date")),
    ),
    mapping=map_olist,
    stages=("mql", "won"),
    stage_of={"first_contact": "mql", "deal_won": "won"},
    params=default_params(["7d", "30d", "90d"], "30d", "30d", "7d", "30d"),
    doc=OLIST_DOC,
    arrival="first_contact",
)
