"""The dashboard's programs page: offers' results, the referral ledger summarised, and the
giveaway draws (admin only). Every figure comes from :mod:`shopfunnel.programs`
(:func:`~shopfunnel.programs.overview.programs_overview`; definitions in docs/programs.md);
this page only lays them out. ``?offer=NAME`` adds the orders that carried the offer's codes;
``?draw=NAME`` re-draws a giveaway from its record and says whether it matches.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shopfunnel import format as fmt
from shopfunnel.server.pages import admin_page, page_context, read, render

router = APIRouter(include_in_schema=False)
# shown offer columns: (column, heading, format)
OFFER_SHOWN: list[tuple[str, str, str | None]] = [
    ("offer", "offer", None),
    ("rule", "rule", None),
    ("period", "period", None),
    ("audience", "audience", None),
    ("codes_issued", "codes", "int"),
    ("codes_redeemed", "redeemed", "int"),
    ("redemption_rate", "redemption rate", "pct"),
    ("reuses", "reuses", "int"),
    ("discount_given", "discount given", "money"),
    ("shipping_absorbed", "shipping absorbed", "money"),
    ("cost", "cost", "money"),
    ("mean_gross_redeemed", "mean order, redeemed (before discount)", "money"),
    ("mean_value_comparable", "mean order, comparable", "money"),
    ("breakeven_uplift", "break-even uplift", "pct"),
]
REFERRER_SHOWN: list[tuple[str, str, str | None]] = [
    ("referrer_person_id", "referrer", None),
    ("referrals", "referred", "int"),
    ("customers", "ordered", "int"),
    ("paid", "paid", "int"),
    ("payable", "payable", "int"),
    ("pending", "pending", "int"),
    ("refused", "refused", "int"),
    ("rewards_paid", "rewards paid", "money"),
    ("rewards_payable", "rewards payable", "money"),
]


def _shown(
    frame: pd.DataFrame, shown: list[tuple[str, str, str | None]], currency: str
) -> pd.DataFrame:
    """The columns of ``shown`` as text for people (format.py), under their headings."""
    out = pd.DataFrame(index=frame.index)
    for column, heading, kind in shown:
        values = frame[column]
        if kind == "money":
            out[heading] = [fmt.money(v, currency) for v in values]
        elif kind is not None:
            out[heading] = [fmt.cell(v, kind) for v in values]
        else:
            out[heading] = values
    return out


def _overview(store: Any, offer: str, draw: str) -> dict[str, Any]:
    from shopfunnel.programs.giveaways import get_draw, verify_draw
    from shopfunnel.programs.overview import programs_overview
    from shopfunnel.store.summary import main_currency

    data = programs_overview(store)
    context: dict[str, Any] = {"overview": data, "currency": main_currency(store)}
    if offer:
        if offer not in data.results:
            from shopfunnel.errors import ConfigError

            raise ConfigError(f"no offer named {offer!r}: pick one from the table")
        context["offer_result"] = data.results[offer]
    if draw:
        context["draw"] = get_draw(store, draw)
        context["verified"] = verify_draw(store, draw)
    return context


@router.get("/programs")
@admin_page("programs.html")
def programs_page(request: Request, offer: str = "", draw: str = "") -> Response:
    context = page_context(request, title="Programs", overview=None, offer=offer, draw_name=draw)
    context.update(read(request, _overview, offer, draw))
    data, currency = context["overview"], context["currency"]
    offers = data.offers.assign(
        period=[
            f"{fmt.timestamp(a)} to {fmt.timestamp(b)}"
            for a, b in zip(data.offers["starts_at"], data.offers["ends_at"], strict=True)
        ]
    )
    context["offers"] = _shown(offers, OFFER_SHOWN, currency)
    context["referrers"] = _shown(
        data.referrers.head(50),
        REFERRER_SHOWN,
        currency,
    )
    totals = data.referral_totals
    context["totals"] = {
        k: (fmt.money(v, currency) if k.startswith("rewards") else fmt.integer(v))
        for k, v in totals.items()
    }
    return render(request, "programs.html", **context)
