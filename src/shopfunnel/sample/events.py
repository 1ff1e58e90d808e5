"""Events: every session expanded into its events, in order, with times (see engine)."""

from __future__ import annotations

import numpy as np

from shopfunnel.sample import model as m
from shopfunnel.sample.catalogue import catalogue
from shopfunnel.sample.draws import choice, grouped_choice, within
from shopfunnel.sample.plan import Plan

US_PER_DAY = 86_400_000_000

EVENTS = (
    "page_view",
    "view_item_list",
    "select_item",
    "view_item",
    "add_to_wishlist",
    "add_to_cart",
    "remove_from_cart",
    "view_cart",
    "begin_checkout",
    "add_shipping_info",
    "add_payment_info",
    "purchase",
    "refund",
)
(
    PAGE_VIEW,
    LIST,
    SELECT,
    VIEW,
    WISH,
    CART,
    REMOVE,
    VIEW_CART,
    BEGIN,
    SHIP,
    PAY,
    PURCHASE,
    REFUND,
) = range(len(EVENTS))
REFUND_REASONS = ("changed_mind", "wrong_size", "damaged", "late_delivery")


def property_table() -> tuple[list[str | None], dict[str, int]]:
    """Every distinct properties JSON text, and the offset of each family in the list."""
    table: list[str | None] = []
    offsets: dict[str, int] = {}

    def family(name: str, texts: list[str]) -> None:
        offsets[name] = len(table)
        table.extend(texts)

    tiers = ("free", "standard", "express")
    family("begin", [f'{{"checkout_type": "{c}"}}' for c in m.CHECKOUT_TYPES])
    family(
        "begin_error",
        [f'{{"checkout_type": "{c}", "checkout_error": true}}' for c in m.CHECKOUT_TYPES],
    )
    family(
        "ship",
        [
            f'{{"shipping_tier": "{t}", "shipping_cost": {c}}}'
            for t, c in zip(tiers, m.SHIPPING_COST, strict=True)
        ],
    )
    family(
        "ship_error",
        [
            f'{{"shipping_tier": "{t}", "shipping_cost": {c}, "checkout_error": true}}'
            for t, c in zip(tiers, m.SHIPPING_COST, strict=True)
        ],
    )
    family(
        "pay",
        [
            f'{{"payment_type": "{p}", "payment_failed": {f}}}'
            for f in ("false", "true")
            for p in m.PAYMENT_TYPES
        ],
    )
    family(
        "pay_error",
        [
            f'{{"payment_type": "{p}", "payment_failed": true, "checkout_error": true}}'
            for p in m.PAYMENT_TYPES
        ],
    )
    family(
        "purchase",
        [
            f'{{"shipping": {s}, "payment_type": "{p}", "checkout_type": "{c}"}}'
            for s in m.SHIPPING_COST
            for p in m.PAYMENT_TYPES
            for c in m.CHECKOUT_TYPES
        ],
    )
    family("refund", [f'{{"reason": "{r}"}}' for r in REFUND_REASONS])
    return table, offsets


PROPS, PROP_OFF = property_table()


