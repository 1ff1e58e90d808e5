"""The funnel's tables counted on Spark, where the units are (ADR 0189).

:meth:`shopfunnel.funnel.spark.SparkEngine.units` runs the kernel in ``mapInArrow`` and
gives one row per counted unit (person or session). The local engine gathers those rows and
builds the tables in :mod:`shopfunnel.funnel.tables`; on Spark they stay on the cluster
(kept with ``persist``) and the tables are built from what Spark counts:

* **steps**: the units reaching each step (one aggregate); the median and 90th percentile
  of the seconds from the previous step from exact order statistics of the integer
  microseconds (:func:`shopfunnel.store.spark_ranks.order_statistics`, all steps in
  three small jobs), with NumPy's arithmetic (:func:`shopfunnel.funnel.tables.median_and_p90_at`);
* **total conversions**: the per-partition totals summed;
* **breakdown**: units reaching each step per value hash (the anchor's or the furthest
  step's value, or each step's), a row per value; the values behind the hashes are looked
  up for those rows only, and the table is ranked as locally
  (:func:`shopfunnel.funnel.tables.breakdown_from_counts`);
* **trend**: units reaching each step per period (a second count by period, as locally).

The drill-downs ask Spark too (:class:`SparkUnits`): the time-to-convert histogram is
counted per bin, and ``dropped(k)`` brings back only the units that dropped at step k.
With ``hold``, the units of an owner (one per held value) are first collapsed into one per
(owner, period) on Spark, as the local engine does (:func:`_held_once`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from shopfunnel.funnel.kernel import NONE
from shopfunnel.funnel.plan import FunnelPlan
from shopfunnel.funnel.result import FunnelResult
from shopfunnel.funnel.tables import (
    breakdown_from_counts,
    median_and_p90_at,
    median_and_p90_ranks,
    step_columns_from,
    total_columns,
    trend_from_counts,
)
from shopfunnel.store.spark_ranks import order_statistics

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

    from shopfunnel.funnel.spark import SparkEngine


def spark_result(
    engine: SparkEngine,
    plan: FunnelPlan,
    *,
    names: list[str],
    events: list[str],
    attribution: str,
    top: int,
) -> FunnelResult:
    """A :class:`FunnelResult` equal to ``FunnelResult.build(engine.run(plan), ...)``,
    counted on Spark (module docstring)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    n = len(plan.steps)
    rows = _held_once(engine.units(replace(plan, trend=None)), plan)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    unit = F.col("kind") == 0
    aggs = [F.count(F.when(unit & _hit(k), 1)).alias(f"p{k}") for k in range(n)]
    aggs += [F.sum(F.when(~unit, F.col(f"r{k}"))).alias(f"t{k}") for k in range(n)]
    row = rows.agg(*aggs).collect()[0]
    persons = np.array([int(row[f"p{k}"]) for k in range(n)], dtype=np.int64)
    totals = np.array([int(row[f"t{k}"] or 0) for k in range(n)], dtype=np.int64)
    units = rows.where(unit)

    breakdown = None
    if plan.by is not None:
        per_code, labels = _breakdown_counts(engine, plan, units, attribution)
        breakdown = breakdown_from_counts(per_code, labels, names, events, plan.by, top)
    trend = None
    if plan.trend:
        by_period = (
            _held_once(engine.units(replace(plan, by=None)), replace(plan, by=None))
            .where(F.col("kind") == 0)
            .groupBy("p")
            .agg(*[F.count(F.when(_hit(k), 1)).alias(f"c{k}") for k in range(n)])
            .orderBy("p")
            .collect()
        )
        periods = np.array([int(r["p"]) for r in by_period], dtype=np.int64)
        counts = np.array(
            [[int(r[f"c{k}"]) for k in range(n)] for r in by_period], dtype=np.int64
        ).reshape(len(by_period), n)
        trend = trend_from_counts(periods, counts, names, events)
    return FunnelResult(
        _steps=step_columns_from(persons, _step_times(units, n), names, events),
        _breakdown=breakdown,
        trend=trend,
        _totals=total_columns(totals, names, events),
        window_seconds=plan.window_us / 1e6,
        order=plan.order,
        count_by=plan.count_by,
        by=plan.by,
        attribution=attribution,
        _lookup=engine._lookup(plan),
        _drill=SparkUnits(units, kept=rows),
    )


def _held_once(rows: DataFrame, plan: FunnelPlan) -> DataFrame:
    """With ``hold``, the units of one owner (one per held value) collapsed into one row per
    (owner, period), as :func:`shopfunnel.funnel.passes.first_per_owner` does on the driver:
    per step, the times and codes of the unit that reached it first (of units that reached
    it at one instant, any one: the counts do not depend on which). Without, ``rows``."""
    from pyspark.sql import functions as F

    if plan.hold is None:
        return rows
    from shopfunnel.funnel.spark import _groups

    n, groups = len(plan.steps), _groups(plan)
    latest = F.lit(np.iinfo(np.int64).max)
    firsts = [
        F.min_by(
            F.struct(*[F.col(f"{g}{k}").alias(g) for g in groups]),
            F.when(_hit(k), F.col(f"r{k}")).otherwise(latest),
        ).alias(f"c{k}")
        for k in range(n)
    ]
    units = rows.where(F.col("kind") == 0).groupBy("o", "p").agg(*firsts)
    collapsed = units.select(
        F.lit(0).cast("tinyint").alias("kind"),
        "o",
        "p",
        *[F.col(f"c{k}.{g}").alias(f"{g}{k}") for g in groups for k in range(n)],
    )
    return collapsed.unionByName(rows.where(F.col("kind") != 0))


