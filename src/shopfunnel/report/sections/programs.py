"""The programs section: each offer's result, the referral programme and the draws."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from shopfunnel import format as f
from shopfunnel.report.blocks import Section, Table, Text

if TYPE_CHECKING:
    from shopfunnel.programs.overview import ProgramsOverview

LEAD = (
    "The programs the store runs (docs/programs.md): each offer's codes, redemptions, cost and "
    "the growth in orders it needs to pay for itself; who was referred and what was decided; "
    "the giveaway draws, each repeatable from its seed and entrants."
)


def programs_section(overview: ProgramsOverview, *, currency: str = "") -> Section:
    """The figures of :func:`~shopfunnel.programs.overview.programs_overview` (the same the
    dashboard's programs page shows): offers (one row per
    :class:`~shopfunnel.programs.offers.OfferResult`), the referral ledger's totals and its
    persons by decision, and the draws; each part left out when empty."""
    blocks: list = []
    results = list(overview.results.values())
    if results:
        rows = []
        for r in results:
            s = r.summary
            rows.append(
                {
                    "offer": r.offer.name,
                    "rule": r.offer.rule,
                    "period": f"{f.timestamp(r.offer.starts_at)} to {f.timestamp(r.offer.ends_at)}",
                    "codes": s["codes_issued"],
                    "redeemed": s["codes_redeemed"],
                    "redemption rate": s["redemption_rate"],
                    "cost": s["cost"],
                    "mean order, redeemed (before discount)": s["mean_gross_redeemed"],
                    "mean order, comparable": s["mean_value_comparable"],
                    "break-even uplift": s["breakeven_uplift"],
                }
            )
        blocks.append(
            Table(
                pd.DataFrame(rows),
                formats={
                    "codes": "int",
                    "redeemed": "int",
                    "redemption rate": "pct",
                    "cost": "money",
                    "mean order, redeemed (before discount)": "money",
                    "mean order, comparable": "money",
                    "break-even uplift": "pct",
                },
                caption=f"Offers{' (' + currency + ')' if currency else ''}: comparable = holders who did "
                "not redeem, their orders in the period; break-even at 100% margin",
            )
        )
    totals = overview.referral_totals
    if totals["referred"]:
        blocks.append(
            Text(
                f"Referral programme: {f.integer(totals['referred'])} referred person(s), "
                f"{f.integer(totals['ordered'])} of whom ordered; "
                f"{f.integer(totals['paid'])} reward(s) paid, "
                f"{f.money(totals['rewards_paid'], currency)} "
                "in total. Visits by referral links show in the channel 'referral program'."
            )
        )
        blocks.append(
            Table(
                overview.by_decision,
                formats={"persons": "int"},
                caption="Referred persons by decision (payable: by the default rule, "
                "a first order of any value, no cap)",
                collapsed=True,
            )
        )
    draws = overview.draws
    if not draws.empty:
        blocks.append(
            Table(
                draws[["name", "entrants", "winners", "seed", "entrants_sha256", "drawn_at"]],
                formats={"entrants": "int", "winners": "int"},
                caption="Giveaway draws (repeat one with `shopfunnel giveaway verify NAME`)",
                collapsed=True,
            )
        )
    return Section("programs", "Programs: offers, referrals, giveaways", LEAD, tuple(blocks))
