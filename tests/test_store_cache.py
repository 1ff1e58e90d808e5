"""Query results kept beside the timeline are the store's answers, never a stale copy.

:mod:`shopfunnel.store.cache` keeps small results (the orders, the purchase events) in the
timeline's folder. On random logs (purchases and refunds with and without order ids,
values, currencies, ties in time) the orders read through it must equal the ``orders``
view, and the stage model's order rows read from the kept purchases must equal the SQL
over every event that defined them; after a load the copy is stale and read again.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.store import cache, summary
from shopfunnel.store import timeline as timeline_store
from shopfunnel.store.store import Store

T0 = datetime(2024, 3, 30, 20, 0)
_DIR = Path(tempfile.mkdtemp(prefix="sf-cache-"))
_SHARED: list[Store] = []

row = st.tuples(
    st.sampled_from(["p1", "p2", "p3"]),
    st.integers(0, 3 * 24 * 60),  # minutes after T0
    st.sampled_from(["page_view", "purchase", "purchase", "refund"]),
    st.sampled_from(["o1", "o2", "o3", None]),
    st.sampled_from([None, 10.5, 3.25, 99.99]),
    st.sampled_from(["EUR", "USD", None]),
)


def fresh(rows: list[tuple]) -> Store:
    """A store on disk holding ``rows``, with its timeline (and so its folder) built."""
    if not _SHARED:
        _SHARED.append(Store(str(_DIR / "store.duckdb")))
    s = _SHARED[0]
    frame = pd.DataFrame(
        [
            {
                "event_id": f"e{i}",
                "ts": T0 + timedelta(minutes=m),
                "event": ev,
                "anonymous_id": p,
                "person_id": p,
                "order_id": oid,
                "value": val,
                "currency": cur,
            }
            for i, (p, m, ev, oid, val, cur) in enumerate(rows)
        ]
    )
    s.db.execute("DELETE FROM events")
    s.db.register("__rows", frame)
    try:
        s.db.execute(
            "INSERT INTO events (event_id, ts, event, anonymous_id, person_id, order_id, "
            "value, currency) SELECT event_id, ts, event, anonymous_id, person_id, order_id, "
            "value, currency FROM __rows"
        )
    finally:
        s.db.unregister("__rows")
    s._bump_generation()
    timeline_store.of_store(s)
    return s


def by_id(frame: pd.DataFrame, *keys: str) -> pd.DataFrame:
    return frame.sort_values(list(keys)).reset_index(drop=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, min_size=1, max_size=25))
def test_orders_read_through_the_cache_equal_the_orders_view(rows) -> None:
    s = fresh(rows)
    want = by_id(s.table("orders"), "order_id")
    written = summary.orders(s)  # queried, and kept beside the timeline
    assert (timeline_store.folder_for(s.path) / "orders.arrow").exists()
    kept = summary.orders(s)  # read from the file
    pd.testing.assert_frame_equal(by_id(written, "order_id"), want)
    pd.testing.assert_frame_equal(by_id(kept, "order_id"), want)


def reference_order_rows(s: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """The stage model's order rows as they were defined: one SQL over every event."""
    return s.db.df(
        """
        WITH o AS (
            SELECT coalesce(order_id, 'event:' || event_id) AS oid,
                   arg_min(person_id, struct_pack(t := ts, id := event_id)) AS person_id,
                   min(ts) AS ts,
                   coalesce(CAST(arg_min(value, struct_pack(t := ts, id := event_id)) AS DOUBLE), 0)
                       AS value
            FROM events WHERE event = 'purchase' AND ts > ? AND ts <= ?
            GROUP BY oid
        )
        SELECT person_id, hash(person_id) AS h, ts, value,
               row_number() OVER w AS n,
               epoch_us(ts) - epoch_us(lag(ts) OVER w) AS gap_us
        FROM o WINDOW w AS (PARTITION BY person_id ORDER BY ts, oid)
        """,
        [start, end],
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(row, min_size=1, max_size=25),
    start_min=st.integers(-60, 2 * 24 * 60),
    length_min=st.integers(1, 4 * 24 * 60),
)
def test_stage_order_rows_from_the_kept_purchases_equal_the_sql_over_every_event(
    rows, start_min, length_min
) -> None:
    from shopfunnel.stages.orders import order_rows

    s = fresh(rows)
    start = T0 + timedelta(minutes=start_min)
    end = start + timedelta(minutes=length_min)
    want = by_id(reference_order_rows(s, start, end), "person_id", "n")
    for _ in range(2):  # queried and kept, then read from the file
        got = by_id(order_rows(s, start, end), "person_id", "n")
        pd.testing.assert_frame_equal(got, want)
    assert (timeline_store.folder_for(s.path) / "purchases.arrow").exists()


def test_a_load_leaves_the_kept_result_stale_and_it_is_read_again() -> None:
    s = fresh([("p1", 0, "purchase", "o1", 10.5, "EUR")])
    assert summary.orders(s)["order_id"].tolist() == ["o1"]
    s.db.execute(
        "INSERT INTO events (event_id, ts, event, anonymous_id, person_id, order_id, value) "
        "VALUES ('x', ?, 'purchase', 'p2', 'p2', 'o9', 5)",
        [T0],
    )
    s._bump_generation()
    assert sorted(summary.orders(s)["order_id"]) == ["o1", "o9"]


def test_an_in_memory_store_is_asked_every_time() -> None:
    s = Store(":memory:")
    got = cache.query(s, "orders", "SELECT count(*) AS n FROM events")
    assert got.column("n").to_pylist() == [0]
