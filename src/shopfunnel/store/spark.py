"""Events on Apache Spark: the session, the sources, and :class:`SparkEvents`, a store's events
with the store's persons, sessions and channels (:mod:`shopfunnel.store.spark_rules`), giving
the compact tables the analyses read from a Store, computed in Spark SQL.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopfunnel.errors import ConfigError, InputError
from shopfunnel.store.spark_reads import SparkReads, _naive, _pandas, _us
from shopfunnel.store.spark_rules import canonical_events, micros

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import Column, DataFrame, SparkSession


def local_spark_session(
    master: str = "local[*]",
    *,
    shuffle_partitions: int = 8,
    driver_memory: str = "4g",
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """A local SparkSession set up for shopfunnel: UTC session time zone, no UI, loopback
    address, workers on this Python (``PYSPARK_PYTHON``) importing this ``shopfunnel``.

    Sets ``PYSPARK_PYTHON`` and ``SPARK_LOCAL_IP`` in the environment when they are not
    set (Spark reads them when its JVM starts). Starting a session takes 15–30 s. When a
    session is already running in this process, that one is returned.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    package_root = str(Path(__file__).resolve().parents[2])
    worker_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    builder = (
        SparkSession.builder.master(master)
        .appName("shopfunnel")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.executorEnv.PYTHONPATH", worker_path)
        # one row per counted unit comes back to the driver: give it room
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.maxResultSize", "0")
        # a JVM out of heap stops (the command then says so, cli/engine.spark_died) instead
        # of living on with a dead thread while the job waits for ever (ADR 0187)
        .config("spark.driver.extraJavaOptions", "-XX:+ExitOnOutOfMemoryError")
        .config("spark.ui.showConsoleProgress", "false")
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    server = getattr(spark.sparkContext, "_accumulatorServer", None)
    if server is not None:
        quiet_when_jvm_gone(server)
    return spark


def quiet_when_jvm_gone(server: Any) -> None:
    """Keep PySpark's accumulator server (a socket server the JVM reports to) from printing
    a traceback when the JVM goes away (an ``EOFError`` or a lost connection): the command
    already says that Spark died and what to do (``cli/engine``). Any other error is
    printed as before."""
    printed = server.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], EOFError | ConnectionError):
            printed(request, client_address)

    server.handle_error = handle_error


