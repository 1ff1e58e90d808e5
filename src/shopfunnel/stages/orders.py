"""A person's orders in a lookback period, as the stage model reads them.

An *order* is a distinct ``order_id`` among ``purchase`` events (a purchase without an order
id is an order of its own); its time and value are those of its first purchase event, and it
belongs to the person of that event (as in the store's ``orders`` view). :func:`order_rows`
gives one row per order (by SQL over the purchases kept beside the timeline);
:func:`order_stats` the count, revenue and first and last order time of each person
(:mod:`shopfunnel.stages.placement` applies the rules to them).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from shopfunnel.stages.person_facts import micros
from shopfunnel.stages.status import NEVER
from shopfunnel.store import cache
from shopfunnel.store.db import quote_literal
from shopfunnel.store.store import Store

ORDER_EVENT = "purchase"  # the event that is an order


def order_rows(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per order in the period: person (and ``hash(person_id)``), time, value, its
    number n for the person, and the gap since the person's previous order (microseconds,
    empty for the first). Events on Spark give the same rows as a Spark DataFrame
    (:meth:`shopfunnel.store.spark.SparkEvents.order_frame`)."""
    # the purchase events (a few per thousand events) are kept beside the timeline
    # (store/cache.py): the query below then reads them, not every event
    purchases = cache.query(
        store,
        "purchases",
        "SELECT order_id, event_id, person_id, ts, value FROM events "
        f"WHERE event = {quote_literal(ORDER_EVENT)}",
    )
    name = "__sf_purchases"
    store.db.register(name, purchases)
    try:
        return store.db.df(
            f"""
            WITH o AS (
                SELECT coalesce(order_id, 'event:' || event_id) AS oid,
                       arg_min(person_id, struct_pack(t := ts, id := event_id)) AS person_id,
                       min(ts) AS ts,
                       coalesce(CAST(arg_min(value, struct_pack(t := ts, id := event_id))
                                     AS DOUBLE), 0) AS value
                FROM {name} WHERE ts > ? AND ts <= ?
                GROUP BY oid
            )
            SELECT person_id, hash(person_id) AS h, ts, value,
                   row_number() OVER w AS n,
                   epoch_us(ts) - epoch_us(lag(ts) OVER w) AS gap_us
            FROM o WINDOW w AS (PARTITION BY person_id ORDER BY ts, oid)
            """,
            [start, end],
        )
    finally:
        store.db.unregister(name)


def order_stats(
    orders: pd.DataFrame, o_rows: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per person: order count, revenue, first and last order time (µs; ``NEVER`` if none)."""
    o_ts = micros(orders["ts"])
    n_orders = np.bincount(o_rows, minlength=n).astype(np.int64)
    revenue = np.bincount(o_rows, weights=orders["value"].to_numpy(dtype=float), minlength=n)
    first_order = np.full(n, NEVER, dtype=np.int64)
    last_order = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first_order, o_rows, o_ts)
    np.maximum.at(last_order, o_rows, o_ts)
    last_order[n_orders == 0] = NEVER
    return n_orders, revenue, first_order, last_order
