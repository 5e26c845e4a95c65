"""A second simulated world, so that defaults are not tuned to the first one.

Four custom stages instead of five, a coarser vocabulary with other names (26 activities
merged into 13, as a different CRM would log them), and a CRM that records stage changes
later and with more mistakes. The buyer process is the simulator's
(:mod:`stageml.data.world`), interpolated onto the four stages; only the knobs differ.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from stageml.data.simulate import SimulatedExport, simulate
from stageml.data.world import WorldParams

STAGES = ("lead", "qualified", "proposal", "closed_won")
# Recorded about 2.5x later than in the first world, skipped or wrong about twice as often.
KNOBS = WorldParams(
    lag_mean_days=6.0,
    lag_max_days=21.0,
    skip_share=0.10,
    wrong_share=0.12,
    missing_history_share=0.25,
    touch_boost=1.0,
)
VOCABULARY = {
    "ad_click": "social_touch",
    "social_engagement": "social_touch",
    "linkedin_message": "social_touch",
    "site_visit": "web_session",
    "newsletter_signup": "asset_download",
    "content_download": "asset_download",
    "case_study_download": "asset_download",
    "event_visit": "event_attended",
    "webinar": "event_attended",
    "pricing_page": "pricing_view",
    "inbound_email": "inbound_inquiry",
    "call_inbound": "inbound_inquiry",
    "demo_request": "demo",
    "demo_attended": "demo",
    "proposal_view": "quote",
    "proposal_sent": "quote",
    "contract_review": "legal_review",
    "security_review": "legal_review",
    "contract_sent": "legal_review",
    "onboarding_session": "product_usage",
    "support_ticket": "product_usage",
    "product_login": "product_usage",
    "sales_email": "rep_email",
    "sales_call": "rep_call",
    "check_in_call": "rep_call",
    "meeting_invite": "meeting_booked",
}


def simulate_second_world(n_buyers: int, *, seed: int) -> SimulatedExport:
    """Simulate ``n_buyers`` buyers of the second world; same arguments, same frames."""
    export = simulate(n_buyers, seed=seed, stages=STAGES, params=KNOBS)
    events = export.interactions.assign(
        activity=export.interactions["activity"]
        .map(VOCABULARY)
        .astype(export.interactions["activity"].dtype)
    )
    # Two merged activities at the same instant are one logged interaction in this CRM.
    events = events.drop_duplicates(["buyer_id", "occurred_at", "activity"], ignore_index=True)
    return dataclasses.replace(export, interactions=pd.DataFrame(events))