def spark_session() -> SparkSession:
    """The SparkSession the command line uses, first match wins:

    1. ``SPARK_REMOTE`` set (``sc://host:15002``): a Spark Connect session to that server;
    2. run by ``spark-submit`` (or a session already active in this process, as in a
       notebook): that session, with its master and settings;
    3. otherwise a local session on ``SHOPFUNNEL_SPARK_MASTER`` (default ``local[*]``)
       with ``SHOPFUNNEL_SPARK_DRIVER_MEMORY`` (default ``4g``: in local mode the
       driver's JVM is also the executor), see :func:`local_spark_session`.

    The session time zone is set to UTC in every case (shopfunnel's periods are UTC days,
    weeks and months)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "--engine spark needs PySpark: pip install 'pyspark>=4' (and Java 17)"
        ) from exc
    remote = os.environ.get("SPARK_REMOTE")
    active = SparkSession.getActiveSession()
    if active is not None:
        spark = active
    elif remote:
        spark = SparkSession.builder.remote(remote).appName("shopfunnel").getOrCreate()
    elif os.environ.get("PYSPARK_GATEWAY_PORT"):  # started by spark-submit
        spark = SparkSession.builder.appName("shopfunnel").getOrCreate()
    else:
        spark = local_spark_session(
            os.environ.get("SHOPFUNNEL_SPARK_MASTER", "local[*]"),
            driver_memory=os.environ.get("SHOPFUNNEL_SPARK_DRIVER_MEMORY", "4g"),
        )
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def read_events(
    spark: SparkSession, *, events: str | None = None, table: str | None = None
) -> DataFrame:
    """Canonical events as a Spark DataFrame: Parquet at ``events`` (a file, a folder or a
    glob, local or ``s3://``…) or the catalog table ``table`` (Hive, Delta, Unity…)."""
    if (events is None) == (table is None):
        raise ConfigError(
            "give the events as --events PATH_OR_GLOB (Parquet) or --table NAME, not both"
        )
    if table is not None:
        return spark.table(table)
    assert events is not None
    if "://" not in events:
        import glob

        if not glob.glob(events):
            raise InputError(
                f"no Parquet file matches {events!r}: give a file, a folder or a "
                "glob such as 'events/*.parquet'"
            )
    return spark.read.parquet(events)


_MAYBE = ("order_id", "currency", "device", "value", "country", "utm_campaign", "properties")


class SparkEvents(SparkReads):
    """A store's events on Spark, with the store's persons, sessions and channels.

    ``source`` is a Spark DataFrame of canonical events (raw or already with ``person_id``)
    or the path/glob of Parquet files of them; ``spark`` is needed only for a path (default:
    :func:`spark_session`). The events get :func:`canonical_events` once and are kept
    (``persist``) for the analyses that follow. The methods give the tables the analyses
    read from a Store — the orders view, person ids, active periods and cohort counts, and,
    as Spark DataFrames that stay on the cluster, the stage placement's facts and orders
    (:mod:`shopfunnel.stages.spark_placement`) — computed in Spark SQL by the same
    definitions; events never come back to the driver. The analyses take a SparkEvents
    where they take a Store (``placement(events)``, ``store_activity_retention(events)``,
    ``funnel(events, steps)``).
    """

    on_spark = True  # what the analyses' hooks look for

    def __init__(
        self,
        source: Any,
        *,
        spark: SparkSession | None = None,
        session_timeout: str | float = "30m",
        persist: bool = True,
    ):
        from pyspark.sql import functions as F

        if isinstance(source, str | Path):
            spark = spark or spark_session()
            df = read_events(spark, events=str(source))
        elif hasattr(source, "sparkSession") and hasattr(source, "mapInArrow"):
            df = source
        else:
            raise InputError(
                f"SparkEvents reads a Spark DataFrame or a Parquet path, not a "
                f"{type(source).__name__}"
            )
        self.spark: SparkSession = df.sparkSession
        for needed in ("ts", "event"):
            if needed not in df.columns:
                raise InputError(
                    f"the events have no {needed!r} column; columns: {sorted(df.columns)}"
                )
        df = canonical_events(df, session_timeout=session_timeout)
        for name in _MAYBE:
            if name not in df.columns:
                df = df.withColumn(
                    name, F.lit(None).cast("double" if name == "value" else "string")
                )
        if "properties" in df.columns and dict(df.dtypes)["properties"] != "string":
            df = df.withColumn("properties", F.to_json("properties"))
        if persist:
            from pyspark import StorageLevel

            df = df.persist(StorageLevel.MEMORY_AND_DISK)
        self.df: DataFrame = df
        self._db: Any = None
        self._shipping: str | None = None

    def heavy_persons(self, min_events: int = 1_000_000) -> pd.DataFrame:
        """Persons with at least ``min_events`` events, most first (``person_id``,
        ``events``). They are counted exactly, but each one makes its partition the
        slowest: drop them (``SparkEvents(events.df.where(...))``) if they are not
        customers (docs/spark.md)."""
        return heavy_persons(self.df, None, min_events)

    def _t(self) -> Column:
        return micros(self.df)

    @property
    def db(self) -> Any:
        """An in-memory DuckDB on the driver (:class:`shopfunnel.store.db.Database`) for
        the compact tables the analyses keep there: it starts with the ``orders`` view's
        rows as a table ``orders`` (one row per order); the diagnosis finishes there the
        grouped counts of its sessions (:mod:`shopfunnel.diagnosis.spark_levels`). Events
        and sessions are not in it."""
        if self._db is None:
            from shopfunnel.store.db import Database

            db = Database(":memory:")
            db.register("__sf_orders", self.orders().toArrow())
            db.execute(
                "CREATE TABLE orders AS SELECT * REPLACE (make_timestamp(ts) AS ts) FROM __sf_orders"
            )
            db.unregister("__sf_orders")
            self._db = db
        return self._db

    def event_span(self) -> tuple[datetime | None, datetime | None]:
        """The times of the first and last events (naive UTC), None without events."""
        from pyspark.sql import functions as F

        row = self.df.select(F.min(self._t()).alias("a"), F.max(self._t()).alias("b")).collect()[0]
        return tuple(None if v is None else _naive(v) for v in (row["a"], row["b"]))  # type: ignore[return-value]

    def event_names(self) -> set[str]:
        """The distinct event names."""
        return {r[0] for r in self.df.select("event").distinct().collect()}

    def close(self) -> None:
        """Drop the cached events and the driver's DuckDB."""
        self.df.unpersist()
        if self._db is not None:
            self._db.close()
            self._db = None
            self._shipping = None

    def latest_event_time(self) -> datetime | None:
        """The time of the latest event (naive UTC), None without events."""
        from pyspark.sql import functions as F

        latest = self.df.select(F.max(self._t()).alias("t")).collect()[0]["t"]
        return None if latest is None else _naive(latest)

    def table(self, name: str) -> pd.DataFrame:
        """``orders`` or ``persons`` as :meth:`Store.table` gives them (the store's views,
        in Spark SQL)."""
        if name == "orders":
            return _pandas(self.orders())
        if name == "persons":
            return _pandas(self.persons())
        raise ConfigError(f"no derived table {name!r} on Spark: use orders or persons")

    def orders(self) -> DataFrame:
        """The store's ``orders`` view: one row per ``order_id`` with a purchase event."""
        from pyspark.sql import functions as F

        t = self._t()
        purchase = F.col("event") == "purchase"
        rows = self.df.where(
            F.col("order_id").isNotNull() & F.col("event").isin("purchase", "refund")
        ).withColumn("__t", t)
        return (
            rows.groupBy("order_id")
            .agg(
                F.min_by("person_id", "__t").alias("person_id"),
                F.min("__t").alias("ts"),
                F.sum(F.when(purchase, F.col("value"))).cast("double").alias("value"),
                F.min_by("currency", "__t").alias("currency"),
                F.min_by("channel", "__t").alias("channel"),
                F.min_by("device", "__t").alias("device"),
                F.coalesce(F.sum(F.when(F.col("event") == "refund", F.col("value"))), F.lit(0))
                .cast("double")
                .alias("refunded"),
                F.count(F.when(purchase, 1)).alias("__purchases"),
            )
            .where(F.col("__purchases") > 0)
            .drop("__purchases")
        )

    def persons(self) -> DataFrame:
        """One row per person: ``person_id``, ``first_seen``, ``last_seen``, ``events``."""
        from pyspark.sql import functions as F

        return self.df.groupBy("person_id").agg(
            F.min(self._t()).alias("first_seen"),
            F.max(self._t()).alias("last_seen"),
            F.count(F.lit(1)).alias("events"),
        )

    def person_ids(self) -> pd.DataFrame:
        """Every person (``person_id``) with at least one event."""
        return _pandas(self.df.select("person_id").distinct(), large=True)

    def person_count(self) -> int:
        """How many rows :meth:`person_ids` has, counted on Spark."""
        return int(self.df.select("person_id").distinct().count())

    def active_periods(self, period: str = "week") -> pd.DataFrame:
        """As :func:`shopfunnel.customers.retention.active_periods`: one row per person and
        UTC week (from Monday) or month with an event, ``person_id`` and ``ts`` (the
        period's first event)."""
        from pyspark.sql import functions as F

        if period not in ("week", "month"):
            raise ConfigError(f"period={period!r} is not valid: use week or month")
        start = F.date_trunc(period, F.timestamp_micros(self._t()))
        return _pandas(
            self.df.groupBy("person_id", start.alias("__p"))
            .agg(F.min(self._t()).alias("ts"))
            .drop("__p"),
            large=True,
        )

    def person_frame(
        self, stage_of_event: dict[str, int], start: datetime, end: datetime, visit_gap_s: float
    ) -> DataFrame:
        """The stage placement's facts of ``(start, end]`` as a Spark DataFrame, times in µs,
        one row per person with an event in the period: ``person_id``, ``first_ts``,
        ``last_event_at``, ``first_channel`` (the earliest event's up to ``end``, ties by
        event id), ``s{k}`` (the first event of stage k) and ``visits``, the visits that
        start with a return (a list of ``ts`` and ``gap_us``, the gap over ``visit_gap_s``
        since the person's previous event in the period). One shuffle of the events by
        person serves both: a window gives each event's gap, the aggregate the rest."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        s_us, e_us = _us(start), _us(end)
        df = self.df.withColumn("__t", self._t()).where(F.col("__t") <= e_us)
        t = F.col("__t")
        inside = t > s_us
        stage = F.lit(None).cast("int")
        for event, k in stage_of_event.items():
            stage = F.when(F.col("event") == event, F.lit(k)).otherwise(stage)
        # the previous event of the person (ties at one instant: one of them; the gap to
        # the other is 0, so exactly one event of an instant can start a visit)
        previous = F.lag(t).over(Window.partitionBy("person_id").orderBy(t))
        returning = (
            inside & (previous > s_us) & (t - previous > int(round(visit_gap_s * 1_000_000)))
        )
        rows = df.select(
            "person_id",
            "__t",
            "event",
            "event_id",
            "channel",
            returning.alias("__r"),
            (t - previous).alias("__gap"),
        )
        order_key = F.struct(t, F.col("event_id"))
        visit = F.struct(t.alias("ts"), F.col("__gap").alias("gap_us"))
        aggs = [
            F.min(F.when(inside, t)).alias("first_ts"),
            F.max(t).alias("last_event_at"),
            F.min_by("channel", order_key).alias("first_channel"),
        ]
        aggs += [
            F.min(F.when(inside & (stage == k), t)).alias(f"s{k}")
            for k in sorted(set(stage_of_event.values()))
        ]
        aggs.append(F.collect_list(F.when(F.col("__r"), visit)).alias("visits"))
        return (
            rows.groupBy("person_id")
            .agg(*aggs, F.count(F.when(inside, 1)).alias("__n"))
            .where(F.col("__n") > 0)
            .drop("__n")
        )

    def order_frame(self, start: datetime, end: datetime, order_event: str) -> DataFrame:
        """One row per order in ``(start, end]`` as a Spark DataFrame: ``person_id``, ``h``
        (0: rows are matched by id), ``ts`` (µs), ``value``, its number ``n`` for the person
        and ``gap_us`` since the person's previous order."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        df = self.df.withColumn("__t", self._t())
        df = df.where(
            (F.col("__t") > _us(start))
            & (F.col("__t") <= _us(end))
            & (F.col("event") == order_event)
        )
        order_key = F.struct(F.col("__t"), F.col("event_id"))
        oid = F.coalesce(F.col("order_id"), F.concat(F.lit("event:"), F.col("event_id")))
        o = df.groupBy(oid.alias("oid")).agg(
            F.min_by("person_id", order_key).alias("person_id"),
            F.min("__t").alias("ts"),
            F.coalesce(F.min_by("value", order_key).cast("double"), F.lit(0.0)).alias("value"),
        )
        w = Window.partitionBy("person_id").orderBy("ts", "oid")
        return o.select(
            "person_id",
            F.lit(0).cast("long").alias("h"),
            "ts",
            "value",
            F.row_number().over(w).alias("n"),
            (F.col("ts") - F.lag("ts").over(w)).alias("gap_us"),
        )

    def activity_counts(self, period: str) -> pd.DataFrame:
        """Persons by cohort (period of their first event) and period with an event:
        ``cohort``, ``p`` (period starts) and ``active`` — what
        :func:`shopfunnel.customers.retention.store_activity_retention` counts, aggregated
        on Spark (a few hundred rows reach the driver)."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        if period not in ("week", "month"):
            raise ConfigError(f"period={period!r} is not valid: use week or month")
        p = F.unix_micros(F.date_trunc(period, F.timestamp_micros(self._t())))
        pairs = self.df.select("person_id", p.alias("p")).where(F.col("p").isNotNull()).distinct()
        cohorts = pairs.withColumn("cohort", F.min("p").over(Window.partitionBy("person_id")))
        counts = cohorts.groupBy("cohort", "p").agg(F.count(F.lit(1)).alias("active"))
        return _pandas(counts, times=["cohort", "p"])


def heavy_persons(
    df: DataFrame, person: Column | None = None, min_events: int = 1_000_000
) -> pd.DataFrame:
    """Persons with at least ``min_events`` events (bots, shared devices), most first:
    ``person_id``, ``events``. ``person`` defaults to the ``person_id`` column."""
    import pandas as pd
    from pyspark.sql import functions as F

    person = F.col("person_id") if person is None else person
    heavy = (
        df.groupBy(person.alias("person_id"))
        .count()
        .where(F.col("count") >= min_events)
        .orderBy(F.col("count").desc())
        .toArrow()
    )
    return pd.DataFrame(
        {
            "person_id": heavy.column("person_id").to_pylist(),
            "events": heavy.column("count").to_pylist(),
        }
    )
