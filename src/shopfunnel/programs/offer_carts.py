"""Open carts just short of an offer's next threshold, for a nudge with the person's code.

**Near-threshold carts** (:func:`near_threshold`): open carts (:func:`shopfunnel.audiences.abandoned_carts`)
whose value is below a threshold of the rule by at most ``within``: ``short = threshold −
cart_value``, ``0 < short ≤ within``; the nearest threshold above the cart is the one
named. A cart exactly at a threshold already has it and is measured against the next one.
"""

from __future__ import annotations

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.programs.codes import offer_codes
from shopfunnel.programs.offers import get_offer, offer_persons
from shopfunnel.store.store import Store

NEAR_COLUMNS = [
    "person_id",
    "cart_value",
    "threshold",
    "reward",
    "short",
    "message",
    "code",
    "carted_at",
    "items",
]


def near_threshold(
    store: Store,
    name: str,
    *,
    within: float,
    after: str | float = "1h",
    lookback: str | float = "30d",
    as_of: pd.Timestamp | str | None = None,
    currency: str | None = None,
) -> pd.DataFrame:
    """Open carts of persons who qualify for offer ``name`` that are at most ``within``
    short of the rule's next threshold (definition in the module docstring), with a line
    for a message (``add USD 12.00 for free shipping``) and the person's code when they
    have one. Carts are :func:`shopfunnel.audiences.abandoned_carts` (``after``,
    ``lookback``, ``as_of`` as there). Sorted by ``short``, smallest first."""
    from shopfunnel.audiences import abandoned_carts
    from shopfunnel.format import money

    if within <= 0:
        raise ConfigError(f"within={within!r} is not valid: give an amount > 0, e.g. 15")
    offer = get_offer(store, name)
    carts = abandoned_carts(store, after=after, lookback=lookback, as_of=as_of)
    if currency is None:
        currency = (
            store.db.scalar(
                "SELECT mode(currency) FROM events WHERE event = 'purchase' AND currency IS NOT NULL"
            )
            or ""
        )
    persons = set(offer_persons(store, offer))
    carts = carts[carts["person_id"].isin(persons)]
    codes = offer_codes(store, name).set_index("person_id")["code"]
    rows = []
    for cart in carts.itertuples():
        value = float(cart.cart_value)
        nxt = next(((t, what) for t, what in offer.thresholds() if t > value + 1e-9), None)
        if nxt is None:
            continue
        short = round(nxt[0] - value, 2)
        if 0 < short <= within + 1e-9:
            rows.append(
                {
                    "person_id": cart.person_id,
                    "cart_value": value,
                    "threshold": nxt[0],
                    "reward": nxt[1],
                    "short": short,
                    "message": f"add {money(short, currency)} for {nxt[1]}",
                    "code": codes.get(cart.person_id),
                    "carted_at": cart.carted_at,
                    "items": cart.items,
                }
            )
    out = pd.DataFrame(rows, columns=NEAR_COLUMNS)
    return out.sort_values(["short", "person_id"], kind="stable").reset_index(drop=True)