def _hit(k: int) -> Column:
    from pyspark.sql import functions as F

    return F.col(f"r{k}") != F.lit(NONE)


def _step_times(units: DataFrame, n: int) -> list[tuple[float, float]]:
    """Per step, the median and 90th percentile of the seconds from the previous step over
    the units with both times (NaN when none): exact order statistics of the µs."""
    from pyspark.sql import functions as F

    cells = F.array(
        *[
            F.struct(
                F.lit(k).alias("k"),
                F.when(
                    _hit(k) & (F.col(f"v{k}") != F.lit(NONE)), F.col(f"r{k}") - F.col(f"v{k}")
                ).alias("d"),
            )
            for k in range(n)
        ]
    )
    durations = units.select(F.explode(cells).alias("c")).select("c.k", "c.d")
    durations = durations.where(F.col("d").isNotNull())
    sizes, found = order_statistics(durations, "d", "k", lambda _k, m: median_and_p90_ranks(m))
    times = []
    for k in range(n):
        if not sizes.get(k):
            times.append((math.nan, math.nan))
            continue
        # seconds as the kernel's tables divide them: int64 µs / 1e6
        seconds: dict[int, float] = {r: v / 1e6 for r, v in found[k].items()}
        times.append(median_and_p90_at(sizes[k], lambda _ranks, s=seconds: s))  # type: ignore[misc]
    return times


def _breakdown_counts(
    engine: SparkEngine, plan: FunnelPlan, units: DataFrame, attribution: str
) -> tuple[np.ndarray, list[str]]:
    """Units reaching each step per breakdown value: (values + 1) × steps, the last row the
    units without a value (hash 0), and the values of the other rows."""
    from pyspark.sql import functions as F

    n = len(plan.steps)
    if attribution == "per_step":
        cells = F.array(
            *[
                F.struct(F.lit(k).alias("k"), F.col(f"s{k}").alias("h"), _hit(k).alias("hit"))
                for k in range(n)
            ]
        )
        found = (
            units.select(F.explode(cells).alias("c"))
            .where(F.col("c.hit"))
            .groupBy(F.col("c.h").alias("h"), F.col("c.k").alias("k"))
            .count()
            .collect()
        )
        pairs = [(int(r["h"]), int(r["k"]), int(r["count"])) for r in found]
    else:  # the value at the furthest step reached (step 1 if none): anchor's or step's
        group = "e" if attribution == "first" else "s"
        code: Any = F.col(f"{group}0")
        for k in range(1, n):
            code = F.when(_hit(k), F.col(f"{group}{k}")).otherwise(code)
        found = (
            units.groupBy(code.alias("h"))
            .agg(*[F.count(F.when(_hit(k), 1)).alias(f"c{k}") for k in range(n)])
            .collect()
        )
        pairs = [(int(r["h"]), k, int(r[f"c{k}"])) for r in found for k in range(n)]
    hashes = sorted({h for h, _, c in pairs if h != 0 and c})
    labels = engine._label_values(plan, hashes)
    index = {h: i for i, h in enumerate(hashes)}
    per_code = np.zeros((len(hashes) + 1, n), dtype=np.int64)
    for h, k, c in pairs:
        per_code[index.get(h, len(hashes)), k] += c
    return per_code, labels


class SparkUnits:
    """The drill-downs of a funnel counted on Spark, over its units kept there (``kept``:
    the persisted frame they are read from, let go by :meth:`release`)."""

    def __init__(self, units: DataFrame, kept: DataFrame | None = None):
        self.units = units
        self.kept = kept

    def release(self) -> None:
        """Unpersist the kept frame (a later drill-down reads the events again)."""
        if self.kept is not None:
            self.kept.unpersist()
            self.kept = None

    def histogram(self, reached: int, start: str, edges: np.ndarray) -> np.ndarray:
        """``np.histogram`` of the seconds from the ``start`` time group (``v``: previous
        step, ``n``: the anchor) to step ``reached`` (0-based) over ``edges`` (the last one
        infinite), counted on Spark."""
        from pyspark.sql import functions as F

        r, s = F.col(f"r{reached}"), F.col(f"{start}{reached}")
        seconds = (r - s) / F.lit(1e6)
        both = (r != F.lit(NONE)) & (s != F.lit(NONE))
        index: Any = F.lit(len(edges) - 2)
        for i in range(len(edges) - 2, 0, -1):
            index = F.when(seconds < F.lit(float(edges[i])), F.lit(i - 1)).otherwise(index)
        found = (
            self.units.where(both & (seconds >= F.lit(float(edges[0]))))
            .groupBy(index.alias("b"))
            .count()
            .collect()
        )
        counts = np.zeros(len(edges) - 1, dtype=np.int64)
        for row in found:
            counts[int(row["b"])] = int(row["count"])
        return counts

    def dropped(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The units that reached step ``k`` (1-based) and not ``k + 1``: owner hashes
        (uint64), the time they reached step k and their attempt's step-1 time (µs)."""
        from pyspark.sql import functions as F

        from shopfunnel.store.spark_reads import arrow_rows

        rows = self.units.where(_hit(k - 1) & ~_hit(k)).select(
            "o", F.col(f"r{k - 1}").alias("r"), F.col(f"n{k - 1}").alias("a")
        )
        table = arrow_rows(rows)
        return (
            table.column("o").to_numpy().view(np.uint64),
            table.column("r").to_numpy(),
            table.column("a").to_numpy(),
        )
