"""Everyone placed in a stage on Apache Spark, by the rules of
:mod:`shopfunnel.stages.placement`, with only small results coming back to the driver.

The embedded engine gathers one row per person in this process and applies the rules in
NumPy. On Spark the same rules run where the rows are (ADR 0188):

1. **Facts, per person** (one row each): the placement's facts of the period with the
   person's visits that start with a return as a list
   (:meth:`shopfunnel.store.spark.SparkEvents.person_frame`), and their orders' count, revenue, first and last time and
   the time of the N-th order for a ``min_orders`` stage, joined by ``person_id``. A
   ``mapInArrow`` pass computes, per batch of persons, the stage, the time it was entered,
   the stages the person moved on from and the return gap at each
   (:func:`shopfunnel.stages.status.furthest_stages`, :func:`~shopfunnel.stages.status.return_gaps`:
   the embedded engine's own functions). The result is kept (``persist``).
2. **Thresholds** (global): the movers per stage are a sum; the stalled and gone
   thresholds are quantiles of the return gaps, and the store's usual gap between orders a
   quantile of those gaps. A quantile needs two order statistics
   (:mod:`shopfunnel.stages.quantiles`); each is found exactly with three small histograms
   over the integer microseconds, for every stage, the pool and the orders together
   (:func:`shopfunnel.store.spark_ranks.order_statistics`), so the thresholds are the
   embedded engine's to the bit, and at most 65,536 rows reach the driver per histogram.
3. **Statuses, per person**: a second ``mapInArrow`` pass judges each person
   (:func:`shopfunnel.stages.judge.judge`) and builds their row of the persons table
   (:func:`shopfunnel.stages.judge.placed_persons`). Persons per stage and status (a
   few dozen rows) come back; the persons table stays a Spark DataFrame
   (:attr:`StagePlacement.frame`, judged again from the kept facts each time it is read: a
   NumPy pass costs less than keeping the table) until asked for, and then only the persons asked for
   (:func:`selected_persons`) come back, through :func:`shopfunnel.store.spark_reads.arrow_rows`.
   The stage flow between two dates is a join of two such frames on Spark
   (:func:`flow_counts`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel.model import Model
from shopfunnel.stages.gaps import StoreGap, store_gap
from shopfunnel.stages.judge import judge, placed_persons
from shopfunnel.stages.orders import ORDER_EVENT
from shopfunnel.stages.person_facts import PersonFacts, epoch_us
from shopfunnel.stages.persons_table import PERSON_COLUMNS
from shopfunnel.stages.placement import StagePlacement
from shopfunnel.stages.quantiles import RanksFound, ranks_needed
from shopfunnel.stages.status import (
    GONE,
    LAPSED,
    NEVER,
    furthest_stages,
    return_gaps,
    stage_thresholds,
)
from shopfunnel.store.spark_ranks import order_statistics

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

_US_PER_DAY = 86_400 * 1_000_000
_TIMES = ("entered_stage_at", "last_event_at", "last_order_at")


def spark_placement(events: Any, model: Model, lookback_s: float, end: datetime) -> StagePlacement:
    """:func:`shopfunnel.stages.placement.placement` at ``end`` for events on Spark
    (:class:`shopfunnel.store.spark.SparkEvents`); see the module docstring."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    rules = model.placement
    start = end - timedelta(seconds=lookback_s)
    end_us = epoch_us(end)
    n_stages = len(model.stages)
    base = events.person_frame(model.event_stage(), start, end, rules.visit_gap_seconds)
    # one row per order (a few per thousand events), read by the facts and the store's gap
    orders = events.order_frame(start, end, ORDER_EVENT).persist(StorageLevel.MEMORY_AND_DISK)
    nth = {k: s.min_orders for k, s in enumerate(model.stages) if s.min_orders is not None}
    per_person_orders = orders.groupBy("person_id").agg(
        F.count(F.lit(1)).alias("n_orders"),
        F.sum("value").alias("revenue"),
        F.min("ts").alias("first_order"),
        F.max("ts").alias("last_order"),
        *[
            F.min(F.when(F.col("n") == n, F.col("ts"))).alias(f"o{n}")
            for n in sorted(set(nth.values()))
        ],
    )
    stage_cols = [k for k in range(n_stages) if f"s{k}" in base.columns]
    rows = base.join(per_person_orders, "person_id", "left")
    facts = rows.mapInArrow(
        partial(_moves, n_stages=n_stages, stage_cols=stage_cols, nth=nth), _facts_schema(n_stages)
    ).persist(StorageLevel.MEMORY_AND_DISK)

    # every order's person has an event in the period, so a row in the facts
    thresholds, gap, gap_rows = _thresholds(facts, orders, model)
    stalled_at = thresholds["stalled_after_days"].to_numpy(dtype=float)
    gone_at = thresholds["gone_after_days"].to_numpy(dtype=float)
    placed = facts.mapInArrow(
        partial(
            _judge,
            model=model,
            gap=gap,
            end_us=end_us,
            stalled_at=stalled_at,
            gone_at=gone_at,
        ),
        _persons_schema(),
    )  # not kept: judging the kept facts again costs less than keeping the table
    tally = (
        placed.groupBy("stage_index", "status")
        .agg(F.count(F.lit(1)).alias("persons"))
        .toArrow()
        .to_pandas()
    )
    for kept in (gap_rows, orders):  # the facts, still kept, hold what is needed now
        kept.unpersist()

    return StagePlacement.at(
        end,
        lookback_s,
        model,
        thresholds,
        gap,
        tally=tally,
        frame=placed,
        make_persons=partial(_fetch, placed),
        kept=[facts],
    )


