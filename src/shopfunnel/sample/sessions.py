"""Sessions: one pass per session number over the visitors still active (see engine)."""

from __future__ import annotations

import numpy as np

from shopfunnel.sample import model as m
from shopfunnel.sample.catalogue import catalogue
from shopfunnel.sample.draws import choice, grouped_choice, hour_fraction, sigmoid, within
from shopfunnel.sample.plan import BLOCK_VISITORS, Plan


def simulate_sessions(
    plan: Plan, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """All sessions of one block's visitors, and their cart lines."""
    cat = catalogue()
    span_days = len(plan.day_weight)
    n_spike = [int(rng.poisson(extra)) for *_, extra in plan.spikes]
    n_base = BLOCK_VISITORS
    nv = n_base + sum(n_spike)

    # Visitors.
    day = choice(rng, plan.day_weight, n_base)
    arrival = np.empty(nv)
    arrival[:n_base] = day + hour_fraction(rng, n_base)
    acq = np.empty(nv, dtype=np.int64)
    acq[:n_base] = choice(rng, m.NEW_MIX, n_base)
    first_source = np.empty(nv, dtype=np.int64)
    first_source[:n_base] = grouped_choice(rng, plan.source_cdf, acq[:n_base])
    spike = np.zeros(nv, dtype=bool)
    pos = n_base
    for (b, e, spike_channel, spike_source, _), count in zip(plan.spikes, n_spike, strict=True):
        arrival[pos : pos + count] = b + rng.random(count) * (e - b)
        acq[pos : pos + count] = spike_channel
        first_source[pos : pos + count] = spike_source
        spike[pos : pos + count] = True
        pos += count
    weekend_arrival = plan.weekday_of_day[np.minimum(arrival.astype(np.int64), span_days - 1)] >= 5
    prim = np.where(
        weekend_arrival,
        choice(rng, m.DEVICE_MIX_WEEKEND, nv),
        choice(rng, m.DEVICE_MIX_WEEKDAY, nv),
    )
    prim[spike] = np.where(rng.random(int(spike.sum())) < m.SPIKE_MOBILE, 1, 0)
    country = choice(rng, m.COUNTRY_MIX, nv)
    pref_cat = choice(rng, m.CATEGORY_POPULARITY, nv)
    has_account = rng.random(nv) < m.HAS_ACCOUNT
    variant = plan.experiment.draw(rng, nv) if plan.experiment is not None else None

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
        src = np.where(first, first_source[idx], grouped_choice(rng, plan.source_cdf, ch))
        cart_email = ~first & cart_waiting[idx] & (rng.random(k) < m.ABANDONED_CART_EMAIL)
        src[cart_email] = plan.abandoned_cart_source
        ch[cart_email] = m.CHANNELS.index("email")
        # Device: mostly the visitor's own.
        dev = prim[idx].copy()
        other = ~first & (rng.random(k) < m.OTHER_DEVICE)
        dev[other] = choice(rng, m.DEVICE_MIX_WEEKDAY, int(other.sum()))
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
        if variant is not None:
            plan.experiment.apply(logit, ts, variant[idx])  # type: ignore[union-attr]
        # Country: on beginning checkout and giving shipping (the costs become visible).
        logit[:, 2:4] += m.COUNTRY_CHECKOUT_EFFECT[country[idx]][:, None]
        u = rng.random((k, 6))
        level = np.zeros(k, dtype=np.int64)
        for step in (0, 1):
            level += (level == step) & (u[:, step] < sigmoid(logit[:, step]))

        # Cart lines of carting sessions.
        carting = level >= 2
        n_lines = np.where(carting, 1 + rng.poisson(m.EXTRA_CART_LINES, k), 0)
        line_sess, _ = within(n_lines)
        from_pref = rng.random(len(line_sess)) < m.PREFERRED_CATEGORY
        line_cat = np.where(
            from_pref, pref_cat[idx][line_sess], choice(rng, m.CATEGORY_POPULARITY, len(line_sess))
        )
        product = grouped_choice(rng, cat.cdf, line_cat)
        qty = 1 + choice(rng, m.QUANTITY_MIX, len(line_sess))
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
        payment_type = choice(rng, m.PAYMENT_MIX, k)
        payment_failed = rng.random(k) < m.PAYMENT_FAILED
        logit[:, 3] += np.where(checkout_type == 2, m.CREATE_ACCOUNT_EFFECT, 0.0)
        logit[:, 4] += np.where(shipping == 0, m.FREE_SHIPPING_EFFECT, m.SHIPPING_COST_EFFECT)
        logit[:, 5] += np.where(payment_failed, m.PAYMENT_FAILED_EFFECT, 0.0)
        for step in (2, 3, 4, 5):
            level += (level == step) & (u[:, step] < sigmoid(logit[:, step]))

        # Planted incidents.
        for b, e, lvl, keep, d, c, co in plan.drops:
            hit = (ts >= b) & (ts < e) & (level >= lvl)
            if d >= 0:
                hit &= dev == d
            if c >= 0:
                hit &= ch == c
            if co >= 0:
                hit &= country[idx] == co
            stop = hit & (rng.random(k) >= keep)
            level[stop] = lvl - 1
            if lvl == 6:  # a payment that failed
                payment_failed |= stop
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
        nxt[later_day] = np.floor(nxt[later_day]) + hour_fraction(rng, int(later_day.sum()))
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
    if variant is not None:
        sessions["variant"] = variant[sessions["visitor"]]
    lines = {k: np.concatenate(v) for k, v in lines_out.items()}
    return sessions, lines, nv
