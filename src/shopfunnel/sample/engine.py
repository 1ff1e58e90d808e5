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

from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel.errors import ConfigError
from shopfunnel.sample import model as m
from shopfunnel.sample.catalogue import catalogue, page_offsets
from shopfunnel.sample.draws import within
from shopfunnel.sample.events import (
    BEGIN,
    CART,
    EVENTS,
    LIST,
    PAY,
    PROP_OFF,
    PROPS,
    PURCHASE,
    REFUND,
    REFUND_REASONS,
    REMOVE,
    SELECT,
    SHIP,
    US_PER_DAY,
    VIEW,
    VIEW_CART,
    WISH,
    expand,
)
from shopfunnel.sample.experiment import count_exposures
from shopfunnel.sample.plan import Plan, make_plan
from shopfunnel.sample.programs import apply_programs
from shopfunnel.sample.sessions import simulate_sessions
from shopfunnel.store import schema

__all__ = ["iter_blocks", "make_plan", "simulate_block"]


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
    s, lines, _ = simulate_sessions(plan, rng)
    w0, w1 = plan.window
    keep = (s["start"] >= w0 - 0.1) & (s["start"] < w1)
    line_keep = np.repeat(keep, s["lines"])
    s = {k: v[keep] for k, v in s.items()}
    lines = {k: v[line_keep] for k, v in lines.items()}
    ev = expand(plan, rng, s, lines)

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
    table = _to_arrow(plan, block, s, lines, ev, sel, local_id)
    if plan.experiment is not None:
        table = plan.experiment.exposures(table, s, ev["sess"][sel])
    return table


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
    dev = s["device"][sess]
    is_refund = etype == REFUND
    is_purchase = etype == PURCHASE

    # Identifiers: built once per session, then taken per event.
    n_sessions = len(s["level"])
    visitor_global = s["visitor"] + block * 1_000_000
    anon_s = pc.binary_join_element_wise(
        _ids(f"a{seed}-", visitor_global),
        pc.take(
            pa.array(["", "-desktop", "-mobile", "-tablet"]),
            pa.array(np.where(s["device"] == s["prim"], 0, s["device"] + 1)),
        ),
        "",
    )
    user_s = _ids(f"u{seed}-", visitor_global)
    session_s = _ids(f"s{seed}-", visitor_global, "-", s["number"])
    order_s = _ids(f"o{seed}-", visitor_global, "-", s["number"])
    event_id = _ids(f"e{seed}.{plan.tag}-{block}-", local_id)
    anonymous_id = pc.take(anon_s, pa.array(sess))
    user_valid = s["logged_in"][sess] | is_purchase | is_refund
    user_id = pc.take(user_s, pa.array(sess, mask=~user_valid))
    order_id = pc.take(order_s, pa.array(sess, mask=~(is_purchase | is_refund)))
    refund_sess = sess[is_refund]
    refund_keys = pc.binary_join_element_wise(
        pc.take(session_s, pa.array(refund_sess)), "-refund", ""
    )
    session_idx = sess.copy()
    session_idx[is_refund] = n_sessions + np.arange(len(refund_sess))
    session_id = pc.take(
        pa.concat_arrays([session_s, refund_keys.cast(pa.string())]), pa.array(session_idx)
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
    owner, j = within(item_len)
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
    collections, products, fixed = page_offsets()
    ev_product = ev["product"][sel]
    page = ev["page"][sel].copy()
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
    prop[b] = np.where(err[b] == 3, PROP_OFF["begin_error"], PROP_OFF["begin"]) + ctype[b]
    b = etype == SHIP
    prop[b] = np.where(err[b] == 4, PROP_OFF["ship_error"], PROP_OFF["ship"]) + ship[b]
    b = etype == PAY
    prop[b] = np.where(
        err[b] == 5,
        PROP_OFF["pay_error"] + ptype[b],
        PROP_OFF["pay"] + failed[b] * len(m.PAYMENT_TYPES) + ptype[b],
    )
    b = is_purchase
    prop[b] = (
        PROP_OFF["purchase"]
        + (ship[b] * len(m.PAYMENT_TYPES) + ptype[b]) * len(m.CHECKOUT_TYPES)
        + ctype[b]
    )
    b = is_refund
    prop[b] = PROP_OFF["refund"] + (s["visitor"][sess[b]] + s["number"][sess[b]]) % len(
        REFUND_REASONS
    )
    properties = pc.take(pa.array(PROPS, pa.string()), pa.array(prop, mask=prop < 0))

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
    columns = apply_programs(plan, block, s, ev, sel, columns)
    return pa.Table.from_arrays(list(columns.values()), schema=schema.ARROW_SCHEMA)


def iter_blocks(n_events: int, plan: Plan) -> Iterator[pa.Table]:
    """Blocks of events until exactly ``n_events`` rows have been produced."""
    remaining = int(n_events)
    block = 0
    empty_run = 0
    while remaining > 0:
        table = simulate_block(plan, block, limit=remaining)
        remaining -= table.num_rows - (count_exposures(table) if plan.experiment else 0)
        block += 1
        empty_run = empty_run + 1 if table.num_rows == 0 else 0
        if empty_run > 50:
            raise ConfigError("the sample produced no events: check --start and --days")
        if table.num_rows:
            yield table