def selected_persons(
    placed: StagePlacement, stage_index: int | None, status: str | None
) -> pd.DataFrame:
    """The rows of a Spark placement's persons table at ``stage_index`` with ``status``
    (``None``: any), sorted by stage then ``person_id``: only those rows reach the driver."""
    from pyspark.sql import functions as F

    frame = placed.frame
    if stage_index is not None:
        frame = frame.where(F.col("stage_index") == stage_index)
    if status is not None:
        frame = frame.where(F.col("status") == status)
    return _fetch(frame)


def flow_counts(a: StagePlacement, b: StagePlacement, n_stages: int) -> np.ndarray:
    """The stage flow's matrix (:func:`shopfunnel.stages.summary.stage_flow`) of two Spark
    placements, as counts by state at ``a`` (rows) and at ``b`` (columns): the states are
    0 (not seen), 1 + the stage, and ``n_stages + 1`` for a customer lapsed or gone; the
    persons are matched on Spark, only the counts come back."""
    from pyspark.sql import functions as F

    def states(frame: DataFrame, name: str) -> DataFrame:
        slipped = (F.col("orders") > 0) & F.col("status").isin(LAPSED, GONE)
        state = F.when(slipped, F.lit(n_stages + 1)).otherwise(F.col("stage_index") + 1)
        return frame.select("person_id", state.alias(name))

    joined = states(a.frame, "a").join(states(b.frame, "b"), "person_id", "full_outer")
    pairs = (
        joined.select(F.coalesce("a", F.lit(0)).alias("a"), F.coalesce("b", F.lit(0)).alias("b"))
        .groupBy("a", "b")
        .count()
        .collect()
    )
    width = n_stages + 2
    counts = np.zeros((width, width), dtype=np.int64)
    for row in pairs:
        counts[int(row["a"]), int(row["b"])] = int(row["count"])
    return counts


# -- exact quantiles on Spark ----------------------------------------------------------------
def samples_on_spark(
    df: DataFrame, column: str, group: str, qs: dict[Any, Sequence[float]]
) -> dict[Any, RanksFound]:
    """Per value of ``group``, the integer µs of ``column`` as a sample of days (each value
    counts as ``value / 86,400,000,000`` days, as the embedded engine divides them) that
    gives NumPy's quantiles at ``qs[group]`` exactly: the sizes and the ranks the
    quantiles read in three Spark jobs for every group together."""
    sizes, found = order_statistics(
        df, column, group, lambda g, n: ranks_needed(n, qs[g]) if g in qs and n else ()
    )
    return {
        g: RanksFound(
            sizes.get(g, 0), {r: float(v) / _US_PER_DAY for r, v in found.get(g, {}).items()}
        )
        for g in qs
    }


POOLED, ORDERS = -1, -2  # the groups of the gap rows beside the stages


