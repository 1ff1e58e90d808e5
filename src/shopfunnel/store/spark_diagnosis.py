"""The diagnosis's inputs on Apache Spark: the store's SQL of the diagnosis, in Spark SQL.

The diagnosis (:mod:`shopfunnel.diagnosis`) reads a store in four places, each a reduction
of the events; here each is computed on Spark by the same definition (ADR 0093, 0191):

- :func:`session_frame`: one row per session with its start, segment values, level (the
  furthest diagnosis step), orders and revenue — the sessions of
  :class:`shopfunnel.diagnosis.session_levels.SessionLevels`, which stay on Spark
  (:mod:`shopfunnel.diagnosis.spark_levels`: only grouped counts come back);
- :func:`order_counts`: orders, valued orders and revenue of a period
  (:func:`shopfunnel.diagnosis.order_value.order_value`);
- :func:`checkout_counts`: sessions of the window that entered checkout, per combination
  of steps reached and checkout properties
  (:func:`shopfunnel.diagnosis.checkout.checkout_counts`);
- :func:`feature_counts`: sessions per (feature, first step, level)
  (:func:`shopfunnel.diagnosis.correlation.feature_counts`).

The last two read the sessions the diagnosis compares (:meth:`SparkSessions.kept
<shopfunnel.diagnosis.spark_levels.SparkSessions.kept>`: the window's, without those the
incident scan's exclusion rules leave out).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import Column, DataFrame

CHECKOUT_EVENTS = ("begin_checkout", "add_shipping_info", "add_payment_info", "purchase")


def _window(df: DataFrame, t: Column, start: datetime | None, end: datetime | None) -> DataFrame:
    from pyspark.sql import functions as F

    from shopfunnel.store.spark import _us

    if start is not None:
        df = df.where(t >= F.lit(_us(start)))
    if end is not None:
        df = df.where(t < F.lit(_us(end)))
    return df


def _first_given(column: Column, t: Column) -> Column:
    """The column's value on the session's earliest event that has one, else '(none)'."""
    from pyspark.sql import functions as F

    return F.coalesce(F.min_by(column, F.when(column.isNotNull(), t)), F.lit("(none)"))


def session_frame(
    df: DataFrame,
    t: Column,
    step_events: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    properties: Sequence[str] = (),
) -> DataFrame:
    """Sessions of the events in ``[start, end)``, as the diagnosis's sessions table (a Spark
    DataFrame): ``session_id``, ``person_id``, ``started_us``, ``device``, ``channel``,
    ``campaign``, ``country``, one column per property, ``level``, ``orders``, ``revenue``."""
    from pyspark.sql import functions as F

    ev = _window(df.withColumn("__t", t), F.col("__t"), start, end)
    tt = F.col("__t")
    level = F.lit(0)
    for i, event in reversed(list(enumerate(step_events))):
        level = F.when(F.col("event") == event, F.lit(i + 1)).otherwise(level)
    props = [
        _first_given(F.get_json_object(F.col("properties"), _json_path(key)), tt).alias(key)
        for key in properties
    ]
    sessions = ev.groupBy("session_id").agg(
        F.min("person_id").alias("person_id"),
        F.min(tt).alias("started_us"),
        _first_given(F.col("device"), tt).alias("device"),
        _first_given(F.col("channel"), tt).alias("channel"),
        _first_given(F.col("utm_campaign"), tt).alias("campaign"),
        _first_given(F.col("country"), tt).alias("country"),
        *props,
        F.max(level).alias("level"),
    )
    orders = (
        ev.where(F.col("event") == "purchase")
        .groupBy(F.col("session_id").alias("__sid"))
        .agg(
            F.count_distinct("order_id").alias("orders"),
            F.sum("value").cast("double").alias("revenue"),
        )
    )
    return sessions.join(orders, sessions["session_id"].eqNullSafe(orders["__sid"]), "left").select(
        sessions["*"],
        F.coalesce(orders["orders"], F.lit(0)).cast("long").alias("orders"),
        F.coalesce(orders["revenue"], F.lit(0.0)).cast("double").alias("revenue"),
    )


def order_counts(
    df: DataFrame, t: Column, start: datetime, end: datetime
) -> tuple[int, int, float]:
    """``(orders, orders with a value, revenue)`` of the purchases in ``[start, end)``, an
    order being an ``order_id`` or, without one, a purchase event."""
    from pyspark.sql import functions as F

    ev = _window(df.where(F.col("event") == "purchase"), t, start, end)
    oid = F.coalesce(F.col("order_id"), F.concat(F.lit("event:"), F.col("event_id")))
    o = ev.groupBy(oid.alias("oid")).agg(
        F.count("value").alias("given"), F.sum("value").alias("value")
    )
    row = o.agg(
        F.count(F.lit(1)).alias("orders"),
        F.count(F.when(F.col("given") > 0, 1)).alias("valued"),
        F.coalesce(F.sum("value"), F.lit(0.0)).cast("double").alias("revenue"),
    ).collect()[0]
    return int(row["orders"]), int(row["valued"]), float(row["revenue"])


def checkout_counts(df: DataFrame, kept: DataFrame, failed_event: str) -> pd.DataFrame:
    """Kept sessions that entered checkout per combination of what
    :func:`shopfunnel.diagnosis.checkout.checkout_counts` groups by (its columns)."""
    from pyspark.sql import functions as F

    from shopfunnel.store.spark import _pandas

    kept = kept.select("session_id", F.col("device").alias("__device"))
    ev = (
        df.where(F.col("event").isin(*CHECKOUT_EVENTS, failed_event))
        .drop("device")
        .join(kept, "session_id")
    )
    e = F.col("event")
    flag = F.get_json_object(F.col("properties"), "$.payment_failed")
    failed = ((e == "add_payment_info") & (flag == "true")) | (e == failed_event)
    ctype = F.get_json_object(F.col("properties"), "$.checkout_type")
    cost = F.get_json_object(F.col("properties"), "$.shipping_cost").try_cast("double")
    t = F.col("ts")
    rows = (
        ev.groupBy("session_id", F.col("__device").alias("device"))
        .agg(
            F.bool_or(e.isin(*CHECKOUT_EVENTS[:3], failed_event, "purchase")).alias("checkout"),
            F.bool_or(
                e.isin("add_shipping_info", "add_payment_info", failed_event, "purchase")
            ).alias("shipping"),
            F.bool_or(e.isin("add_payment_info", failed_event, "purchase")).alias("payment"),
            F.bool_or(e == "purchase").alias("purchase"),
            F.bool_or(F.when(e.isin("add_payment_info", failed_event), failed)).alias(
                "payment_failed"
            ),
            F.min_by(ctype, F.when((e == "begin_checkout") & ctype.isNotNull(), t)).alias(
                "checkout_type"
            ),
            F.max(F.when(e == "add_shipping_info", cost)).alias("shipping_cost"),
            F.bool_or(e.isin(*CHECKOUT_EVENTS[:3], failed_event)).alias("__entered"),
        )
        .where(F.col("__entered"))
    )
    counts = rows.groupBy(
        "device",
        "checkout",
        "shipping",
        "payment",
        "purchase",
        "payment_failed",
        "checkout_type",
        (F.col("shipping_cost") > 0).alias("shown_cost"),
    ).agg(F.count(F.lit(1)).alias("sessions"))
    return _pandas(counts.orderBy(*counts.columns), times=[])


def feature_counts(
    df: DataFrame, kept: DataFrame, step_events: Sequence[str], max_values: int
) -> pd.DataFrame:
    """Sessions per (``kind``, ``key``, ``value``, ``first_step``, ``level``) among the kept
    sessions: the events that are not steps (``kind`` event) and the properties whose key
    has at most ``max_values`` values (``kind`` property), by the earliest step index of the
    events carrying them — :func:`shopfunnel.diagnosis.correlation.feature_counts`."""
    from pyspark.sql import functions as F

    from shopfunnel.store.spark import _pandas

    kept = kept.select("session_id", "level")
    step_idx = F.lit(0)
    for i, event in reversed(list(enumerate(step_events))):
        step_idx = F.when(F.col("event") == event, F.lit(i + 1)).otherwise(step_idx)
    ev = (
        df.where(F.col("properties").isNotNull() | (F.col("event") != "page_view"))
        .join(kept, "session_id")
        .select("session_id", "level", "event", step_idx.alias("step_idx"), "properties")
    )
    as_map = F.from_json(F.col("properties"), "map<string,string>")
    props = ev.where(F.col("properties").isNotNull() & as_map.isNotNull()).select(
        "session_id", "level", "step_idx", F.explode(as_map).alias("key", "value")
    )
    low_card = (
        props.groupBy("key")
        .agg(F.count_distinct("value").alias("__n"))
        .where(F.col("__n") <= max_values)
        .select("key")
    )
    events = (
        ev.where((F.col("step_idx") == 0) & (F.col("event") != "page_view"))
        .groupBy("session_id", "level", F.col("event").alias("key"))
        .agg(F.min("step_idx").alias("first_step"))
        .select(
            "session_id",
            "level",
            F.lit("event").alias("kind"),
            "key",
            F.lit(None).cast("string").alias("value"),
            "first_step",
        )
    )
    properties = (
        props.join(F.broadcast(low_card), "key")
        .where(F.col("value").isNotNull())
        .groupBy("session_id", "level", "key", "value")
        .agg(F.min("step_idx").alias("first_step"))
        .select(
            "session_id", "level", F.lit("property").alias("kind"), "key", "value", "first_step"
        )
    )
    feat = events.unionByName(properties)
    counts = feat.groupBy("kind", "key", "value", "first_step", "level").agg(
        F.count(F.lit(1)).alias("sessions")
    )
    return _pandas(counts, times=[])


def _json_path(key: str) -> str:
    """A Spark JSON path to the top-level ``key`` (bracket form: dots and quotes in keys)."""
    return "$['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"
