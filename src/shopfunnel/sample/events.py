"""Events: every session expanded into its events, in order, with times (see engine)."""

from __future__ import annotations

import numpy as np

from shopfunnel.sample import model as m
from shopfunnel.sample.catalogue import GENERIC_PAGES, catalogue, page_offsets
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


def _page_view_pages(
    rng: np.random.Generator, landing: np.ndarray, pref_cat: np.ndarray
) -> np.ndarray:
    """Page indices (see :func:`catalogue.page_offsets`) of page views: a landing page is
    the home page (45%), a collection of the visitor's favourite category (25%) or another
    page (30%); later page views are a collection (50%) or another page."""
    collections, _, _ = page_offsets()
    n = len(landing)
    u = rng.random(n)
    other = 1 + rng.integers(0, len(GENERIC_PAGES) - 1, n)
    any_collection = collections + choice(rng, m.CATEGORY_POPULARITY, n)
    first = np.where(u < 0.45, 0, np.where(u < 0.70, collections + pref_cat, other))
    later = np.where(u < 0.5, any_collection, other)
    return np.where(landing, first, later)


# The funnel level each event kind belongs to (see model.STEPS); 0 for the rest.
EVENT_LEVEL = np.array([0, 0, 1, 1, 1, 2, 2, 2, 3, 4, 5, 6, 0], dtype=np.int64)


def _enforce_incidents(
    plan: Plan, s: dict[str, np.ndarray], ev: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Hold the incidents by event time too.

    The session simulation applies an incident to sessions that *start* in its window; a
    session that starts just before and reaches the failing step inside the window is
    caught here: its events past the step are dropped and the session is marked as failed
    (this edits ``s`` in place, so the properties written later say so).
    """
    if not plan.failures and not plan.outages:
        return ev
    sess, ts = ev["sess"], ev["ts"]
    level = EVENT_LEVEL[ev["type"]]
    dev = s["device"][sess]
    drop = np.zeros(len(sess), dtype=bool)
    rules = [(b, e, d, cap) for b, e, d, cap in plan.failures]
    rules += [(b, e, -1, 5) for b, e in plan.outages]
    for b, e, d, cap in rules:
        lo, hi = int(b * US_PER_DAY), int(e * US_PER_DAY)
        past = (level > cap) & (ts >= lo) & (ts < hi)
        if d >= 0:
            past &= dev == d
        hit = np.unique(sess[past])
        if not len(hit):
            continue
        s["level"][hit] = cap
        s["error_level"][hit] = cap
        if cap == 5:
            s["payment_failed"][hit] = True
        s["refund"][hit] = False
        in_hit = np.zeros(len(s["level"]), dtype=bool)
        in_hit[hit] = True
        drop |= in_hit[sess] & (level > cap)
    if not drop.any():
        return ev
    keep = ~drop
    return {k: v[keep] for k, v in ev.items()}


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
        k: [] for k in ("sess", "type", "key", "product", "qty", "items", "page")
    }

    def add(
        etype: int,
        sess: np.ndarray,
        key: np.ndarray,
        product: np.ndarray | None = None,
        qty: np.ndarray | None = None,
        items: int = 0,
        page: np.ndarray | None = None,
    ) -> None:
        size = len(sess)
        parts["page"].append(np.full(size, -1, dtype=np.int64) if page is None else page)
        parts["sess"].append(sess)
        parts["type"].append(np.full(size, etype, dtype=np.int8))
        parts["key"].append(key)
        parts["product"].append(np.full(size, -1, dtype=np.int64) if product is None else product)
        parts["qty"].append(np.ones(size, dtype=np.int64) if qty is None else qty)
        parts["items"].append(np.full(size, items, dtype=np.int8))

    pv_sess, pv_j = within(counts[PAGE_VIEW])
    add(
        PAGE_VIEW,
        pv_sess,
        np.where(pv_j == 0, 0.0, rng.random(len(pv_sess))),
        page=_page_view_pages(rng, pv_j == 0, s["pref_cat"][pv_sess]),
    )
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
    ev = _enforce_incidents(plan, s, ev)
    sess = ev["sess"]

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
            "page": np.full(len(rs), -1, dtype=np.int64),
        }
        ev = {k: np.concatenate([ev[k], extra[k]]) for k in ev}
    ev["n_final"] = n_final[ev["sess"]]
    ev["line_start"] = line_start[ev["sess"]]
    return ev
