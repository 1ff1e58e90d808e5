"""What the store holds, as small tables every face shows: activity by day, the latest
events, the best customers, the currency, revenue, the last event's time.

These are the only SQL the faces need; they call these functions and lay out the result.
Every value is bound as a parameter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from shopfunnel.store.store import Store


def daily_activity(store: Store) -> pd.DataFrame:
    """Per UTC day from the first to the last event (days without events included, as 0):
    events, distinct sessions, distinct persons, orders (distinct purchase order ids) and
    revenue (sum of purchase values).

    Events, sessions and persons come from the pass over the timeline of
    :mod:`shopfunnel.store.counts` when it can serve (shared with :meth:`Store.info`),
    orders and revenue from the purchases; else everything from one SQL query (the
    reference). Events on Spark (:class:`shopfunnel.store.spark.SparkEvents`): the same
    table from Spark SQL."""
    from shopfunnel.store import counts

    if getattr(store, "on_spark", False):
        return spark_events(store).daily_activity()
    found = counts.of_store(store)
    if found is not None:
        return _daily_from_counts(store, found)
    return daily_activity_sql(store)


def _daily_from_counts(store: Store, found: Any) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    n = len(found.events_per_day)
    days = (np.arange(n, dtype=np.int64) + found.first_day).astype("datetime64[D]")
    out = pd.DataFrame(
        {
            "day": days.astype("datetime64[us]"),
            "events": found.events_per_day,
            "sessions": found.sessions_per_day,
            "persons": found.persons_per_day,
        }
    )
    bought = store.db.df(
        """
        SELECT CAST(ts AS DATE) AS day, count(DISTINCT order_id) AS orders,
               coalesce(sum(value), 0) AS revenue
        FROM events WHERE event = 'purchase' AND ts IS NOT NULL GROUP BY 1
        """
    )
    at = bought["day"].to_numpy().astype("datetime64[D]").astype(np.int64) - found.first_day
    orders = np.zeros(n, dtype=np.int64)
    revenue = np.zeros(n, dtype=np.float64)
    orders[at] = bought["orders"].to_numpy(dtype=np.int64)
    revenue[at] = bought["revenue"].to_numpy(dtype=np.float64)
    out["orders"] = orders
    out["revenue"] = revenue
    return out


def daily_activity_sql(store: Store) -> pd.DataFrame:
    """:func:`daily_activity` by one SQL query over the events (the reference)."""
    return store.db.df(
        """
        WITH per_day AS (
            SELECT CAST(ts AS DATE) AS day, count(*) AS events,
                   count(DISTINCT session_id) AS sessions, count(DISTINCT person_id) AS persons,
                   count(DISTINCT order_id) FILTER (WHERE event = 'purchase') AS orders,
                   coalesce(sum(value) FILTER (WHERE event = 'purchase'), 0) AS revenue
            FROM events GROUP BY 1
        ), days AS (
            SELECT CAST(unnest(generate_series(min(day), max(day), INTERVAL 1 DAY)) AS DATE) AS day
            FROM per_day
        )
        SELECT days.day, coalesce(events, 0) AS events, coalesce(sessions, 0) AS sessions,
               coalesce(persons, 0) AS persons, coalesce(orders, 0) AS orders,
               coalesce(revenue, 0) AS revenue
        FROM days LEFT JOIN per_day USING (day) ORDER BY days.day
        """
    )


def main_currency(store: Store) -> str:
    """The currency most orders are in ('' when orders carry none)."""
    return store.db.scalar("SELECT mode(currency) FROM orders WHERE currency IS NOT NULL") or ""


def revenue(store: Store) -> float | None:
    """The sum of order values (None when no order carries a value)."""
    value = store.db.scalar("SELECT sum(value) FROM orders")
    return None if value is None else float(value)


def last_event_time(store: Store) -> Any:
    """The time of the latest event (None for an empty store)."""
    if getattr(store, "on_spark", False):  # shopfunnel.store.spark.SparkEvents
        return spark_events(store).latest_event_time()
    return store.db.scalar("SELECT max(ts) FROM events")


def has_event(store: Store, name: str) -> bool:
    """Whether the store holds at least one event called ``name``."""
    if getattr(store, "on_spark", False):
        return name in spark_events(store).event_names()
    return (
        store.db.scalar(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE event = ? LIMIT 1)", [name]
        )
        == 1
    )


def event_count(store: Store) -> int:
    """How many events the store holds."""
    if getattr(store, "on_spark", False):
        return int(spark_events(store).df.count())
    return int(store.db.scalar("SELECT count(*) FROM events") or 0)


def orders(store: Store) -> pd.DataFrame:
    """The store's ``orders`` view, as :meth:`Store.table` gives it (the same rows, in no
    particular order as the view's; decimals as float64, as DuckDB hands them to pandas),
    read through the copy kept beside the timeline (:mod:`shopfunnel.store.cache`): at 10M
    events a few milliseconds instead of a cold scan of the events. Events on Spark: the
    orders their driver-side database keeps (:attr:`SparkEvents.db`)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from shopfunnel.store import cache

    if getattr(store, "on_spark", False):
        table = store.db.arrow("SELECT * FROM orders")
    else:
        table = cache.query(store, "orders", "SELECT * FROM orders")
    columns = {}
    for f in table.schema:
        values = table[f.name]
        if pa.types.is_decimal(f.type):
            columns[f.name] = pc.cast(values, pa.float64()).to_pandas()
        elif pa.types.is_string(f.type) and values.null_count == len(values):
            columns[f.name] = pd.Series([None] * len(values), dtype=object)  # as DuckDB's
        else:
            columns[f.name] = values.to_pandas()
    return pd.DataFrame(columns)


def person_ids(store: Store) -> pd.DataFrame:
    """Every person (``person_id``) with at least one event, sorted by id: from the person
    index beside the store's timeline when it is current, else by SQL (the same ids in the
    same order, so a listing built on them does not change with the path)."""
    import pandas as pd

    from shopfunnel.store import person_index

    index = person_index.of_store(store, build=False)
    if index is not None and len(index):
        return pd.DataFrame({"person_id": index.ids.to_pandas()})
    return store.db.df(
        "SELECT DISTINCT person_id FROM events WHERE person_id IS NOT NULL "
        "AND ts IS NOT NULL ORDER BY person_id"
    )


def recent_events(store: Store, limit: int) -> pd.DataFrame:
    """The latest ``limit`` events, newest first."""
    return store.db.df(
        "SELECT event_id, ts, event, person_id, anonymous_id, user_id, session_id, channel, "
        "page, order_id, value, currency, CAST(properties AS VARCHAR) AS properties "
        "FROM events ORDER BY ts DESC, event_id LIMIT ?",
        [limit],
    )


def top_persons(store: Store, limit: int) -> pd.DataFrame:
    """Persons with their first and last visit, sessions, orders and revenue, best
    customers first."""
    return store.db.df(
        "SELECT * FROM persons ORDER BY revenue DESC, last_seen DESC, person_id LIMIT ?",
        [limit],
    )


def spark_events(store: object) -> Any:
    """``store`` as :class:`shopfunnel.store.spark.SparkEvents`, for code that has checked
    ``store.on_spark`` and calls the Spark reads a :class:`Store` does not have."""
    return store
