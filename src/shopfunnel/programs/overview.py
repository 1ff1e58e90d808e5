"""Every program at a glance, for the dashboard: offers' results, the referral ledger
summarised, and the giveaway draws. Each figure is the programs' own (docs/programs.md):
this module only gathers them, computing the referral ledger once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from shopfunnel.programs.giveaways import list_draws
from shopfunnel.programs.offer_results import OfferResult, offer_result
from shopfunnel.programs.offers import list_offers
from shopfunnel.programs.referrals import (
    ReferralRule,
    referral_codes,
    referral_ledger,
    summarize_ledger,
)
from shopfunnel.store.store import Store

OFFER_COLUMNS = [
    "offer",
    "rule",
    "starts_at",
    "ends_at",
    "audience",
    "codes_issued",
    "codes_redeemed",
    "redemption_rate",
    "reuses",
    "uses_outside_period",
    "redeemed_orders",
    "revenue_redeemed",
    "discount_given",
    "shipping_absorbed",
    "cost",
    "mean_gross_redeemed",
    "mean_value_comparable",
    "gross_difference",
    "gross_difference_low",
    "gross_difference_high",
    "breakeven_uplift",
]


@dataclass(frozen=True)
class ProgramsOverview:
    """``offers``: one row per offer (:data:`OFFER_COLUMNS`: the rule, period, audience and the
    figures of :func:`~shopfunnel.programs.offer_results.offer_result`), with ``results`` kept by
    name; ``referral_codes`` (codes issued); ``ledger`` (:func:`referral_ledger`, by the
    given rule); ``by_decision`` (referred persons per status and reason); ``referrers``
    (:func:`~shopfunnel.programs.referrals.referral_summary`); ``referral_totals`` (referred
    persons, those who ordered, rewards paid and payable, in money and count); ``draws``
    (:func:`~shopfunnel.programs.giveaways.list_draws`)."""

    offers: pd.DataFrame
    results: dict[str, OfferResult]
    referral_codes: int
    ledger: pd.DataFrame
    by_decision: pd.DataFrame
    referrers: pd.DataFrame
    referral_totals: dict[str, Any]
    draws: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the store runs no program yet."""
        return self.offers.empty and self.referral_codes == 0 and self.draws.empty


def offer_rows(results: list[OfferResult]) -> pd.DataFrame:
    """One row per offer result (:data:`OFFER_COLUMNS`)."""
    rows = []
    for r in results:
        o = r.offer
        rows.append(
            {
                "offer": o.name,
                "rule": o.rule,
                "starts_at": o.starts_at,
                "ends_at": o.ends_at,
                "audience": o.audience,
                **r.summary,
            }
        )
    return pd.DataFrame(rows, columns=OFFER_COLUMNS)


def programs_overview(store: Store, rule: ReferralRule | None = None) -> ProgramsOverview:
    """Every program's figures (see :class:`ProgramsOverview`); nothing is written."""
    results = {o.name: offer_result(store, o.name) for o in list_offers(store)}
    notes = [f"{name}: {note}" for name, r in results.items() for note in r.notes]
    codes = len(referral_codes(store))
    ledger = referral_ledger(store, rule)
    by_decision = (
        (
            ledger.groupby(["status", "reason"])
            .size()
            .rename("persons")
            .reset_index()
            .sort_values(["persons", "status"], ascending=[False, True], kind="stable")
            .reset_index(drop=True)
        )
        if len(ledger)
        else pd.DataFrame(columns=["status", "reason", "persons"])
    )
    paid = ledger[ledger["status"] == "paid"]
    payable = ledger[ledger["status"] == "payable"]
    totals = {
        "referred": len(ledger),
        "ordered": int(ledger["first_order_id"].notna().sum()),
        "paid": len(paid),
        "rewards_paid": float(paid["reward"].sum()),
        "payable": len(payable),
        "rewards_payable": float(payable["reward"].sum()),
    }
    return ProgramsOverview(
        offers=offer_rows(list(results.values())),
        results=results,
        referral_codes=codes,
        ledger=ledger,
        by_decision=by_decision,
        referrers=summarize_ledger(ledger),
        referral_totals=totals,
        draws=list_draws(store),
        notes=notes,
    )
