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
from shopfunnel.errors import ShopfunnelError
from shopfunnel.server.admin import is_admin
from shopfunnel.server.dashboard import read, render, to_login

router = APIRouter(include_in_schema=False)
# shown offer columns and how each is formatted
OFFER_SHOWN = {
    "offer": None,
    "rule": None,
    "starts_at": "time",
    "ends_at": "time",
    "audience": None,
    "codes_issued": "int",
    "codes_redeemed": "int",
    "redemption_rate": "pct",
    "redeemed_orders": "int",
    "reuses": "int",
    "revenue_redeemed": "money",
    "discount_given": "money",
    "shipping_absorbed": "money",
    "cost": "money",
    "mean_gross_redeemed": "money",
    "mean_value_comparable": "money",
    "gross_difference": "money",
    "breakeven_uplift": "pct",
}


def _shown(frame: pd.DataFrame, formats: dict[str, str | None], currency: str) -> pd.DataFrame:
    """The columns of ``formats`` as text for people (format.py), in that order."""
    out = pd.DataFrame(index=frame.index)
    for column, kind in formats.items():
        values = frame[column]
        if kind == "time":
            out[column] = [fmt.timestamp(v) for v in values]
        elif kind == "money":
            out[column] = [fmt.money(v, currency) for v in values]
        elif kind is not None:
            out[column] = [fmt.cell(v, kind) for v in values]
        else:
            out[column] = values
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
def programs_page(request: Request, offer: str = "", draw: str = "") -> Response:
    if not is_admin(request):
        return to_login()
    context: dict[str, Any] = {
        "title": "Programs",
        "overview": None,
        "offer": offer,
        "draw_name": draw,
    }
    try:
        context.update(read(request, _overview, offer, draw))
    except ShopfunnelError as exc:
        return render(request, "programs.html", status=422, error=str(exc), **context)
    data, currency = context["overview"], context["currency"]
    context["offers"] = _shown(data.offers, OFFER_SHOWN, currency)
    referrers = data.referrers.head(50)
    context["referrers"] = _shown(
        referrers,
        {
            "referrer_person_id": None,
            "referrals": "int",
            "customers": "int",
            "paid": "int",
            "payable": "int",
            "pending": "int",
            "refused": "int",
            "rewards_paid": "money",
            "rewards_payable": "money",
        },
        currency,
    )
    totals = data.referral_totals
    context["totals"] = {
        k: (fmt.money(v, currency) if k.startswith("rewards") else fmt.integer(v))
        for k, v in totals.items()
    }
    return render(request, "programs.html", **context)
