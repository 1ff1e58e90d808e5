"""The store's load rules on Apache Spark: the same persons, sessions and channels.

The session, the sources and the events with their compact tables are in
:mod:`shopfunnel.store.spark`.

A store derives values as it loads events (:mod:`shopfunnel.store.store`); Spark reading
the raw files must derive the same ones, or the two engines count different persons.
:func:`canonical_events` applies each rule of the store to a Spark DataFrame of canonical
events, in the store's order:

1. ``anonymous_id`` falls back to ``user_id``;
2. duplicates go: rows sharing an ``event_id`` count once (rows without one count once
   per distinct row, as the store's row hash makes them one event);
3. sessions: a row without ``session_id`` belongs to its anonymous id's session that had
   an event at most ``session_timeout`` before it (the same gap rule and the same id,
   ``anonymous_id:epoch-µs of the session's first event``);
4. channels: a row without ``channel`` takes its session's first event's channel, given or
   derived from UTM values, referrer and page by the store's own rules — which are computed
   by DuckDB on the driver over the distinct (source, medium, campaign, referrer host, page
   host) values, so Spark uses exactly the store's channel grouping, not a copy of it;
5. identity stitching: ``person_id`` is ``user_id`` when the event has one, else the
   earliest ``user_id`` seen with its anonymous id, else the anonymous id.

Where the store keeps "the first line" of duplicate event ids, a Parquet folder on Spark
has no line order: rows that share an event id but differ keep one of them, not
necessarily the first (identical duplicates, the usual case, are unaffected).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import InputError
from shopfunnel.store.channels import channel_sql

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

HOST_PATTERN = r"^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?([^/:?#@ ]+)"
UTM = ("utm_source", "utm_medium", "utm_campaign")


def canonical_events(df: DataFrame, *, session_timeout: str | float = "30m") -> DataFrame:
    """``df`` with ``person_id``, ``session_id`` and ``channel`` filled by the store's rules
    (see the module docstring). A ``person_id`` column already present is kept as is."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cols = set(df.columns)
    if "person_id" in cols:
        return df
    gap_us = int(round(parse_duration_seconds(session_timeout) * 1_000_000))
    for name in (
        "anonymous_id",
        "user_id",
        "session_id",
        "channel",
        "event_id",
        *UTM,
        "referrer",
        "page",
    ):
        if name not in cols:
            df = df.withColumn(name, F.lit(None).cast("string"))
    df = df.withColumn("anonymous_id", F.coalesce("anonymous_id", "user_id"))
    # which rules have work to do, from one scan of three columns: a raw file with every
    # session id, channel and distinct event id given (a collector's export) skips the
    # shuffles of full rows those rules need (the values are the same either way)
    missing = _missing(df)
    # the channel rules' value combinations, read from the raw rows (a few columns, one
    # scan): reading them after the windows below would run duplicates and sessions twice
    derived = _derived_channels(df) if missing["channel"] else None
    df = df.withColumn("__t", micros(df))
    # 2. one row per event id; rows without an id are one event per distinct row
    with_id = df.where(F.col("event_id").isNotNull())
    if _repeated_ids(with_id):
        with_id = with_id.dropDuplicates(["event_id"])
    if missing["event_id"]:
        df = with_id.unionByName(df.where(F.col("event_id").isNull()).dropDuplicates())
    else:
        df = with_id
    # 3. sessions for rows without one and 5. stitching's link: windows over one shuffle
    # by anonymous id; with every session given, the link alone: a small table joined
    derive_sessions = missing["session_id"] > 0
    df = _with_sessions_and_stitching(df, gap_us) if derive_sessions else _with_stitching(df)
    # 4. channels: the session's first event's, given or derived by the store's rules
    if derived is not None:
        df = _with_derived_channel(df, derived)
        first_channel = F.first(F.coalesce("channel", "__derived")).over(
            Window.partitionBy("session_id")
            .orderBy("__t")
            .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        )
        df = df.withColumn("channel", F.coalesce(F.col("channel"), first_channel))
    # 5. identity stitching
    df = df.withColumn("person_id", F.coalesce("user_id", "__stitched", "anonymous_id"))
    return df.drop("__t", "__new", "__sess", "__nosess", "__derived", "__stitched", "__key")


def _missing(df: DataFrame) -> dict[str, int]:
    """How many rows have no ``event_id``, ``session_id``, ``channel`` (one scan)."""
    from pyspark.sql import functions as F

    names = ("event_id", "session_id", "channel")
    row = df.select(*[F.count_if(F.col(n).isNull()).alias(n) for n in names]).first()
    if row is None:  # an aggregate always gives one row; say so to the type checker
        return dict.fromkeys(names, 0)
    return {n: int(row[n] or 0) for n in names}


def _repeated_ids(df: DataFrame) -> bool:
    """Whether two rows of ``df`` may share an ``event_id``: True when two ids have the
    same 64-bit hash (a shuffle of 8 bytes a row, not of the rows). A hash collision of
    distinct ids only sends the rows to the exact ``dropDuplicates``: never a wrong
    answer, just the slower path (about 1 in 4,000 at 100M distinct ids)."""
    from pyspark.sql import functions as F

    hashed = df.select(F.xxhash64("event_id").alias("h")).groupBy("h").count()
    return bool(hashed.where(F.col("count") > 1).limit(1).count())


# rows of the stitching table (anonymous ids seen with a user id) up to which it is
# broadcast to every task; above it the join shuffles the rows by anonymous id
BROADCAST_STITCHING = 2_000_000


