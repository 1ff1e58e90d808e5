"""The simulation: visitors → sessions → events, vectorised with NumPy per block.

A *block* is a fixed number of visitors (:data:`BLOCK_VISITORS`, plus a block's share of
any traffic spike) simulated from its own random stream ``(seed, block)``. Blocks are
independent and identically distributed, so the sample of ``n`` events is the first
blocks in order, the last one cut at a visitor boundary (and, for the one visitor cut in
two, at their earliest events): the same seed gives the same rows, and a smaller sample
is a prefix of a larger one.

Within a block, a loop runs once per *session number* (first sessions of all visitors,
then second sessions, …), each pass vectorised over the visitors still active; then all
sessions are expanded into events at once. See :mod:`shopfunnel.sample` for the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel import schema
from shopfunnel.errors import ConfigError
from shopfunnel.sample import model as m
from shopfunnel.sample.incidents import (
    CheckoutFailure,
    Incident,
    PaymentOutage,
    TrafficSpike,
    to_datetime,
)

BLOCK_VISITORS = 20_000
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


# -- the catalogue ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Catalogue:
    """Products: id, name, category, price, and a popularity CDF within each category."""

    item_id: pa.Array
    item_name: pa.Array
    item_category: pa.Array
    category: np.ndarray  # category index per product
    price_cents: np.ndarray
    cdf: np.ndarray  # category index + within-category cumulative popularity
    pages: pa.Array  # every page path, see _page_table


@cache
def catalogue() -> Catalogue:
    """The fixed catalogue (the same for every seed): 8 categories × 40 products, prices
    log-normal around each category's median, popularity Zipf-like within a category."""
    rng = np.random.default_rng(20240101)
    ids, names, cats, prices, cdf = [], [], [], [], []
    for c, cat in enumerate(m.CATEGORIES):
        nouns = m._NOUNS[cat]
        weights = 1.0 / np.arange(1, m.PRODUCTS_PER_CATEGORY + 1) ** 1.05
        cdf.append(c + np.cumsum(weights) / weights.sum())
        for j in range(m.PRODUCTS_PER_CATEGORY):
            noun = nouns[j % len(nouns)]
            adjective = m._ADJECTIVES[(j // len(nouns)) % len(m._ADJECTIVES)]
            ids.append(f"SKU-{c + 1}{j + 1:03d}")
            names.append(f"{adjective} {noun}")
            cats.append(c)
            price = m.CATEGORY_MEDIAN_PRICE[c] * np.exp(rng.normal(0.0, 0.45))
            prices.append(max(round(price) - 0.01, 3.99))
    cdf_all = np.concatenate(cdf)
    cdf_all[
        np.arange(len(m.CATEGORIES)) * m.PRODUCTS_PER_CATEGORY + m.PRODUCTS_PER_CATEGORY - 1
    ] = np.arange(len(m.CATEGORIES)) + 1.0
    slugs = [
        "/products/" + f"{n}-{i}".lower().replace(" ", "-") for n, i in zip(names, ids, strict=True)
    ]
    pages = (
        GENERIC_PAGES
        + tuple(f"/collections/{c}" for c in m.CATEGORIES)
        + tuple(slugs)
        + FIXED_PAGES
    )
    return Catalogue(
        item_id=pa.array(ids, pa.string()),
        item_name=pa.array(names, pa.string()),
        item_category=pa.array([m.CATEGORIES[c] for c in cats], pa.string()),
        category=np.array(cats, dtype=np.int64),
        price_cents=np.round(np.array(prices) * 100).astype(np.int64),
        cdf=cdf_all,
        pages=pa.array(pages, pa.string()),
    )


GENERIC_PAGES = ("/", "/search", "/sale", "/about", "/blog/style-guide", "/collections/all")
FIXED_PAGES = (
    "/cart",
    "/checkout",
    "/checkout/shipping",
    "/checkout/payment",
    "/checkout/thank-you",
)


def _page_offsets() -> tuple[int, int, int]:
    n_products = len(m.CATEGORIES) * m.PRODUCTS_PER_CATEGORY
    collections = len(GENERIC_PAGES)
    products = collections + len(m.CATEGORIES)
    fixed = products + n_products
    return collections, products, fixed


# -- the plan: parameters resolved once per sample ------------------------------------------
@dataclass(frozen=True)
class Plan:
    seed: int
    start: datetime
    days: int
    span_start: datetime
    weekday_of_day: np.ndarray  # weekday (0=Mon) of each day of the span
    day_weight: np.ndarray  # arrival weight of each day of the span
    failures: tuple[tuple[float, float, int, int], ...]  # begin, end (days), device, level
    outages: tuple[tuple[float, float], ...]
    spikes: tuple[
        tuple[float, float, int, int, float], ...
    ]  # begin, end, channel, source, mean extra
    sources: tuple[tuple[str | None, str | None, str | None, str | None], ...]
    source_channel: np.ndarray
    source_cdf: np.ndarray  # channel index + within-channel cumulative weight
    abandoned_cart_source: int

    @property
    def window(self) -> tuple[float, float]:
        return float(m.WARMUP_DAYS), float(m.WARMUP_DAYS + self.days)


def make_plan(seed: int, start: str | datetime, days: int, incidents: Sequence[Incident]) -> Plan:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed={seed!r} is not valid: use a whole number ≥ 0")
    if not isinstance(days, int | np.integer) or days < 1:
        raise ConfigError(f"days={days!r} is not valid: use a whole number of days ≥ 1")
    t0 = to_datetime(start)
    if t0 != datetime(t0.year, t0.month, t0.day):
        raise ConfigError(f"start={start!r} must be a date (midnight UTC), e.g. 2024-01-01")
    span_start = t0 - timedelta(days=m.WARMUP_DAYS)
    span_days = m.WARMUP_DAYS + int(days)
    weekdays = np.array([(span_start + timedelta(days=d)).weekday() for d in range(span_days)])
    day_weight = m.WEEKDAY_WEIGHT[weekdays]

    sources: list[tuple[str | None, str | None, str | None, str | None]] = []
    source_channel: list[int] = []
    cdf: list[float] = []
    for c, channel in enumerate(m.CHANNELS):
        combos = m.SOURCES[channel]
        w = np.array([x[4] for x in combos])
        for combo, cum in zip(combos, np.cumsum(w) / w.sum(), strict=True):
            sources.append(combo[:4])
            source_channel.append(c)
            cdf.append(c + cum)
        cdf[-1] = c + 1.0
    abandoned = len(sources)
    sources.append(m.ABANDONED_CART_SOURCE)
    source_channel.append(m.CHANNELS.index("email"))

    def days_from_span(t: datetime) -> float:
        return (t - span_start).total_seconds() / 86_400

    failures, outages, spikes = [], [], []
    for inc in incidents:
        if isinstance(inc, CheckoutFailure):
            failures.append(
                (
                    days_from_span(inc.begin),
                    days_from_span(inc.end),
                    m.DEVICES.index(inc.device),
                    inc.level,
                )
            )
        elif isinstance(inc, PaymentOutage):
            outages.append((days_from_span(inc.begin), days_from_span(inc.end)))
        elif isinstance(inc, TrafficSpike):
            ch = m.CHANNELS.index(inc.channel)
            utm_source, utm_medium, _, referrer, _ = m.SOURCES[inc.channel][0]
            src = len(sources)
            sources.append((utm_source, utm_medium, inc.campaign, referrer))
            source_channel.append(ch)
            b, e = days_from_span(inc.begin), days_from_span(inc.end)
            # The channel's usual new visitors in the window, per block, times (multiplier - 1).
            lo, hi = max(int(np.floor(b)), 0), min(int(np.ceil(e)), span_days)
            share = day_weight[lo:hi].sum() / day_weight.sum() * (e - b) / max(hi - lo, 1e-9)
            extra = BLOCK_VISITORS * m.NEW_MIX[ch] * share * (inc.multiplier - 1.0)
            spikes.append((b, e, ch, src, float(extra)))
        else:
            raise ConfigError(
                f"{inc!r} is not an incident: use CheckoutFailure, PaymentOutage or TrafficSpike"
            )
    window = (m.WARMUP_DAYS, m.WARMUP_DAYS + days)
    for inc, (b, e, *_) in zip(
        [i for i in incidents if isinstance(i, CheckoutFailure)]
        + [i for i in incidents if isinstance(i, PaymentOutage)]
        + [i for i in incidents if isinstance(i, TrafficSpike)],
        failures + outages + spikes,
        strict=True,
    ):
        if e <= window[0] or b >= window[1]:
            raise ConfigError(
                f"{inc!r} falls outside the sample ({t0.date()} for {days} days): move it "
                "inside, or change --start/--days"
            )
    return Plan(
        seed=int(seed),
        start=t0,
        days=int(days),
        span_start=span_start,
        weekday_of_day=weekdays,
        day_weight=day_weight,
        failures=tuple(failures),
        outages=tuple(outages),
        spikes=tuple(spikes),
        sources=tuple(sources),
        source_channel=np.array(source_channel),
        source_cdf=np.array(cdf),
        abandoned_cart_source=abandoned,
    )


# -- small vectorised helpers ----------------------------------------------------------------
def _choice(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    cdf = np.cumsum(p) / np.sum(p)
    cdf[-1] = 1.0
    return np.searchsorted(cdf, rng.random(size), side="right")


def _grouped_choice(rng: np.random.Generator, cdf: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Pick an index per row from a concatenated CDF whose group g spans (g, g + 1]."""
    return np.searchsorted(cdf, group + rng.random(len(group)), side="left")


def _within(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows repeated ``counts`` times: the owner index and the index within it."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - starts[owner]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _hour_fraction(rng: np.random.Generator, size: int) -> np.ndarray:
    return (_choice(rng, m.HOUR_WEIGHT, size) + rng.random(size)) / 24.0


# -- sessions ---------------------------------------------------------------------------------
def _simulate_sessions(
    plan: Plan, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """All sessions of one block's visitors, and their cart lines."""
    cat = catalogue()
    span_days = len(plan.day_weight)
    n_spike = [int(rng.poisson(extra)) for *_, extra in plan.spikes]
    n_base = BLOCK_VISITORS
    nv = n_base + sum(n_spike)

    # Visitors.
    day = _choice(rng, plan.day_weight, n_base)
    arrival = np.empty(nv)
    arrival[:n_base] = day + _hour_fraction(rng, n_base)
    acq = np.empty(nv, dtype=np.int64)
    acq[:n_base] = _choice(rng, m.NEW_MIX, n_base)
    first_source = np.empty(nv, dtype=np.int64)
    first_source[:n_base] = _grouped_choice(rng, plan.source_cdf, acq[:n_base])
    spike = np.zeros(nv, dtype=bool)
    pos = n_base
    for (b, e, ch, src, _), k in zip(plan.spikes, n_spike, strict=True):
        arrival[pos : pos + k] = b + rng.random(k) * (e - b)
        acq[pos : pos + k] = ch
        first_source[pos : pos + k] = src
        spike[pos : pos + k] = True
        pos += k
    weekend_arrival = plan.weekday_of_day[np.minimum(arrival.astype(np.int64), span_days - 1)] >= 5
    prim = np.where(
        weekend_arrival,
        _choice(rng, m.DEVICE_MIX_WEEKEND, nv),
        _choice(rng, m.DEVICE_MIX_WEEKDAY, nv),
    )
    prim[spike] = np.where(rng.random(int(spike.sum())) < m.SPIKE_MOBILE, 1, 0)
    country = _choice(rng, m.COUNTRY_MIX, nv)
    pref_cat = _choice(rng, m.CATEGORY_POPULARITY, nv)
    has_account = rng.random(nv) < m.HAS_ACCOUNT

    t = arrival.copy()
    alive = np.ones(nv, dtype=bool)
    n_sess = np.zeros(nv, dtype=np.int64)
    n_orders = np.zeros(nv, dtype=np.int64)
    cart_waiting = np.zeros(nv, dtype=bool)

    out: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "visitor",
            "number",
            "start",
            "channel",
            "source",
            "device",
            "logged_in",
            "level",
            "checkout_type",
            "shipping",
            "payment_type",
            "payment_failed",
            "error_level",
            "refund",
            "refund_delay",
            "lines",
            "removed",
            "value_cents",
        )
    }
    lines_out: dict[str, list[np.ndarray]] = {"product": [], "qty": []}
    n_sessions_so_far = 0
    return_mix_cdf = np.cumsum(m.RETURN_MIX) / m.RETURN_MIX.sum()

    while True:
        idx = np.flatnonzero(alive)
        k = len(idx)
        if k == 0:
            break
        ts = t[idx]
        first = n_sess[idx] == 0
        # Channel and source.
        ch = np.where(first, acq[idx], np.searchsorted(return_mix_cdf, rng.random(k), side="right"))
        src = np.where(first, first_source[idx], _grouped_choice(rng, plan.source_cdf, ch))
        cart_email = ~first & cart_waiting[idx] & (rng.random(k) < m.ABANDONED_CART_EMAIL)
        src[cart_email] = plan.abandoned_cart_source
        ch[cart_email] = m.CHANNELS.index("email")
        # Device: mostly the visitor's own.
        dev = prim[idx].copy()
        other = ~first & (rng.random(k) < m.OTHER_DEVICE)
        dev[other] = _choice(rng, m.DEVICE_MIX_WEEKDAY, int(other.sum()))
        weekend = plan.weekday_of_day[np.minimum(ts.astype(np.int64), span_days - 1)] >= 5
        logged_in = has_account[idx] & (rng.random(k) < m.LOGGED_IN)
        customer = n_orders[idx] > 0
        waiting = cart_waiting[idx]
        is_spike = spike[idx]

        logit = (
            m.INTERCEPTS[None, :]
            + m.CHANNEL_EFFECT[ch]
            + m.DEVICE_EFFECT[dev]
            + np.where(first, 0.0, 1.0)[:, None] * m.RETURNING_EFFECT
            + logged_in[:, None] * m.LOGGED_IN_EFFECT
            + customer[:, None] * m.CUSTOMER_EFFECT
            + waiting[:, None] * m.CART_WAITING_EFFECT
            + weekend[:, None] * m.WEEKEND_EFFECT
            + is_spike[:, None] * m.SPIKE_EFFECT
        )
        u = rng.random((k, 6))
        level = np.zeros(k, dtype=np.int64)
        for step in (0, 1):
            level += (level == step) & (u[:, step] < _sigmoid(logit[:, step]))

        # Cart lines of carting sessions.
        carting = level >= 2
        n_lines = np.where(carting, 1 + rng.poisson(m.EXTRA_CART_LINES, k), 0)
        line_sess, _ = _within(n_lines)
        from_pref = rng.random(len(line_sess)) < m.PREFERRED_CATEGORY
        line_cat = np.where(
            from_pref, pref_cat[idx][line_sess], _choice(rng, m.CATEGORY_POPULARITY, len(line_sess))
        )
        product = _grouped_choice(rng, cat.cdf, line_cat)
        qty = 1 + _choice(rng, m.QUANTITY_MIX, len(line_sess))
        removed = (n_lines >= 2) & (rng.random(k) < m.REMOVE_FROM_CART)
        line_ends = np.cumsum(n_lines)
        is_removed_line = np.zeros(len(line_sess), dtype=bool)
        is_removed_line[line_ends[removed] - 1] = True
        line_value = np.where(is_removed_line, 0, cat.price_cents[product] * qty)
        value_cents = np.bincount(line_sess, weights=line_value, minlength=k).astype(np.int64)

        # Checkout choices and the rest of the chain.
        shipping = np.where(value_cents >= m.FREE_SHIPPING_FROM * 100, 0, 1)
        shipping[rng.random(k) < m.EXPRESS_SHIPPING] = 2
        checkout_type = np.where(
            logged_in, 0, np.where(rng.random(k) < m.CREATE_ACCOUNT_SHARE, 2, 1)
        )
        payment_type = _choice(rng, m.PAYMENT_MIX, k)
        payment_failed = rng.random(k) < m.PAYMENT_FAILED
        logit[:, 3] += np.where(checkout_type == 2, m.CREATE_ACCOUNT_EFFECT, 0.0)
        logit[:, 4] += np.where(shipping == 0, m.FREE_SHIPPING_EFFECT, m.SHIPPING_COST_EFFECT)
        logit[:, 5] += np.where(payment_failed, m.PAYMENT_FAILED_EFFECT, 0.0)
        for step in (2, 3, 4, 5):
            level += (level == step) & (u[:, step] < _sigmoid(logit[:, step]))

        # Planted incidents.
        error_level = np.full(k, -1, dtype=np.int64)
        for b, e, d, cap in plan.failures:
            hit = (ts >= b) & (ts < e) & (dev == d) & (level >= cap)
            level[hit] = cap
            error_level[hit] = cap
            if cap == 5:
                payment_failed |= hit
        for b, e in plan.outages:
            hit = (ts >= b) & (ts < e) & (level >= 5)
            level[hit] = 5
            payment_failed |= hit
            error_level[hit] = 5
        payment_failed &= level >= 5

        purchased = level == 6
        refund = purchased & (rng.random(k) < m.REFUND_RATE)
        for name, arr in (
            ("visitor", idx),
            ("number", n_sess[idx]),
            ("start", ts),
            ("channel", ch),
            ("source", src),
            ("device", dev),
            ("logged_in", logged_in),
            ("level", level),
            ("checkout_type", checkout_type),
            ("shipping", shipping),
            ("payment_type", payment_type),
            ("payment_failed", payment_failed),
            ("error_level", error_level),
            ("refund", refund),
            ("refund_delay", 2.0 + 28.0 * rng.random(k)),
            ("lines", n_lines),
            ("removed", removed),
            ("value_cents", value_cents),
        ):
            out[name].append(arr)
        lines_out["product"].append(product)
        lines_out["qty"].append(qty)
        n_sessions_so_far += k

        # State for the next session.
        n_sess[idx] += 1
        n_orders[idx] += purchased
        has_account[idx] |= purchased & (checkout_type != 1)
        abandoned = (level >= 2) & ~purchased
        cart_waiting[idx] = abandoned | (waiting & (level < 2) & (rng.random(k) < 0.5))
        p_return = np.where(
            purchased,
            m.RETURN_AFTER_PURCHASE[0],
            np.where(
                abandoned,
                m.RETURN_AFTER_CART[0],
                np.where(customer, m.RETURN_CUSTOMER[0], m.RETURN_AFTER_BROWSE[0]),
            ),
        )
        mean_gap = np.where(
            purchased,
            m.RETURN_AFTER_PURCHASE[1],
            np.where(
                abandoned,
                m.RETURN_AFTER_CART[1],
                np.where(customer, m.RETURN_CUSTOMER[1], m.RETURN_AFTER_BROWSE[1]),
            ),
        )
        p_return = np.where(is_spike, m.SPIKE_RETURN, p_return)
        gap = np.maximum(rng.exponential(mean_gap), 0.05)
        nxt = ts + gap
        later_day = gap >= 1.0
        nxt[later_day] = np.floor(nxt[later_day]) + _hour_fraction(rng, int(later_day.sum()))
        t[idx] = np.maximum(nxt, ts + 0.05)
        again = (
            (rng.random(k) < p_return)
            & (n_sess[idx] < m.MAX_SESSIONS)
            & (n_orders[idx] < m.MAX_ORDERS)
        )
        alive[idx] = again & (t[idx] < span_days)

    sessions = {k: np.concatenate(v) for k, v in out.items()}
    sessions["prim"] = prim[sessions["visitor"]]
    sessions["country"] = country[sessions["visitor"]]
    sessions["pref_cat"] = pref_cat[sessions["visitor"]]
    lines = {k: np.concatenate(v) for k, v in lines_out.items()}
    return sessions, lines, nv


# -- events -------------------------------------------------------------------------------------
def _property_table() -> tuple[list[str | None], dict[str, int]]:
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


_PROPS, _PROP_OFF = _property_table()


def _expand(
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

    view_sess, view_j = _within(views)
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
        _choice(rng, m.CATEGORY_POPULARITY, int(browse.sum())),
    )
    view_product[browse] = _grouped_choice(rng, cat.cdf, bcat)

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

    pv_sess, pv_j = _within(counts[PAGE_VIEW])
    add(PAGE_VIEW, pv_sess, np.where(pv_j == 0, 0.0, rng.random(len(pv_sess))))
    list_sess, _ = _within(counts[LIST])
    add(LIST, list_sess, rng.random(len(list_sess)))
    add(VIEW, view_sess, view_key, view_product, items=1)
    sel_sess, sel_j = _within(counts[SELECT])
    v = view_start[sel_sess] + sel_j
    add(SELECT, sel_sess, view_key[v] - 1e-4, view_product[v], items=1)
    wish_sess = np.flatnonzero(counts[WISH])
    v = view_start[wish_sess]
    add(WISH, wish_sess, view_key[v] + 5e-5, view_product[v], items=1)
    cart_sess, cart_j = _within(n_lines)
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


def _ids(prefix: str, *parts: pa.Array | np.ndarray | str) -> pa.Array:
    strings = [
        p if isinstance(p, str | pa.Array) else pc.cast(pa.array(p), pa.string()) for p in parts
    ]
    return pc.binary_join_element_wise(prefix, *strings, "")


def _decimal(cents: np.ndarray, valid: np.ndarray) -> pa.Array:
    buf = np.empty((len(cents), 2), dtype=np.int64)
    buf[:, 0] = cents
    buf[:, 1] = np.where(cents < 0, -1, 0)
    validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        pa.decimal128(18, 2),
        len(cents),
        [validity, pa.py_buffer(buf)],
        null_count=int(len(valid) - valid.sum()),
    )


def _nullable(values: pa.Array, valid: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(valid), values, pa.scalar(None, values.type))


def simulate_block(plan: Plan, block: int, limit: int | None = None) -> pa.Table:
    """One block's events in the window, sorted by time; at most ``limit`` rows, cut as
    described in the module docstring."""
    rng = np.random.default_rng([plan.seed, block])
    s, lines, _ = _simulate_sessions(plan, rng)
    w0, w1 = plan.window
    keep = (s["start"] >= w0 - 0.1) & (s["start"] < w1)
    line_keep = np.repeat(keep, s["lines"])
    s = {k: v[keep] for k, v in s.items()}
    lines = {k: v[line_keep] for k, v in lines.items()}
    ev = _expand(plan, rng, s, lines)

    w0_us, w1_us = int(w0 * US_PER_DAY), int(w1 * US_PER_DAY)
    ts = ev["ts"]
    inside = (ts >= w0_us) & (ts < w1_us)
    is_refund = ev["type"] == REFUND
    inside &= ~is_refund | (ev["refund_of"] >= w0_us)
    sel = np.flatnonzero(inside)
    sel = sel[np.argsort(ts[sel], kind="stable")]
    local_id = np.arange(len(sel))
    if limit is not None and len(sel) > limit:
        visitor = s["visitor"][ev["sess"][sel]]
        per_visitor = np.bincount(visitor)
        cum = np.cumsum(per_visitor)
        whole = int(np.searchsorted(cum, limit, side="right"))  # visitors 0..whole-1 fit
        taken = int(cum[whole - 1]) if whole > 0 else 0
        partial = np.flatnonzero(visitor == whole)[
            : limit - taken
        ]  # earliest events (sorted by ts)
        mask = visitor < whole
        mask[partial] = True
        sel, local_id = sel[mask], local_id[mask]
    return _to_arrow(plan, block, s, lines, ev, sel, local_id)


def _to_arrow(
    plan: Plan,
    block: int,
    s: dict[str, np.ndarray],
    lines: dict[str, np.ndarray],
    ev: dict[str, np.ndarray],
    sel: np.ndarray,
    local_id: np.ndarray,
) -> pa.Table:
    cat = catalogue()
    seed = plan.seed
    etype = ev["type"][sel]
    sess = ev["sess"][sel]
    n = len(sel)
    visitor_global = s["visitor"][sess] + block * 1_000_000
    number = s["number"][sess]
    dev = s["device"][sess]
    is_refund = etype == REFUND
    is_purchase = etype == PURCHASE

    event_id = _ids(f"e{seed}-{block}-", local_id)
    base_anon = _ids(f"a{seed}-", visitor_global)
    suffix = pc.take(
        pa.array(["", "-desktop", "-mobile", "-tablet"]),
        pa.array(np.where(dev == s["prim"][sess], 0, dev + 1)),
    )
    anonymous_id = pc.binary_join_element_wise(base_anon, suffix, "")
    user_valid = s["logged_in"][sess] | is_purchase | is_refund
    user_id = _nullable(_ids(f"u{seed}-", visitor_global), user_valid)
    session_key = _ids(f"s{seed}-", visitor_global, "-", number)
    order_id = _nullable(_ids(f"o{seed}-", visitor_global, "-", number), is_purchase | is_refund)
    session_id = pc.if_else(
        pa.array(is_refund), pc.binary_join_element_wise(session_key, "-refund", ""), session_key
    )

    src = s["source"][sess]
    src_table = list(zip(*plan.sources, strict=True))
    direct = m.CHANNELS.index("direct")
    src_idx = pa.array(np.where(is_refund, -1, src), mask=is_refund)
    channel_code = np.where(is_refund, direct, s["channel"][sess])
    channel = pc.take(pa.array(m.CHANNELS), pa.array(channel_code))
    utm = [pc.take(pa.array(list(col), pa.string()), src_idx) for col in src_table]

    # Items.
    kind = ev["items"][sel]
    item_len = np.where(kind == 1, 1, np.where(kind == 2, ev["n_final"][sel], 0)).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(item_len, out=offsets[1:])
    owner, j = _within(item_len)
    cart_child = kind[owner] == 2
    line = ev["line_start"][sel][owner] + j
    product = np.where(
        cart_child,
        lines["product"][np.where(cart_child, line, 0)] if len(lines["product"]) else 0,
        ev["product"][sel][owner],
    )
    qty = np.where(
        cart_child,
        lines["qty"][np.where(cart_child, line, 0)] if len(lines["qty"]) else 1,
        ev["qty"][sel][owner],
    )
    product_idx = pa.array(product)
    struct = pa.StructArray.from_arrays(
        [
            pc.take(cat.item_id, product_idx),
            pc.take(cat.item_name, product_idx),
            pc.take(cat.item_category, product_idx),
            pa.array(cat.price_cents[product] / 100.0),
            pa.array(qty.astype(np.int32)),
        ],
        fields=list(schema.ITEM_ARROW_TYPE.value_type),
    )
    items = pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)),
        struct,
        type=schema.ITEM_ARROW_TYPE,
        mask=pa.array(kind == 0),
    )
    single_value = cat.price_cents[np.maximum(ev["product"][sel], 0)] * ev["qty"][sel]
    value_cents = np.where(kind == 1, single_value, s["value_cents"][sess])
    value = _decimal(value_cents, kind > 0)
    currency = _nullable(pa.array(np.full(n, m.CURRENCY)), kind > 0)

    # Pages.
    collections, products, fixed = _page_offsets()
    ev_product = ev["product"][sel]
    landing = np.where(s["pref_cat"][sess] >= 0, rng_free_landing(sess, number), 0)
    page = np.full(n, -1, dtype=np.int64)
    page[etype == PAGE_VIEW] = landing[etype == PAGE_VIEW]
    page[etype == LIST] = collections + s["pref_cat"][sess][etype == LIST]
    sel_ev = etype == SELECT
    page[sel_ev] = collections + cat.category[ev_product[sel_ev]]
    prod_ev = (etype == VIEW) | (etype == WISH) | (etype == CART)
    page[prod_ev] = products + ev_product[prod_ev]
    for et, off in ((REMOVE, 0), (VIEW_CART, 0), (BEGIN, 1), (SHIP, 2), (PAY, 3), (PURCHASE, 4)):
        page[etype == et] = fixed + off
    page_arr = pc.take(cat.pages, pa.array(page, mask=page < 0))

    # Properties.
    prop = np.full(n, -1, dtype=np.int64)
    err = s["error_level"][sess]
    ctype, ship, ptype = s["checkout_type"][sess], s["shipping"][sess], s["payment_type"][sess]
    failed = s["payment_failed"][sess]
    b = etype == BEGIN
    prop[b] = np.where(err[b] == 3, _PROP_OFF["begin_error"], _PROP_OFF["begin"]) + ctype[b]
    b = etype == SHIP
    prop[b] = np.where(err[b] == 4, _PROP_OFF["ship_error"], _PROP_OFF["ship"]) + ship[b]
    b = etype == PAY
    prop[b] = np.where(
        err[b] == 5,
        _PROP_OFF["pay_error"] + ptype[b],
        _PROP_OFF["pay"] + failed[b] * len(m.PAYMENT_TYPES) + ptype[b],
    )
    b = is_purchase
    prop[b] = (
        _PROP_OFF["purchase"]
        + (ship[b] * len(m.PAYMENT_TYPES) + ptype[b]) * len(m.CHECKOUT_TYPES)
        + ctype[b]
    )
    b = is_refund
    prop[b] = _PROP_OFF["refund"] + (visitor_global[b] + number[b]) % len(REFUND_REASONS)
    properties = pc.take(pa.array(_PROPS, pa.string()), pa.array(prop, mask=prop < 0))

    ts = ev["ts"][sel] + int((plan.span_start - datetime(1970, 1, 1)).total_seconds()) * 1_000_000
    columns = {
        "event_id": event_id,
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "event": pc.take(pa.array(EVENTS), pa.array(etype.astype(np.int64))),
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "session_id": session_id,
        "channel": channel,
        "utm_source": utm[0],
        "utm_medium": utm[1],
        "utm_campaign": utm[2],
        "referrer": utm[3],
        "page": page_arr,
        "device": pc.take(pa.array(m.DEVICES), pa.array(dev)),
        "country": pc.take(pa.array(m.COUNTRIES), pa.array(s["country"][sess])),
        "order_id": order_id,
        "value": value,
        "currency": currency,
        "items": items,
        "properties": properties,
    }
    return pa.Table.from_arrays(list(columns.values()), schema=schema.ARROW_SCHEMA)


def rng_free_landing(sess: np.ndarray, number: np.ndarray) -> np.ndarray:
    """A landing page per event, deterministic from the session (no random draws)."""
    collections, _, _ = _page_offsets()
    h = (sess * 2654435761 + number * 40503) % 100
    # 45% home, 25% a collection, 30% the other generic pages.
    coll = collections + (sess % len(m.CATEGORIES))
    generic = 1 + (h % (len(GENERIC_PAGES) - 1))
    return np.where(h < 45, 0, np.where(h < 70, coll, generic))


def iter_blocks(n_events: int, plan: Plan) -> Iterator[pa.Table]:
    """Blocks of events until exactly ``n_events`` rows have been produced."""
    remaining = int(n_events)
    block = 0
    empty_run = 0
    while remaining > 0:
        table = simulate_block(plan, block, limit=remaining)
        remaining -= table.num_rows
        block += 1
        empty_run = empty_run + 1 if table.num_rows == 0 else 0
        if empty_run > 50:
            raise ConfigError("the sample produced no events: check --start and --days")
        if table.num_rows:
            yield table