def expand(
    plan: Plan, rng: np.random.Generator, s: dict[str, np.ndarray], lines: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Every event of the given sessions (plus refunds), sorted by session then time."""
    cat = catalogue()
    n = len(s["level"])
    lvl = s["level"]
    n_lines = s["lines"]
    line_start = np.cumsum(n_lines) - n_lines
    n_final = n_lines - s["removed"]

    counts = np.zeros((len(EVENTS) - 1, n), dtype=np.int64)
    counts[PAGE_VIEW] = 1 + rng.poisson(m.EXTRA_PAGE_VIEWS, n)
    counts[LIST] = np.where(
        lvl >= 1, rng.poisson(m.LIST_VIEWS_SHOPPER, n), rng.poisson(m.LIST_VIEWS_BROWSER, n)
    )
    views = np.where(lvl >= 1, 1 + rng.poisson(m.EXTRA_ITEM_VIEWS, n), 0)
    views = np.maximum(views, n_lines)
    counts[VIEW] = views
    counts[SELECT] = np.where(counts[LIST] > 0, rng.binomial(views, m.SELECT_FROM_LIST), 0)
    counts[WISH] = (lvl >= 1) & (rng.random(n) < m.WISHLIST)
    counts[CART] = n_lines
    counts[REMOVE] = s["removed"]
    counts[VIEW_CART] = (lvl >= 3) | ((lvl >= 2) & (rng.random(n) < m.VIEW_CART))
    counts[BEGIN] = lvl >= 3
    counts[SHIP] = lvl >= 4
    counts[PAY] = lvl >= 5
    counts[PURCHASE] = lvl >= 6

    view_sess, view_j = within(views)
    view_start = np.cumsum(views) - views
    view_key = 0.02 + 0.97 * rng.random(len(view_sess))
    # The first n_lines product views are of the products carted; the rest are browsing.
    carted_view = view_j < n_lines[view_sess]
    view_product = np.empty(len(view_sess), dtype=np.int64)
    view_product[carted_view] = lines["product"][
        line_start[view_sess[carted_view]] + view_j[carted_view]
    ]
    browse = ~carted_view
    from_pref = rng.random(int(browse.sum())) < m.PREFERRED_CATEGORY
    bcat = np.where(
        from_pref,
        s["pref_cat"][view_sess[browse]],
        choice(rng, m.CATEGORY_POPULARITY, int(browse.sum())),
    )
    view_product[browse] = grouped_choice(rng, cat.cdf, bcat)

    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("sess", "type", "key", "product", "qty", "items")
    }

    def add(
        etype: int,
        sess: np.ndarray,
        key: np.ndarray,
        product: np.ndarray | None = None,
        qty: np.ndarray | None = None,
        items: int = 0,
    ) -> None:
        size = len(sess)
        parts["sess"].append(sess)
        parts["type"].append(np.full(size, etype, dtype=np.int8))
        parts["key"].append(key)
        parts["product"].append(np.full(size, -1, dtype=np.int64) if product is None else product)
        parts["qty"].append(np.ones(size, dtype=np.int64) if qty is None else qty)
        parts["items"].append(np.full(size, items, dtype=np.int8))

    pv_sess, pv_j = within(counts[PAGE_VIEW])
    add(PAGE_VIEW, pv_sess, np.where(pv_j == 0, 0.0, rng.random(len(pv_sess))))
    list_sess, _ = within(counts[LIST])
    add(LIST, list_sess, rng.random(len(list_sess)))
    add(VIEW, view_sess, view_key, view_product, items=1)
    sel_sess, sel_j = within(counts[SELECT])
    v = view_start[sel_sess] + sel_j
    add(SELECT, sel_sess, view_key[v] - 1e-4, view_product[v], items=1)
    wish_sess = np.flatnonzero(counts[WISH])
    v = view_start[wish_sess]
    add(WISH, wish_sess, view_key[v] + 5e-5, view_product[v], items=1)
    cart_sess, cart_j = within(n_lines)
    v = view_start[cart_sess] + cart_j
    add(CART, cart_sess, view_key[v] + 1e-4, view_product[v], lines["qty"], items=1)
    rm_sess = np.flatnonzero(counts[REMOVE])
    last_line = line_start[rm_sess] + n_lines[rm_sess] - 1
    add(
        REMOVE,
        rm_sess,
        np.full(len(rm_sess), 1.05),
        lines["product"][last_line],
        lines["qty"][last_line],
        items=1,
    )
    for etype, key in ((VIEW_CART, 1.1), (BEGIN, 2.0), (SHIP, 3.0), (PAY, 4.0), (PURCHASE, 5.0)):
        sess = np.flatnonzero(counts[etype])
        add(etype, sess, np.full(len(sess), key), items=2)

    ev = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.argsort(ev["sess"] * 8.0 + ev["key"], kind="stable")
    ev = {k: a[order] for k, a in ev.items()}
    # Times: the session start plus exponential gaps by event kind, the first event at 0.
    sess = ev["sess"]
    mean_gap = np.array([m.EVENT_GAP_SECONDS[e] for e in EVENTS], dtype=np.float64)
    gap_us = np.minimum(rng.exponential(mean_gap[ev["type"]]), 1200.0) * 1e6
    first = np.ones(len(sess), dtype=bool)
    first[1:] = sess[1:] != sess[:-1]
    gap_us[first] = 0.0
    csum = np.cumsum(gap_us)
    base = csum[first]
    sess_pos = np.cumsum(first) - 1
    offset_us = (csum - base[sess_pos]).astype(np.int64)
    start_us = np.round(s["start"] * US_PER_DAY).astype(np.int64)
    ev["ts"] = start_us[sess] + offset_us
    ev["refund_of"] = np.full(len(sess), -1, dtype=np.int64)

    # Refunds: a server-side event days after the purchase, in a session of its own.
    pur = np.flatnonzero((ev["type"] == PURCHASE) & s["refund"][sess])
    if len(pur):
        rs = sess[pur]
        extra = {
            "sess": rs,
            "type": np.full(len(rs), REFUND, dtype=np.int8),
            "key": np.full(len(rs), 6.0),
            "product": np.full(len(rs), -1, dtype=np.int64),
            "qty": np.ones(len(rs), dtype=np.int64),
            "items": np.full(len(rs), 2, dtype=np.int8),
            "ts": ev["ts"][pur] + np.round(s["refund_delay"][rs] * US_PER_DAY).astype(np.int64),
            "refund_of": ev["ts"][pur],
        }
        ev = {k: np.concatenate([ev[k], extra[k]]) for k in ev}
    ev["n_final"] = n_final[ev["sess"]]
    ev["line_start"] = line_start[ev["sess"]]
    return ev
