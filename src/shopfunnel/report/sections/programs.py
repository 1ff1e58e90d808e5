"""The programs section: each offer's result, the referral programme and the draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from shopfunnel import format as f
from shopfunnel.report.blocks import Section, Table, Text

LEAD = (
    "The programs the store runs (docs/programs.md): each offer's codes, redemptions, cost and "
    "the growth in orders it needs to pay for itself; who was referred and what was decided; "
    "the giveaway draws, each repeatable from its seed and entrants."
)


def programs_section(
    results: Sequence[Any],
    ledger: pd.DataFrame | None,
    draws: pd.DataFrame | None,
    *,
    currency: str = "",
) -> Section:
    """Offers (one row per :class:`~shopfunnel.programs.offers.OfferResult`), the referral
    ledger by status and reason, and the draws; each part left out when empty."""
    blocks: list = []
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
    if ledger is not None and not ledger.empty:
        paid = ledger[ledger["status"] == "paid"]
        blocks.append(
            Text(
                f"Referral programme: {f.integer(len(ledger))} referred person(s), "
                f"{f.integer(int(ledger['first_order_id'].notna().sum()))} of whom ordered; "
                f"{f.integer(len(paid))} reward(s) paid, {f.money(float(paid['reward'].sum()), currency)} "
                "in total. Visits by referral links show in the channel 'referral program'."
            )
        )
        counts = ledger.groupby(["status", "reason"]).size().rename("persons").reset_index()
        blocks.append(
            Table(
                counts,
                formats={"persons": "int"},
                caption="Referred persons by decision (payable: by the default rule, "
                "a first order of any value, no cap)",
                collapsed=True,
            )
        )
    if draws is not None and not draws.empty:
        blocks.append(
            Table(
                draws[["name", "entrants", "winners", "seed", "entrants_sha256", "drawn_at"]],
                formats={"entrants": "int", "winners": "int"},
                caption="Giveaway draws (repeat one with `shopfunnel giveaway verify NAME`)",
                collapsed=True,
            )
        )
    return Section("programs", "Programs: offers, referrals, giveaways", LEAD, tuple(blocks))