def _thresholds(
    facts: DataFrame, order_gaps: DataFrame, model: Model
) -> tuple[pd.DataFrame, StoreGap, DataFrame]:
    """The stages' thresholds (:func:`shopfunnel.stages.status.stage_thresholds`) and the
    store's gap between orders (:func:`shopfunnel.stages.gaps.store_gap`) from the facts
    and the orders: movers summed, the gaps as exact samples; and the gap rows (kept while
    they are read)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    n_stages = len(model.stages)
    moved = F.col("moved")
    sums = facts.agg(
        *[
            F.sum(F.shiftright(moved, k).bitwiseAND(F.lit(1))).alias(f"m{k}")
            for k in range(n_stages)
        ]
    ).collect()[0]
    movers = np.array([int(sums[f"m{k}"] or 0) for k in range(n_stages)], dtype=np.int64)
    gaps = _gap_rows(facts, n_stages)
    rules = model.placement
    # every stage's gaps, the same gaps again as the pool (stage -1) and the orders' gaps
    # (stage -2): all their quantiles from the same three jobs
    rows = gaps.unionByName(gaps.withColumn("stage", F.lit(POOLED))).unionByName(
        order_gaps.select(F.lit(ORDERS).alias("stage"), F.col("gap_us").alias("gap"))
    )
    q = [rules.stalled_quantile, rules.gone_quantile]
    wanted: dict[int, Sequence[float]] = {k: q for k in range(n_stages)}
    wanted[POOLED] = q
    wanted[ORDERS] = [rules.lapsed_quantile, rules.gone_quantile]
    found = samples_on_spark(rows.persist(StorageLevel.MEMORY_AND_DISK), "gap", "stage", wanted)
    per_stage = [found[k] for k in range(n_stages)]
    thresholds = stage_thresholds(model.stage_names, movers, per_stage, rules, pooled=found[POOLED])
    return thresholds, store_gap(found[ORDERS], rules), rows


def _gap_rows(facts: DataFrame, n_stages: int) -> DataFrame:
    """One row per return gap: ``stage`` and ``gap`` (µs)."""
    from pyspark.sql import functions as F

    if n_stages < 2:  # the last stage has no return gap
        return facts.select(F.lit(0).alias("stage"), F.lit(0).cast("long").alias("gap")).limit(0)
    cells = F.array(
        *[
            F.struct(F.lit(k).alias("stage"), F.col(f"g{k}").alias("gap"))
            for k in range(n_stages - 1)
        ]
    )
    return (
        facts.select(F.explode(cells).alias("c"))
        .select("c.stage", "c.gap")
        .where(F.col("gap").isNotNull())
    )


# -- the two mapInArrow passes (run in Spark's Python workers) -------------------------------
def _facts_schema(n_stages: int) -> str:
    gaps = "".join(f", g{k} long" for k in range(n_stages - 1))
    return (
        "person_id string, first_channel string, last_us long, stage_index long, "
        f"entered long, moved long{gaps}, n_orders long, revenue double, "
        "first_order long, last_order long"
    )


def _moves(
    batches: Iterator[pa.RecordBatch], *, n_stages: int, stage_cols: list[int], nth: dict[int, int]
) -> Iterator[pa.RecordBatch]:
    """Per person: stage, entered, the stages moved on from (bit k) and the return gap at
    each stage (µs; null where the person did not come back to move on)."""
    for rb in batches:
        n = rb.num_rows
        first = np.full((n, n_stages), NEVER, dtype=np.int64)
        for k in stage_cols:
            first[:, k] = _int64(rb.column(f"s{k}"))
        first[:, 0] = np.minimum(first[:, 0], _int64(rb.column("first_ts")))  # any event
        for k, count in nth.items():  # a min_orders stage: the time of the N-th order
            first[:, k] = np.minimum(first[:, k], _int64(rb.column(f"o{count}")))
        visits = rb.column("visits")
        lengths = pc.list_value_length(visits).fill_null(0).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(visits)
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
        starts = _int64(pc.struct_field(flat, "ts")) if len(flat) else np.zeros(0, np.int64)
        gaps = _int64(pc.struct_field(flat, "gap_us")) if len(flat) else np.zeros(0, np.int64)
        stage, entered, later, _ = furthest_stages(first)
        days = return_gaps(first, rows, starts, gaps, later=later)
        moved = ((first < later) & (later < NEVER)).astype(np.int64)
        mask = (moved << np.arange(n_stages, dtype=np.int64)).sum(axis=1)
        columns: dict[str, Any] = {
            "person_id": rb.column("person_id"),
            "first_channel": rb.column("first_channel"),
            "last_us": rb.column("last_event_at"),
            "stage_index": pa.array(stage, pa.int64()),
            "entered": pa.array(entered, pa.int64()),
            "moved": pa.array(mask, pa.int64()),
        }
        for k in range(n_stages - 1):
            # days = µs / 86,400,000,000 exactly as the embedded engine divides; rounding
            # back gives the integer µs (below 2^53, off by far less than half a µs)
            none = np.isnan(days[:, k])
            us = np.rint(np.where(none, 0.0, days[:, k]) * _US_PER_DAY).astype(np.int64)
            columns[f"g{k}"] = pa.array(us, pa.int64(), mask=none)
        columns["n_orders"] = pc.fill_null(rb.column("n_orders"), 0)
        columns["revenue"] = pc.fill_null(rb.column("revenue").cast(pa.float64()), 0.0)
        columns["first_order"] = rb.column("first_order")
        columns["last_order"] = rb.column("last_order")
        yield pa.RecordBatch.from_pydict(columns)


def _persons_schema() -> str:
    kinds = {
        "person_id": "string",
        "stage": "string",
        "stage_index": "long",
        "status": "string",
        "first_channel": "string",
        "orders": "long",
    }
    return ", ".join(
        f"{c} {'long' if c in _TIMES else kinds.get(c, 'double')}" for c in PERSON_COLUMNS
    )


def _judge(
    batches: Iterator[pa.RecordBatch],
    *,
    model: Model,
    gap: StoreGap,
    end_us: int,
    stalled_at: np.ndarray,
    gone_at: np.ndarray,
) -> Iterator[pa.RecordBatch]:
    """Each person's row of the persons table, judged by the global thresholds."""
    for rb in batches:
        n = rb.num_rows
        stage = _int64(rb.column("stage_index"))
        n_orders = _int64(rb.column("n_orders"))
        c_rows = np.flatnonzero(n_orders > 0)
        last_us = _int64(rb.column("last_us"))
        first_order = _int64(rb.column("first_order"))[c_rows]
        last_order = _int64(rb.column("last_order"))[c_rows]
        judged = judge(
            model.placement, gap, end_us, stage, last_us, stalled_at, gone_at, c_rows,
            n_orders[c_rows], first_order, last_order,
        )  # fmt: skip
        channel = pc.dictionary_encode(rb.column("first_channel"))
        none = np.zeros(0, dtype=np.int64)
        base = PersonFacts(
            ids=rb.column("person_id"),
            id_rank=np.arange(n, dtype=np.int64),
            first_us=none,
            last_us=last_us,
            stage_first=none.reshape(0, 1),
            channel_code=channel.indices.fill_null(-1).to_numpy(zero_copy_only=False),
            channel_labels=channel.dictionary,
            visit_rows=none,
            visit_starts=none,
            visit_gaps=none,
        )
        revenue = rb.column("revenue").to_numpy(zero_copy_only=False)[c_rows]
        table = placed_persons(
            model, base, np.arange(n, dtype=np.int64), stage, _int64(rb.column("entered")),
            end_us, judged, c_rows, n_orders[c_rows], revenue, last_order, stalled_at, gone_at,
        )  # fmt: skip
        yield pa.RecordBatch.from_pydict({c: _arrow_column(table[c], c) for c in PERSON_COLUMNS})


