"""A tiny store that runs every program: an offer with codes (one redeemed), a referral
programme (one referred customer), and a giveaway draw."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
from tests.conftest import log

from shopfunnel.store.store import Store

XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


def programs_store(path: str) -> Store:
    """r (a customer) refers f, who buys 120 with the offer code OFF-F; g buys 80 without a
    code; a draw ``spring-draw`` picks one winner among everyone, from the seed ``s1``. The
    offer's description holds markup (shown as text)."""
    from shopfunnel.programs.codes import import_codes
    from shopfunnel.programs.giveaways import draw_giveaway
    from shopfunnel.programs.offers import create_offer
    from shopfunnel.programs.referrals import import_referral_codes

    store = Store(path)
    store.load(
        log(
            (
                "r",
                0,
                "purchase",
                {"user_id": "r", "order_id": "or", "value": 50.0, "currency": "EUR"},
            ),
            ("f", 10, "page_view", {"properties": json.dumps({"referral_code": "REF-R"})}),
            (
                "f",
                20,
                "purchase",
                {
                    "order_id": "of",
                    "value": 114.0,
                    "currency": "EUR",
                    "properties": json.dumps({"coupon": "off-f", "discount": 6.0}),
                },
            ),
            ("g", 30, "purchase", {"order_id": "og", "value": 80.0, "currency": "EUR"}),
        )
    )
    create_offer(
        store,
        "spring",
        starts_at=datetime(2024, 3, 1),
        ends_at=datetime(2024, 3, 8),
        tiers="100:5,300:10",
        description=XSS,
    )
    import_codes(
        store, "spring", pd.DataFrame({"person_id": ["f", "g"], "code": ["OFF-F", "OFF-G"]})
    )
    import_referral_codes(store, pd.DataFrame({"person_id": ["r"], "code": ["REF-R"]}))
    draw_giveaway(store, "spring-draw", "all", winners=1, seed="s1")
    return store
