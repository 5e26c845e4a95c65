"""Turn real public exports into stageml's data contract, with their own params.yaml.

One mechanism for every kind: read the raw source files, run the kind's *mapping* (a pure
function from the raw frames to contract frames plus rejected rows), derive the stage
history from the activities that mark stages, write the tables, ``import_rejects.csv`` and
a ``params.yaml`` holding the dataset's own taxonomy, windows, horizon and snapshot step,
then validate the result as every stageml command would.

Rows that cannot be mapped honestly are rejected with a reason, never repaired. For every
source file holding one row per buyer or buyer event, ``accepted + rejected == input
rows`` (a row is accepted when at least one interaction comes from it), so every source
buyer is either in the written interactions or in the rejects. The leakage rules are part
of each mapping and written down below; the same text is returned as
:attr:`ImportResult.mapping_doc` for the README.

Rules shared by every kind:

* **Timestamps** are written as UTC with an explicit offset. A date without a time is
  placed at midnight of that date in the time zone stated per kind (the earliest instant
  it can have happened).
* **Stages** are marked by activities (``Importer.stage_of``). The stage history records,
  per buyer, the first instant of every new furthest stage of the ordered taxonomy (a
  step back is not recorded). Every recorded stage change is thus the instant of one of
  the buyer's interactions (:func:`coincidence_rate` = 1): the current stage is readable
  from the history, and the honest task is the *inflection* of buyers who can still
  advance.
* **Snapshots** in the generated params start at the later of (first instant + warmup)
  and the first recorded entry into the last stage: before it the export holds no outcome
  at all, so every earlier label would be a 0 by coverage, not by behaviour. They end one
  horizon before the last instant (no test label is censored), or at the last arrival of a
  new buyer when the export stops recording arrivals long before outcomes (Olist).
  ``train.valid_fraction`` is raised where needed so that at least three validation
  instants survive purging.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from stageml.config import Params, load_params
from stageml.data.io import SUFFIXES, TABLES, atomic_path, write_table
from stageml.data.validate import TableReport, load_export
from stageml.durations import format_duration, parse_duration
from stageml.errors import ConfigError, ContractError, StageMLError
from stageml.features.snapshots import snapshot_dates
from stageml.models.labels import coincidence_rate

REJECTS_FILE = "import_rejects.csv"
PARAMS_FILE = "params.yaml"
REJECT_COLUMNS = ("source", "row", "buyer_id", "reason")
# Lineage carried by mapped interactions until the row accounting has been checked.
_SOURCE, _ROW = "_source", "_row"

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
  opportunities carry no date at all and cannot be placed in time: rejected. `Lost` is
  not a stage: stageml's taxonomy is one ordered progression without exits, so a lost
  deal stays `engaging` in the stage history and its `deal_lost` interaction tells the
  features it is closed. stageml's `can_advance` (stage is not the last) therefore
  includes closed-lost deals, which are easy negatives.
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


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote, what it rejected and how the data was mapped.

    Attributes
    ----------
    kind
        The importer used (``taobao``, ``olist``, ``maven``).
    out
        The export folder written.
    tables
        Contract table name → file written.
    rows
        Contract table name → rows written.
    sources
        Row accounting per source file holding one row per buyer or buyer event (lookup
        tables such as products are not counted).
    rejects
        ``import_rejects.csv``: ``source`` (file name), ``row`` (1-based data row, header
        not counted), ``buyer_id``, ``reason``.
    params
        The generated ``params.yaml`` (loads with :func:`stageml.config.load_params`).
    coincidence_rate
        Share of recorded stage changes at the instant of one of the buyer's interactions.
    mapping_doc
        Markdown: activities, stages, inflection, leakage left out, timestamp assumptions.

    """

    kind: str
    out: Path
    tables: dict[str, Path]
    rows: dict[str, int]
    sources: tuple[TableReport, ...]
    rejects: Path
    params: Path
    coincidence_rate: float
    mapping_doc: str


@dataclass(frozen=True)
class Mapped:
    """A mapping's output: contract frames plus the rows it rejected.

    ``interactions`` carries ``_source``/``_row`` lineage (source name, 1-based row);
    ``rejects`` has ``source`` (source name), ``row``, ``buyer_id``, ``reason``.
    """

    interactions: pd.DataFrame
    buyers: pd.DataFrame | None
    rejects: pd.DataFrame


@dataclass(frozen=True)
class Source:
    """A raw file an importer reads (every column as text): accepted names and columns."""

    name: str
    files: tuple[str, ...]
    columns: tuple[str, ...]
    counted: bool = True  # one row per buyer (event); False for lookup tables
    header_optional: bool = False


