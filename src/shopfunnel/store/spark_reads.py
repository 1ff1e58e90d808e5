"""What the report and the audiences read from events on Spark, by the store's definitions:
the overview's counts and the daily activity (:mod:`shopfunnel.store.summary`), the shipping
per order (the free-shipping what-if), the persons seen, the orders at an instant, the
``abandoned`` rule and the members' profiles (:mod:`shopfunnel.audiences.evaluate`), in Spark
SQL (ADR 0166, 0167). :class:`SparkReads` is a part of
:class:`shopfunnel.store.spark.SparkEvents`; the small helpers at the end convert times and
small Spark results for every Spark module.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import Column, DataFrame, SparkSession


class SparkReads:
    """The reads of :class:`~shopfunnel.store.spark.SparkEvents` that the report and the
    audiences make (see the module docstring). Needs ``df`` (the canonical events),
    ``spark``, ``db`` (the driver's DuckDB) and ``_t()`` (the event time in µs)."""

    df: DataFrame
    spark: SparkSession
    db: Any
    _shipping: str | None = None

    def _t(self) -> Column:  # pragma: no cover - SparkEvents gives it
        raise NotImplementedError

    def info(self, *, timeline_pass: bool = False) -> dict[str, Any]:
        """:meth:`Store.info` in Spark SQL: events, persons, sessions, orders (distinct
        order ids of purchases), the first and last event (ISO text of naive UTC), events
        by name and sessions by channel (``unassigned`` for none). ``timeline_pass`` is
        accepted for the store's signature and ignored."""
        from pyspark.sql import functions as F

        t = self._t()
        purchase_id = F.when(F.col("event") == "purchase", F.col("order_id"))
        row = self.df.select(
            F.count(F.lit(1)).alias("events"),
            F.count_distinct("person_id").alias("persons"),
            F.count_distinct("session_id").alias("sessions"),
            F.count_distinct(purchase_id).alias("orders"),
            F.min(t).alias("first"),
            F.max(t).alias("last"),
        ).collect()[0]
        by_event = self.df.groupBy("event").count().collect()
        by_channel = (
            self.df.groupBy(F.coalesce("channel", F.lit("unassigned")).alias("c"))
            .agg(F.count_distinct("session_id").alias("n"))
            .collect()
        )
        return {
            "events": int(row["events"]),
            "persons": int(row["persons"]),
            "sessions": int(row["sessions"]),
            "orders": int(row["orders"] or 0),
            "first_event": None if row["first"] is None else _naive(row["first"]).isoformat(),
            "last_event": None if row["last"] is None else _naive(row["last"]).isoformat(),
            "events_by_name": _by_count_desc((r["event"], r["count"]) for r in by_event),
            "sessions_by_channel": _by_count_desc((r["c"], r["n"]) for r in by_channel),
        }

    def daily_activity(self) -> pd.DataFrame:
        """:func:`shopfunnel.store.summary.daily_activity` in Spark SQL: per UTC day from
        the first to the last event (days without events as 0) events, distinct sessions,
        distinct persons, orders (distinct purchase order ids) and revenue (sum of
        purchase values)."""
        import numpy as np
        import pandas as pd
        from pyspark.sql import functions as F

        purchase = F.col("event") == "purchase"
        day = F.to_date(F.timestamp_micros(self._t()))
        per_day = (
            self.df.groupBy(day.alias("day"))
            .agg(
                F.count(F.lit(1)).alias("events"),
                F.count_distinct("session_id").alias("sessions"),
                F.count_distinct("person_id").alias("persons"),
                F.count_distinct(F.when(purchase, F.col("order_id"))).alias("orders"),
                F.coalesce(F.sum(F.when(purchase, F.col("value"))), F.lit(0.0))
                .cast("double")
                .alias("revenue"),
            )
            .where(F.col("day").isNotNull())
            .toArrow()
            .to_pandas()
        )
        columns = ["day", "events", "sessions", "persons", "orders", "revenue"]
        if per_day.empty:
            return pd.DataFrame(columns=columns)
        per_day["day"] = pd.to_datetime(per_day["day"]).astype("datetime64[us]")
        days = pd.date_range(per_day["day"].min(), per_day["day"].max(), freq="D")
        out = per_day.set_index("day").reindex(days.astype("datetime64[us]"))
        out.index.name = "day"
        out = out.reset_index()
        for col in ("events", "sessions", "persons", "orders"):
            out[col] = out[col].fillna(0).to_numpy(dtype=np.int64)
        out["revenue"] = out["revenue"].fillna(0.0).astype(np.float64)
        return out[columns]

    def order_shipping(self) -> pd.DataFrame:
        """Per order id with a purchase: the largest ``properties.shipping`` its purchase
        events carry as a number (None when none does) — what
        :func:`shopfunnel.diagnosis.whatif.free_shipping` reads from the store's events
        (``TRY_CAST(json_extract_string(properties, '$.shipping') AS DOUBLE)``)."""
        from pyspark.sql import functions as F

        shipping = F.expr("try_cast(get_json_object(properties, '$.shipping') AS DOUBLE)")
        return _pandas(
            self.df.where((F.col("event") == "purchase") & F.col("order_id").isNotNull())
            .groupBy("order_id")
            .agg(F.max(shipping).alias("shipping")),
            times=[],
        )

    def order_shipping_table(self) -> str:
        """The name of a table in :attr:`db` holding :meth:`order_shipping` (made once)."""
        if self._shipping is None:
            self.db.register("__sf_shipping", self.order_shipping())
            self.db.execute("CREATE TABLE order_shipping AS SELECT * FROM __sf_shipping")
            self.db.unregister("__sf_shipping")
            self._shipping = "order_shipping"
        return self._shipping

    # -- what the audiences read (shopfunnel.audiences.evaluate) -----------------------------
    def persons_seen(self, as_of: Any) -> pd.DataFrame:
        """Persons with an event at or before ``as_of`` (``person_id``)."""
        return _pandas(
            self.df.where(self._t() <= _us(as_of)).select("person_id").distinct(), times=[]
        )

    def orders_as_of(self, as_of: Any) -> pd.DataFrame:
        """:func:`shopfunnel.audiences.evaluate.orders_as_of` in Spark SQL: per order id of
        purchases at or before ``as_of``: ``person_id`` and ``ts`` of its first purchase
        event, ``value`` the sum of their values (0 for none), sorted by ``order_id``."""
        from pyspark.sql import functions as F

        rows = self.df.withColumn("__t", self._t()).where(
            (F.col("event") == "purchase")
            & F.col("order_id").isNotNull()
            & (F.col("__t") <= _us(as_of))
        )
        orders = rows.groupBy("order_id").agg(
            F.min_by("person_id", "__t").alias("person_id"),
            F.min("__t").alias("ts"),
            F.coalesce(F.sum(F.col("value").cast("double")), F.lit(0.0)).alias("value"),
        )
        frame = _pandas(orders, times=["ts"])
        return frame.sort_values("order_id", kind="stable").reset_index(drop=True)

    def abandoned(
        self, did: list[str], without: list[str], start: Any, as_of: Any, ripe: Any
    ) -> pd.DataFrame:
        """The ``abandoned`` rule in Spark SQL (:mod:`shopfunnel.audiences.evaluate`): per
        person the latest event named in ``did`` in ``[start, as_of]`` at time *t*, kept
        when ``t <= ripe`` and no event named in ``without`` lies in ``[t, as_of]``
        (``person_id``)."""
        from pyspark.sql import functions as F

        events = self.df.withColumn("__t", self._t())
        end = _us(as_of)
        latest = (
            events.where(
                F.col("event").isin(list(did))
                & (F.col("__t") >= _us_ceil(start))
                & (F.col("__t") <= end)
            )
            .groupBy("person_id")
            .agg(F.max("__t").alias("t"))
            .where(F.col("t") <= _us(ripe))
        )
        after = events.where(F.col("event").isin(list(without)) & (F.col("__t") <= end)).select(
            F.col("person_id").alias("__p"), F.col("__t").alias("__e")
        )
        kept = latest.join(
            after,
            (latest["person_id"] == after["__p"]) & (after["__e"] >= latest["t"]),
            "left_anti",
        )
        return _pandas(kept.select("person_id"), times=[])

    def profiles(self, person_ids: list[str], as_of: Any) -> pd.DataFrame:
        """:func:`shopfunnel.audiences.lists.profiles`' rows in Spark SQL for the persons
        found: ``person_id``, ``first_seen``, ``last_seen``, ``orders`` (distinct order ids
        of purchases) and ``revenue`` (sum of purchase values) from their events at or
        before ``as_of``. The ids go to Spark as a broadcast table."""
        import pandas as pd
        from pyspark.sql import functions as F
        from pyspark.sql.types import StringType, StructField, StructType

        ids = self.spark.createDataFrame(
            [(str(p),) for p in person_ids], StructType([StructField("person_id", StringType())])
        )
        purchase = F.col("event") == "purchase"
        rows = (
            self.df.withColumn("__t", self._t())
            .where(F.col("__t") <= _us(as_of))
            .join(F.broadcast(ids), "person_id")
            .groupBy("person_id")
            .agg(
                F.min("__t").alias("first_seen"),
                F.max("__t").alias("last_seen"),
                F.count_distinct(F.when(purchase, F.col("order_id"))).alias("orders"),
                F.coalesce(
                    F.sum(F.when(purchase, F.col("value").cast("double"))), F.lit(0.0)
                ).alias("revenue"),
            )
        )
        found = _pandas(rows, times=["first_seen", "last_seen"])
        return found if len(found) else pd.DataFrame(columns=found.columns)


def _by_count_desc(pairs: Any) -> dict[str, int]:
    """``(key, count)`` pairs as a dict, largest count first (ties by key)."""
    return {k: int(v) for k, v in sorted(pairs, key=lambda kv: (-int(kv[1]), str(kv[0])))}


def _us(value: datetime) -> int:
    import pandas as pd

    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value // 1000)


def _us_ceil(value: datetime) -> int:
    """``value`` in µs rounded up: ``t >= _us_ceil(v)`` for a time ``t`` in µs is ``t >= v``
    even when ``v`` has nanoseconds."""
    import pandas as pd

    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(-(-ts.value // 1000))


def _naive(us: int) -> datetime:
    import pandas as pd

    return pd.Timestamp(int(us), unit="us").to_pydatetime()


def arrow_rows(df: DataFrame) -> Any:
    """A result that grows with the persons or sessions, as an Arrow table in this process,
    without every row held at once in the Spark driver's heap (ADR 0187): Spark writes it as
    Parquet to a temporary folder in the Spark cache dir, pyarrow reads it back and the
    folder is removed. That needs a folder the executors write and this process reads: a
    local master, or ``SHOPFUNNEL_SPARK_CACHE`` set (on a cluster, a path every node sees,
    docs/spark.md). Otherwise, or with the cache off or on a URL, ``toArrow()`` (the
    driver's heap holds the rows).

    At 100M events the diagnosis's 20.7M session rows through ``toArrow()`` ran a 4g local
    driver out of heap in the thread that gathers task results, and the job then waited
    for ever."""
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from shopfunnel.store.spark_cache import default_cache_dir

    root = default_cache_dir()
    if root is None or "://" in str(root) or not _shared_dir(df):
        return df.toArrow()
    root.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="rows-", dir=root)
    try:
        df.write.mode("overwrite").parquet(folder)
        table = pq.read_table(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return table.select(df.columns)


def _shared_dir(df: DataFrame) -> bool:
    """Whether the executors write where this process reads: a local master, or a cache dir
    the user named (``SHOPFUNNEL_SPARK_CACHE``: on a cluster, a path every node sees)."""
    import os

    from shopfunnel.store.spark_cache import ENV

    if os.environ.get(ENV):
        return True
    try:
        return str(df.sparkSession.conf.get("spark.master", "")).startswith("local")
    except Exception:  # Spark Connect may not say: the driver collects
        return False


def _pandas(df: DataFrame, times: list[str] | None = None, *, large: bool = False) -> pd.DataFrame:
    """A Spark result as pandas; integer µs columns named in ``times`` (default: any
    column named ts, first_seen or last_seen) become naive UTC timestamps. ``large``: one
    row per person or session, read through :func:`arrow_rows`."""
    import numpy as np

    frame = (arrow_rows(df) if large else df.toArrow()).to_pandas()
    for col in times if times is not None else ("ts", "first_seen", "last_seen"):
        if col in frame.columns and not str(frame[col].dtype).startswith("datetime"):
            values = frame[col].to_numpy(dtype="float64", na_value=np.nan)
            frame[col] = _datetime_us(values)
    return frame


def _datetime_us(values: Any) -> Any:
    """Float µs (NaN for none) → naive datetime64[us] (NaT for none)."""
    import numpy as np

    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[us]")
    ok = ~np.isnan(values)
    out[ok] = values[ok].astype(np.int64).astype("datetime64[us]")
    return out