def _with_stitching(df: DataFrame) -> DataFrame:
    """Add ``__stitched``: the earliest ``user_id`` seen with the row's anonymous id. The
    table of those links has one row per anonymous id with a user id (a few percent of the
    events); broadcast when it has at most :data:`BROADCAST_STITCHING` rows."""
    from pyspark.sql import functions as F

    links = (
        df.where(F.col("user_id").isNotNull())
        .groupBy("anonymous_id")
        .agg(F.min_by("user_id", "__t").alias("__stitched"))
        .withColumnRenamed("anonymous_id", "__key")
    )
    if links.count() <= BROADCAST_STITCHING:
        links = F.broadcast(links)
    return df.join(links, df["anonymous_id"] == links["__key"], "left")


def _with_sessions_and_stitching(df: DataFrame, gap_us: int) -> DataFrame:
    """Sessions from the inactivity gap for rows without one (3.) and identity
    stitching's link (5.): every window is keyed by anonymous_id first, so one shuffle by
    anonymous_id serves them all (the flag is a column so each window names it alike)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = df.withColumn("__nosess", F.col("session_id").isNull()).repartition("anonymous_id")
    per_anon = Window.partitionBy("anonymous_id", "__nosess").orderBy("__t")
    new = F.when((F.col("__t") - F.lag("__t").over(per_anon)) <= gap_us, 0).otherwise(1)
    df = df.withColumn("__new", new)
    df = df.withColumn(
        "__sess",
        F.when(
            F.col("__nosess"),
            F.sum("__new").over(per_anon.rowsBetween(Window.unboundedPreceding, Window.currentRow)),
        ),
    )
    # the earliest user_id seen with it (rows without a user_id have a null time, which
    # min_by skips)
    stitched = F.min_by("user_id", F.when(F.col("user_id").isNotNull(), F.col("__t")))
    df = df.withColumn("__stitched", stitched.over(Window.partitionBy("anonymous_id")))
    first_t = F.min("__t").over(Window.partitionBy("anonymous_id", "__nosess", "__sess"))
    return df.withColumn(
        "session_id",
        F.coalesce(
            F.col("session_id"), F.concat(F.col("anonymous_id"), F.lit(":"), first_t.cast("string"))
        ),
    )


def micros(df: DataFrame) -> Column:
    """``ts`` as integer µs since the epoch, whatever the session time zone."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    kind = df.schema["ts"].dataType
    if isinstance(kind, TimestampType):
        return F.unix_micros(F.col("ts"))
    if isinstance(kind, TimestampNTZType):
        return F.expr("timestampdiff(MICROSECOND, TIMESTAMP_NTZ'1970-01-01 00:00:00', ts)")
    raise InputError(
        f"the 'ts' column is {kind.simpleString()}, not a timestamp: "
        "load the events through a Store or cast ts to a timestamp"
    )


def _host(column: str) -> Column:
    from pyspark.sql import functions as F

    host = F.regexp_extract(F.lower(F.trim(F.coalesce(F.col(column), F.lit("")))), HOST_PATTERN, 1)
    return F.when(host == "", F.lit(None)).otherwise(host)


def _channel_keys(df: DataFrame) -> DataFrame:
    return df.withColumn("__ref_host", _host("referrer")).withColumn("__page_host", _host("page"))


KEYS = [*UTM, "__ref_host", "__page_host"]


def _derived_channels(df: DataFrame) -> DataFrame:
    """The store's channel for each distinct (UTM values, referrer host, page host) of
    ``df``: a small table (``__derived``), to broadcast.

    The rules run in DuckDB (:func:`shopfunnel.store.channels.channel_sql`) over the
    distinct value combinations, which are few (campaign × source × medium × host), and
    come back to Spark as a small table joined on those values. A combination only a
    dropped duplicate has is harmless: nothing joins to it."""
    import duckdb

    combos = _channel_keys(df).select(*KEYS).distinct().toArrow()
    con = duckdb.connect()
    try:
        con.register("combos", combos)
        derived = con.sql(
            f"SELECT *, {channel_sql('utm_source', 'utm_medium', 'utm_campaign', '__ref_host', '__page_host')}"
            " AS __derived FROM combos"
        ).to_arrow_table()
    finally:
        con.close()
    return df.sparkSession.createDataFrame(derived)


def _with_derived_channel(df: DataFrame, table: DataFrame) -> DataFrame:
    """Add ``__derived``: the channel the store's rules give each row's UTM values and
    hosts, from :func:`_derived_channels`' table."""
    from pyspark.sql import functions as F

    df = _channel_keys(df)
    cond = [df[k].eqNullSafe(table[k]) for k in KEYS]
    joined = df.join(F.broadcast(table), cond, "left")
    return joined.select(
        *[df[c] for c in df.columns if c not in ("__ref_host", "__page_host")], table["__derived"]
    )


def channel_rows(values: list[dict[str, Any]]) -> list[str]:
    """The store's channel for each dict of UTM values, referrer and page (for tests)."""
    import duckdb
    import pandas as pd

    frame = pd.DataFrame(values, columns=[*UTM, "referrer", "page"])
    con = duckdb.connect()
    try:
        con.register("v", frame)
        sql = channel_sql("utm_source", "utm_medium", "utm_campaign", "referrer", "page")
        return [r[0] for r in con.execute(f"SELECT {sql} FROM v").fetchall()]
    finally:
        con.close()