@dataclass(frozen=True)
class Importer:
    """One kind of export: sources, mapping, taxonomy, params and documentation."""

    kind: str
    sources: tuple[Source, ...]
    mapping: Callable[[Mapping[str, pd.DataFrame]], Mapped]
    stages: tuple[str, ...]
    stage_of: dict[str, str]  # activity -> the stage it marks
    params: dict[str, Any]
    doc: str
    # The activity by which new buyers arrive, for exports that stop recording arrivals
    # long before outcomes: snapshots then end with the arrivals.
    arrival: str | None = None


# --- pieces shared by the mappings -----------------------------------------------------


def _ids(values: pd.Series) -> pd.Series:
    """Ids as stripped strings; blank is missing."""
    return values.astype("string").str.strip().replace("", pd.NA)


def _rows(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.int64)


def _first_reason(n: int, checks: Sequence[tuple[str, Any]]) -> pd.Series:
    """Per row, the reason of the first failed check; <NA> when every check passes.

    One reason per row, so that rejected counts per reason add up to the rejected rows.
    """
    reason = pd.Series(pd.NA, index=range(n), dtype="string")
    for text, failed in checks:
        reason[np.asarray(failed, dtype=bool) & reason.isna().to_numpy()] = text
    return reason


def _rejected(source: str, buyer_id: pd.Series, reason: pd.Series) -> pd.DataFrame:
    mask = reason.notna().to_numpy()
    return pd.DataFrame(
        {
            "source": pd.array([source] * int(mask.sum()), dtype="string"),
            "row": _rows(len(reason))[mask],
            "buyer_id": pd.array(buyer_id.to_numpy()[mask], dtype="string"),
            "reason": pd.array(reason.to_numpy()[mask], dtype="string"),
        }
    )


def _events(
    source: str,
    keep: np.ndarray,
    buyer_id: pd.Series,
    occurred_at: pd.Series,
    activity: str | pd.Series,
    **extra: str | pd.Series,
) -> pd.DataFrame:
    """Interactions from the ``keep`` rows of one source, with their lineage."""

    def pick(value: str | pd.Series) -> Any:
        return value.to_numpy()[keep] if isinstance(value, pd.Series) else value

    frame = pd.DataFrame(
        {
            "buyer_id": pick(buyer_id),
            "occurred_at": pick(occurred_at),
            "activity": pick(activity),
            **{name: pick(value) for name, value in extra.items()},
        }
    )
    frame[_SOURCE] = source
    frame[_ROW] = _rows(len(keep))[keep]
    return frame


def _local_midnight_utc(dates: pd.Series, zone: str) -> pd.Series:
    """Calendar dates (``YYYY-MM-DD`` text) → start of that day in ``zone``, as naive UTC."""
    day = pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce")
    # Where summer time starts at midnight (Brazil until 2019), the day begins at 01:00.
    local = day.dt.tz_localize(zone, nonexistent="shift_forward", ambiguous="raise")
    return local.dt.tz_convert("UTC").dt.tz_localize(None)


def stage_history(
    interactions: pd.DataFrame, stage_of: Mapping[str, str], stages: Sequence[str]
) -> pd.DataFrame:
    """First instant of every new furthest stage per buyer, from stage-marking activities.

    Same-instant events are applied in taxonomy order, so the furthest one wins.
    """
    marks = interactions[interactions["activity"].isin(list(stage_of))]
    frame = pd.DataFrame(
        {
            "buyer_id": marks["buyer_id"].to_numpy(),
            "stage": marks["activity"].map(stage_of).to_numpy(),
            "entered_at": marks["occurred_at"].to_numpy(),
        }
    )
    frame["_rank"] = frame["stage"].map({name: i for i, name in enumerate(stages)})
    frame = frame.sort_values(["buyer_id", "entered_at", "_rank"], kind="stable")
    best_before = frame.groupby("buyer_id")["_rank"].cummax().groupby(frame["buyer_id"]).shift()
    new_max = best_before.isna() | (frame["_rank"] > best_before)
    return frame.loc[new_max, ["buyer_id", "stage", "entered_at"]].reset_index(drop=True)


# --- the mappings: pure functions from raw frames to contract frames -------------------

_TAOBAO_BEHAVIOURS = ("pv", "fav", "cart", "buy")
# The documented window in Shanghai dates: [first day, day after the last day).
_TAOBAO_WINDOW = ("2017-11-25", "2017-12-04")