def _arrow_column(values: pd.Series, name: str) -> pa.Array:
    if name in _TIMES:  # naive datetimes as µs, NaT as null
        stamps = values.to_numpy().astype("datetime64[us]")
        return pa.array(stamps.astype(np.int64), pa.int64(), mask=np.isnat(stamps))
    if name in ("person_id", "stage", "status", "first_channel"):
        return pa.array(values.to_numpy(dtype=object, na_value=None), pa.string())
    if name in ("stage_index", "orders"):
        return pa.array(values.to_numpy(dtype=np.int64), pa.int64())
    return pa.array(values.to_numpy(dtype=float), pa.float64())


def _int64(column: pa.Array) -> np.ndarray:
    """An integer Arrow column as int64, nulls as ``NEVER``."""
    return pc.fill_null(column, NEVER).to_numpy(zero_copy_only=False).astype(np.int64)


def _fetch(frame: DataFrame) -> pd.DataFrame:
    """Rows of a persons table on Spark as the embedded engine's persons table: sorted by
    stage then ``person_id``, times as naive timestamps."""
    from shopfunnel.store.spark_reads import _datetime_us, arrow_rows

    table = arrow_rows(frame).sort_by([("stage_index", "ascending"), ("person_id", "ascending")])
    out = table.to_pandas()
    for column in _TIMES:
        values = out[column].to_numpy(dtype="float64", na_value=np.nan)
        out[column] = _datetime_us(values)
    return out[PERSON_COLUMNS]