def map_taobao(raw: Mapping[str, pd.DataFrame]) -> Mapped:
    """UserBehavior rows → one interaction each (activity = behaviour)."""
    src = raw["behaviour"]
    buyer = _ids(src["user_id"])
    occurred = pd.to_datetime(pd.to_numeric(src["timestamp"], errors="coerce"), unit="s")
    behaviour = src["behavior_type"].astype("string").str.strip().str.lower()
    lo, hi = (
        pd.Timestamp(d, tz="Asia/Shanghai").tz_convert("UTC").tz_localize(None)
        for d in _TAOBAO_WINDOW
    )
    reason = _first_reason(
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
    interactions = _events("behaviour", reason.isna().to_numpy(), buyer, occurred, behaviour)
    return Mapped(interactions, None, _rejected("behaviour", buyer, reason))


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
    lead_id, deal_id = _ids(leads["mql_id"]), _ids(deals["mql_id"])
    contact = _local_midnight_utc(leads["first_contact_date"], "America/Sao_Paulo")
    won = pd.to_datetime(deals["won_date"], format="ISO8601", errors="coerce")
    lead_reason = _first_reason(
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
    deal_reason = _first_reason(
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
            _events(
                "leads",
                lead_reason.isna().to_numpy(),
                lead_id,
                contact,
                "first_contact",
                channel=_ids(leads["origin"]),
                direction="inbound",
            ),
            _events("deals", deal_reason.isna().to_numpy(), deal_id, won, "deal_won"),
        ],
        ignore_index=True,
    )
    kept = lead_reason.isna().to_numpy()
    buyers = pd.DataFrame(
        {
            "buyer_id": lead_id[kept].to_numpy(),
            "landing_page_id": _ids(leads["landing_page_id"])[kept].to_numpy(),
        }
    )
    rejects = pd.concat(
        [_rejected("leads", lead_id, lead_reason), _rejected("deals", deal_id, deal_reason)],
        ignore_index=True,
    )
    return Mapped(interactions, buyers, rejects)


_MAVEN_DEAL_STAGES = ("Prospecting", "Engaging", "Won", "Lost")


def _squash(names: pd.Series) -> pd.Series:
    """Lookup key ignoring case and spaces (the pipeline's ``GTXPro`` is ``GTX Pro``)."""
    return names.astype("string").str.replace(r"\s+", "", regex=True).str.lower()


def map_maven(raw: Mapping[str, pd.DataFrame]) -> Mapped:
    """Opportunities → ``engaged`` and ``deal_won``/``deal_lost`` interactions."""
    deals = raw["pipeline"]
    buyer = _ids(deals["opportunity_id"])
    stage = deals["deal_stage"].astype("string").str.strip()
    engaged = pd.to_datetime(deals["engage_date"], format="%Y-%m-%d", errors="coerce")
    closed = pd.to_datetime(deals["close_date"], format="%Y-%m-%d", errors="coerce")
    is_closed = stage.isin(["Won", "Lost"]).fillna(False).to_numpy()
    reason = _first_reason(
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
            _events("pipeline", ok, buyer, engaged, "engaged"),
            _events("pipeline", ok & is_closed, buyer, closed, outcome),
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
    return Mapped(interactions, buyers, _rejected("pipeline", buyer, reason))


# --- the registry ----------------------------------------------------------------------


def _params(
    windows: Sequence[str], trend: str, horizon: str, every: str, warmup: str
) -> dict[str, Any]:
    return {
        "features": {"windows": list(windows), "trend_window": trend},
        "labels": {"horizon": horizon, "label_delay": "0d"},
        "snapshots": {"every": every, "warmup": warmup},
    }


IMPORTERS: dict[str, Importer] = {
    "taobao": Importer(
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
        params=_params(["1h", "6h", "24h", "72h"], "24h", "24h", "12h", "24h"),
        doc=TAOBAO_DOC,
    ),
    "olist": Importer(
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
        params=_params(["7d", "30d", "90d"], "30d", "30d", "7d", "30d"),
        doc=OLIST_DOC,
        arrival="first_contact",
    ),
    "maven": Importer(
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
            Source(
                "products", ("products.csv",), ("product", "series", "sales_price"), counted=False
            ),
            Source(
                "teams",
                ("sales_teams.csv",),
                ("sales_agent", "manager", "regional_office"),
                counted=False,
            ),
        ),
        mapping=map_maven,
        stages=("engaging", "won"),
        stage_of={"engaged": "engaging", "deal_won": "won"},
        params=_params(["7d", "30d", "90d"], "30d", "60d", "7d", "30d"),
        doc=MAVEN_DOC,
    ),
}


def mapping_doc(kind: str) -> str:
    """Return the Markdown description of one importer's mapping."""
    return _importer(kind).doc


def _importer(kind: str) -> Importer:
    if kind not in IMPORTERS:
        raise ConfigError(f"unknown import kind {kind!r}. Fix: use one of {sorted(IMPORTERS)}")
    return IMPORTERS[kind]


# --- reading, writing and checking -----------------------------------------------------


def _read_source(src: Path, spec: Source) -> tuple[Path, pd.DataFrame]:
    """Read one raw file, every column as text (ids such as ``00042`` stay as they are)."""
    found = [src / name for name in spec.files if (src / name).is_file()]
    if not found:
        raise ContractError(
            file=str(src),
            problem=f"none of {list(spec.files)} is in the folder",
            fix="pass --src the folder holding the original files of this data set",
        )
    options: dict[str, Any] = {"dtype": "string", "keep_default_na": False, "na_values": [""]}
    frame = pd.read_csv(found[0], **options)
    if spec.header_optional and str(frame.columns[0]).strip().isdigit():
        frame = pd.read_csv(found[0], header=None, names=list(spec.columns), **options)
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise ContractError(
            file=str(found[0]),
            column=", ".join(missing),
            problem=f"required column missing; the file has {[str(c) for c in frame.columns]}",
            fix="use the data set's original file (column names as published)",
        )
    return found[0], frame


def _refuse_stale(out: Path, suffix: str, writing: set[str]) -> None:
    """Refuse a contract table left by another import: stageml would read it with ours."""
    for name in TABLES:
        for other in SUFFIXES:
            path = out / f"{name}{other}"
            if path.exists() and (name not in writing or other != suffix):
                raise ContractError(
                    file=str(path),
                    problem="the output folder already holds a table this "
                    "import would not overwrite, and stageml would read it with the new ones",
                    fix="import into an empty folder, or delete that file first",
                )


def _account(
    importer: Importer,
    paths: Mapping[str, Path],
    raw: Mapping[str, pd.DataFrame],
    mapped: Mapped,
) -> tuple[TableReport, ...]:
    """Check that every counted source row is accepted or rejected, never both."""
    reports = []
    for spec in (s for s in importer.sources if s.counted):
        n = len(raw[spec.name])
        used = set(mapped.interactions.loc[mapped.interactions[_SOURCE] == spec.name, _ROW])
        rejected = mapped.rejects[mapped.rejects["source"] == spec.name]
        dropped = set(rejected["row"])
        if used & dropped or len(used) + len(dropped) != n or len(dropped) != len(rejected):
            raise StageMLError(
                f"importer bug ({importer.kind}, {paths[spec.name]}): {len(used):,} rows used "
                f"and {len(dropped):,} rejected do not partition the {n:,} input rows"
            )
        reports.append(
            TableReport(
                table=spec.name,
                path=str(paths[spec.name]),
                input_rows=n,
                accepted_rows=len(used),
                rejected={str(k): int(v) for k, v in rejected["reason"].value_counts().items()},
            )
        )
    return tuple(reports)


def _derived_params(
    interactions: pd.DataFrame, history: pd.DataFrame, importer: Importer, seed: int
) -> dict[str, Any]:
    """Build params.yaml: the kind's own settings plus snapshot bounds fitted to the data.

    See the module docstring for the rules behind ``snapshots.start``/``end`` and
    ``train.valid_fraction``.
    """
    stamps = pd.concat([interactions["occurred_at"], history["entered_at"]])
    outcome = history.loc[history["stage"] == importer.stages[-1], "entered_at"]
    start = stamps.min() + parse_duration(importer.params["snapshots"]["warmup"])
    if len(outcome):
        start = max(start, outcome.min())
    end = stamps.max() - parse_duration(importer.params["labels"]["horizon"])
    if importer.arrival is not None:
        end = min(
            end, interactions.loc[interactions["activity"] == importer.arrival, "occurred_at"].max()
        )
    raw: dict[str, Any] = {
        "stages": list(importer.stages),
        "seed": seed,
        **importer.params,
        "snapshots": {
            **importer.params["snapshots"],
            "start": str(pd.Timestamp(start)),
            "end": str(pd.Timestamp(end)),
        },
    }
    params = Params.model_validate(raw)
    try:
        instants = snapshot_dates(params, stamps.min(), stamps.max())
    except ConfigError as exc:
        raise ConfigError(
            f"{importer.kind}: the data spans {stamps.min()} to {stamps.max()}, too short for "
            f"warmup {format_duration(params.snapshots.warmup)} and horizon "
            f"{format_duration(params.labels.horizon)} with as-of instants left between "
            f"{start} and {end}. Fix: import the complete data set"
        ) from exc
    # time_split purges validation instants whose label window reaches the test period;
    # a validation period shorter than the horizon would be purged empty.
    reach = params.labels.horizon + params.labels.label_delay
    purged = math.ceil(reach / params.snapshots.every)
    needed = math.ceil(100 * (purged + 2) / len(instants)) / 100
    raw["train"] = {
        "valid_fraction": max(params.train.valid_fraction, needed),
        "test_fraction": params.train.test_fraction,
    }
    return raw


def _params_text(importer: Importer, params: Mapping[str, Any]) -> str:
    header = (
        f"# stageml parameters for the '{importer.kind}' import (written by `stageml import`).\n"
        "# snapshots.start: the later of first instant + warmup and the first recorded entry\n"
        "# into the last stage (no outcome is recorded before it). snapshots.end: one horizon\n"
        "# before the last instant (no censored test label), or the last arrival of a new\n"
        "# buyer where the export stops recording arrivals early. train.valid_fraction: at\n"
        "# least 3 validation instants survive purging. Times are UTC.\n"
    )
    body: str = yaml.safe_dump(dict(params), sort_keys=False)
    return header + body


def _utc_aware(frame: pd.DataFrame) -> pd.DataFrame:
    """Write naive UTC timestamps with an explicit offset, so no reader guesses a zone."""
    out = frame.copy()
    for column in ("occurred_at", "entered_at"):
        if column in out:
            out[column] = pd.to_datetime(out[column]).dt.tz_localize("UTC")
    return out


def import_export(
    kind: str, src: Path, out: Path, *, fmt: str = "csv", seed: int = 7
) -> ImportResult:
    """Map a real public data set onto the data contract and write it with its params.

    Parameters
    ----------
    kind
        One of :data:`IMPORTERS` (``taobao``, ``olist``, ``maven``).
    src
        Folder holding the data set's original files (only read).
    out
        Folder to write ``interactions``, ``stage_history``, optional ``buyers``,
        ``import_rejects.csv`` and ``params.yaml`` into. It must not hold contract tables
        this import would not overwrite.
    fmt
        ``csv`` or ``parquet`` for the contract tables (the rejects are always CSV).
    seed
        The ``seed`` written to params.yaml.

    Returns
    -------
    ImportResult
        Files, rows written, row accounting per source, coincidence rate and mapping doc.

    Raises
    ------
    ConfigError
        For an unknown kind or format.
    ContractError
        When a source file or column is missing, or ``out`` holds a stale table.

    """
    importer = _importer(kind)
    suffix = f".{fmt}"
    if suffix not in SUFFIXES:
        raise ConfigError(f"unknown format {fmt!r}. Fix: use csv or parquet")
    src, out = Path(src), Path(out)
    read = {spec.name: _read_source(src, spec) for spec in importer.sources}
    raw = {name: frame for name, (_, frame) in read.items()}
    paths = {name: path for name, (path, _) in read.items()}
    mapped = importer.mapping(raw)
    reports = _account(importer, paths, raw, mapped)
    interactions = mapped.interactions.drop(columns=[_SOURCE, _ROW])
    history = stage_history(interactions, importer.stage_of, importer.stages)
    tables = {"interactions": interactions, "stage_history": history}
    if mapped.buyers is not None:
        tables["buyers"] = mapped.buyers
    out.mkdir(parents=True, exist_ok=True)
    _refuse_stale(out, suffix, set(tables))
    written = {
        name: write_table(_utc_aware(frame), out / f"{name}{suffix}")
        for name, frame in tables.items()
    }
    names = {name: path.name for name, path in paths.items()}
    rejects = mapped.rejects.assign(source=mapped.rejects["source"].map(names))
    rejects_path = write_table(rejects[list(REJECT_COLUMNS)], out / REJECTS_FILE)
    params_path = out / PARAMS_FILE
    with atomic_path(params_path) as tmp:
        tmp.write_text(
            _params_text(importer, _derived_params(interactions, history, importer, seed))
        )
    settings = load_params(params_path)
    export = load_export(out, stages=settings.stages, require_stage_history=True)
    if len(export.rejects):
        raise StageMLError(
            f"importer bug ({kind}): the written export in {out} has {len(export.rejects):,} "
            "rows the contract rejects; the mapping must reject them itself"
        )
    return ImportResult(
        kind=kind,
        out=out,
        tables=written,
        rows={k: len(v) for k, v in tables.items()},
        sources=reports,
        rejects=rejects_path,
        params=params_path,
        coincidence_rate=coincidence_rate(export),
        mapping_doc=importer.doc,
    )


__doc__ = "\n".join([__doc__ or "", TAOBAO_DOC, OLIST_DOC, MAVEN_DOC])
