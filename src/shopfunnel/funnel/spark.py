"""The funnel on Apache Spark: the same plan, the same kernel, a distributed sort.

:class:`SparkEngine` is a :class:`~shopfunnel.funnel.engine.FunnelEngine`: pass it to
:func:`shopfunnel.funnel.funnel` as ``engine=`` and every table comes out as with the
local engine. Spark SQL builds the columns :meth:`LocalEngine.build_sql` builds in DuckDB
(owner hash, µs time, step code, breakdown value hash, trend period), repartitions the
rows by owner and sorts each partition by (owner, time, step); ``mapInArrow`` then runs
:func:`shopfunnel.funnel.passes.count_batch` (the numba kernel) over each partition,
carrying the last owner of a batch over to the next one (Spark hands a partition over in
batches of ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, which may split a
person). Only one row per counted unit comes back to the driver, where
:class:`EngineOutput` is assembled.

Owners and breakdown values are identified by Spark's 64-bit ``xxhash64`` (as the local
engine uses DuckDB's ``hash``); breakdown hashes are mapped back to their values with
one small Spark query. Times are converted to integer microseconds and trend periods are
computed on dates, so results do not depend on the session time zone.

PySpark is optional (``pip install pyspark``, Java 17); this module imports it only when
an engine is made. The workers must import the same ``shopfunnel``: on a cluster install
it there (or ``spark.sparkContext.addPyFile`` a zip of the package);
:func:`local_spark_session` points local workers at the driver's copy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from shopfunnel.errors import ConfigError, InputError
from shopfunnel.funnel.passes import count_batch, first_per_owner
from shopfunnel.funnel.plan import (
    EngineOutput,
    FunnelPlan,
    StepCondition,
    coded_conditions,
    require_sessions,
)
from shopfunnel.store.schema import ITEM_FIELDS
from shopfunnel.store.spark import heavy_persons, local_spark_session

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

DAY_US = 86_400_000_000
BATCH_ROWS = 1_000_000
_PANDAS_WARNING = "PySpark does not yet fully support pandas"


class SparkEngine:
    """Count funnels with Spark: ``funnel(SparkEngine(spark, source), steps)`` (or pass a
    Spark DataFrame as the source: ``funnel(spark_df, steps)``).

    ``spark`` is a SparkSession (None: :func:`local_spark_session`); ``source`` is the
    path of a Parquet file or folder of canonical events, or a Spark DataFrame of them
    (``person_id``, else ``anonymous_id``/``user_id``). ``partitions`` sets how many
    partitions the rows are spread over (default: ``spark.sql.shuffle.partitions``);
    ``batch_rows`` is how many rows a worker gathers before running the kernel.

    Raw events (no ``person_id``) get the store's load rules first
    (:func:`shopfunnel.store.spark_rules.canonical_events`: identity stitching, sessions,
    channels, duplicates), so Spark on the raw files counts the persons a Store loaded
    from them counts; ``store_rules=False`` counts the rows as they are (each anonymous id
    its own person), as the local engine does over a file.

    Supports every plan the local engine does (ordered, strict, any; persons or
    sessions; exclusions, held properties, optional steps, open entry, breakdown, trend).
    """

    def __init__(
        self,
        spark: SparkSession | None,
        source: Any,
        *,
        partitions: int | None = None,
        batch_rows: int = BATCH_ROWS,
        store_rules: bool = True,
        session_timeout: str | float = "30m",
    ):
        if spark is None:
            spark = (
                source.sparkSession if hasattr(source, "sparkSession") else local_spark_session()
            )
        self.spark = spark
        self.partitions = partitions
        self.batch_rows = batch_rows
        if isinstance(source, str | Path):
            path = str(source)
            if not Path(path).exists() and "://" not in path:
                raise InputError(f"no file {path!r}: give a Parquet path or a Spark DataFrame")
            self.df = self.spark.read.parquet(path)
        elif hasattr(source, "sparkSession") and hasattr(source, "mapInArrow"):
            self.df = source
        else:
            raise InputError(
                f"SparkEngine cannot read a {type(source).__name__}: give a Parquet path or a "
                "Spark DataFrame (for pandas, Polars or a Store use the local engine)"
            )
        self.columns = {f.name: f.dataType for f in self.df.schema.fields}
        if (
            store_rules
            and "person_id" not in self.columns
            and "ts" in self.columns
            and ({"anonymous_id", "user_id"} & set(self.columns))
        ):
            from shopfunnel.store.spark_rules import canonical_events

            self.df = canonical_events(self.df, session_timeout=session_timeout)
            self.columns = {f.name: f.dataType for f in self.df.schema.fields}
        for needed in ("ts", "event"):
            if needed not in self.columns:
                raise InputError(
                    f"the events have no {needed!r} column; columns: {sorted(self.columns)}"
                )
        from pyspark.sql import functions as F

        if "person_id" in self.columns:
            self._person_cols = ["person_id"]
        else:
            self._person_cols = [c for c in ("anonymous_id", "user_id") if c in self.columns]
            if not self._person_cols:
                raise InputError(
                    "the events need a person_id, anonymous_id or user_id column to know who "
                    f"did each event; columns: {sorted(self.columns)}"
                )
        self._F = F

    # -- expressions ----------------------------------------------------------------------
    def _person(self) -> Column:
        F = self._F
        cols = [F.col(c) for c in self._person_cols]
        return cols[0] if len(cols) == 1 else F.coalesce(*cols)

    def _micros(self) -> Column:
        """``ts`` as integer µs since the epoch, whatever the session time zone."""
        from pyspark.sql.types import TimestampNTZType, TimestampType

        F = self._F
        kind = self.columns["ts"]
        if isinstance(kind, TimestampType):
            return F.unix_micros(F.col("ts"))
        if isinstance(kind, TimestampNTZType):
            return F.expr("timestampdiff(MICROSECOND, TIMESTAMP_NTZ'1970-01-01 00:00:00', ts)")
        raise InputError(
            f"the 'ts' column is {kind.simpleString()}, not a timestamp: "
            "load the events through a Store or cast ts to a timestamp"
        )

    def _value(self, key: str, *, scalar_items: bool = True) -> Column:
        """A column, an item field (the first item's, or all items' as an array) or a
        ``properties`` key."""
        F = self._F
        if key in self.columns and key not in ("items", "properties"):
            return F.col(key)
        if key in ITEM_FIELDS and "items" in self.columns:
            if scalar_items:
                return F.try_element_at(F.col("items"), F.lit(1))[key]
            return F.transform(F.col("items"), lambda x: x[key])
        if "properties" in self.columns:
            # a map lookup takes any key as it is (a JSON path would read dots, brackets
            # and quotes in it as syntax)
            props = F.from_json(F.col("properties").cast("string"), "map<string,string>")
            return props[F.lit(key)]
        raise ConfigError(
            f"{key!r} is not a column of the events and they have no properties to look it up "
            f"in; use one of: {', '.join(sorted(self.columns))}"
        )

    def _condition(self, cond: StepCondition) -> Column:
        F = self._F
        out = F.col("event") == F.lit(cond.event)
        for key, value in cond.where:
            values = list(value) if isinstance(value, list | tuple | set) else [value]
            if key in ITEM_FIELDS and key not in self.columns and "items" in self.columns:
                out = out & F.coalesce(
                    F.exists(F.col("items"), _has_any(key, values)), F.lit(False)
                )
            elif value is None:
                out = out & self._value(key).isNull()
            else:
                out = out & F.coalesce(
                    self._value(key).cast("string").isin([str(v) for v in values]), F.lit(False)
                )
        return out

    def prepare(self, plan: FunnelPlan) -> DataFrame:
        """The rows the kernel reads: ``o``[, ``u``], ``t``, ``c``[, ``a``][, ``p``] (as
        :meth:`LocalEngine.build_sql`), partitioned by owner and sorted within partitions."""
        F = self._F
        coded, names, overlap, other = coded_conditions(plan)
        if plan.count_by == "session":
            require_sessions(self.columns)
            owner = F.col("session_id")
        else:
            owner = self._person()
        df = self.df.where(owner.isNotNull() & F.col("ts").isNotNull())
        if plan.order != "strict":
            df = df.where(F.col("event").isin(list(dict.fromkeys(names))))
        cols = [F.xxhash64(owner).alias("o"), self._micros().alias("t")]
        if overlap:
            hits = F.filter(
                F.array(*[F.when(self._condition(c), F.lit(k)) for k, c in coded]),
                lambda x: x.isNotNull(),
            )
            cols.append(F.when(F.size(hits) == 0, F.array(F.lit(other))).otherwise(hits).alias("l"))
        else:
            case = F.lit(other)
            for k, c in reversed(coded):
                case = F.when(self._condition(c), F.lit(k)).otherwise(case)
            cols.append(case.alias("c"))
        if plan.hold is not None:
            item_field = plan.hold in ITEM_FIELDS and plan.hold not in self.columns
            if item_field and "items" in self.columns:  # one row per item, as DuckDB's unnest
                hold = F.explode(
                    F.transform(
                        self._value(plan.hold, scalar_items=False), lambda v: v.cast("string")
                    )
                )
            else:
                hold = self._value(plan.hold).cast("string")
            cols.append(hold.alias("hv"))
        if plan.by is not None:
            by = self._value(plan.by).cast("string")
            cols.append(F.when(by.isNull(), F.lit(0)).otherwise(F.xxhash64(by)).alias("a"))
        if plan.trend:
            cols.append(self._period(plan.trend).alias("p"))
        rows = df.select(*cols)
        if overlap:
            rows = rows.withColumn("c", F.explode(F.col("l"))).drop("l")
        rows = rows.withColumn("c", F.col("c").cast("tinyint"))
        if plan.order != "strict":
            rows = rows.where(F.col("c") != other)
        if plan.hold is not None:
            rows = (
                rows.where(F.col("hv").isNotNull())
                .withColumn("u", F.xxhash64(F.col("o"), F.col("hv")))
                .drop("hv")
            )
        keep = [
            "o",
            *(["u"] if plan.hold is not None else []),
            "t",
            "c",
            *(["a"] if plan.by is not None else []),
            *(["p"] if plan.trend else []),
        ]
        rows = rows.select(*keep)
        rows = rows.repartition(self.partitions, "o") if self.partitions else rows.repartition("o")
        return rows.sortWithinPartitions("o", *(["u"] if plan.hold is not None else []), "t", "c")

    def _period(self, trend: str) -> Column:
        """Start of the UTC day, Monday-week or month of ``ts``, in µs."""
        F = self._F
        t = self._micros()
        days = ((t - F.pmod(t, F.lit(DAY_US))) / F.lit(DAY_US)).cast("int")
        if trend == "day":
            return days.cast("long") * F.lit(DAY_US)
        date = F.date_from_unix_date(days)
        start = F.trunc(date, "week" if trend == "week" else "month")
        return F.unix_date(start).cast("long") * F.lit(DAY_US)

    # -- running --------------------------------------------------------------------------
    def heavy_persons(self, min_events: int = 1_000_000) -> pd.DataFrame:
        """Persons with at least ``min_events`` events (bots, shared devices), most first:
        ``person_id``, ``events``. They are counted exactly — a person's rows stay in one
        partition and the kernel walks them in batches, carrying the person over — but one
        such person makes its partition the slowest; filter them out (``events.where``)
        if they are not customers."""
        return heavy_persons(self.df, self._person(), min_events)

    def units(self, plan: FunnelPlan) -> DataFrame:
        """The kernel's output as a Spark DataFrame: one row per counted unit (``kind`` 0:
        owner hash ``o``, period ``p``, per step ``r``/``v``/``n`` times and ``s``/``e``
        breakdown hashes) and one row of per-step totals per partition (``kind`` 1, in
        ``r``)."""
        n = len(plan.steps)
        schema = ", ".join(
            ["kind tinyint", "o long", "p long"]
            + [f"{g}{k} long" for g in _groups(plan) for k in range(n)]
        )
        return self.prepare(plan).mapInArrow(_PartitionCounter(plan, self.batch_rows), schema)

    def funnel_result(
        self, plan: FunnelPlan, *, names: list[str], events: list[str], attribution: str, top: int
    ) -> Any:
        """The funnel's tables counted on Spark, only counts and order statistics coming
        back (:func:`shopfunnel.funnel.spark_tables.spark_result`)."""
        from shopfunnel.funnel.spark_tables import spark_result

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
            return spark_result(
                self, plan, names=names, events=events, attribution=attribution, top=top
            )

    def run(self, plan: FunnelPlan) -> EngineOutput:
        n = len(plan.steps)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
            table = self.units(plan).toArrow()
        kind = table.column("kind").to_numpy()
        unit = kind == 0

        def mat(g: str) -> np.ndarray:
            if n == 0 or not len(kind):
                return np.zeros((int(unit.sum()), n), dtype=np.int64)
            return np.column_stack([table.column(f"{g}{k}").to_numpy() for k in range(n)])

        reached = mat("r")
        totals = (
            reached[~unit].sum(axis=0).astype(np.int64)
            if len(kind)
            else np.zeros(n, dtype=np.int64)
        )
        reached = np.ascontiguousarray(reached[unit])
        prev = np.ascontiguousarray(mat("v")[unit])
        anchor = np.ascontiguousarray(mat("n")[unit])
        owner = table.column("o").to_numpy()[unit].view(np.uint64)
        period = table.column("p").to_numpy()[unit]
        labels: list[str] = []
        if plan.by is not None:
            sattr, aattr, labels = self._codes(plan, mat("s")[unit], mat("e")[unit])
        else:
            sattr = aattr = np.broadcast_to(np.int32(-1), (len(owner), n))
        if plan.hold is not None:
            owner, period, reached, prev, anchor, sattr, aattr = first_per_owner(
                owner, period, reached, prev, anchor, sattr, aattr
            )
        return EngineOutput(
            owner, period, reached, prev, anchor, sattr, aattr, totals, labels, self._lookup(plan)
        )

    def _codes(
        self, plan: FunnelPlan, shash: np.ndarray, ahash: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Breakdown value hashes (0 = none) → int32 codes, and the values in code order."""
        both = np.concatenate([shash.ravel(), ahash.ravel()])
        codes, uniques = pd.factorize(both)
        nonzero = [int(u) for u in uniques if int(u) != 0]
        index = {h: i for i, h in enumerate(nonzero)}
        remap = np.array([index.get(int(u), -1) for u in uniques] or [0], dtype=np.int32)
        mapped = remap[codes]
        sattr = mapped[: shash.size].reshape(shash.shape)
        aattr = mapped[shash.size :].reshape(ahash.shape)
        return sattr, aattr, self._label_values(plan, nonzero)

    def _label_values(self, plan: FunnelPlan, hashes: list[int]) -> list[str]:
        """The breakdown values behind their hashes, in the given order."""
        if not hashes or plan.by is None:
            return []
        F = self._F
        wanted = self.spark.createDataFrame(pa.table({"h": pa.array(hashes, pa.int64())}))
        v = self._value(plan.by).cast("string")
        names = list(dict.fromkeys(s.event for s in plan.steps))  # codes live on step rows
        values = (
            self.df.where(F.col("event").isin(names))
            .select(v.alias("v"))
            .where(F.col("v").isNotNull())
            .distinct()
            .withColumn("h", F.xxhash64(F.col("v")))
            .join(F.broadcast(wanted), "h")
            .toArrow()
        )
        found = dict(
            zip(values.column("h").to_pylist(), values.column("v").to_pylist(), strict=True)
        )
        return [found.get(h, "?") for h in hashes]

    def _lookup(self, plan: FunnelPlan) -> Callable[[np.ndarray], pd.DataFrame]:
        """Owner hashes → their ids (``person_id``, and ``session_id`` by session)."""

        def lookup(hashes: np.ndarray) -> pd.DataFrame:
            F = self._F
            signed = np.asarray(hashes, dtype=np.uint64).view(np.int64)
            wanted = self.spark.createDataFrame(pa.table({"h": pa.array(np.unique(signed))}))
            if plan.count_by == "session":
                ids = (
                    self.df.where(F.col("session_id").isNotNull())
                    .groupBy("session_id")
                    .agg(F.any_value(self._person()).alias("person_id"))
                    .withColumn("h", F.xxhash64(F.col("session_id")))
                )
                cols = ["h", "session_id", "person_id"]
            else:
                person = self._person()
                ids = (
                    self.df.where(person.isNotNull())
                    .select(person.alias("person_id"))
                    .distinct()
                    .withColumn("h", F.xxhash64(F.col("person_id")))
                )
                cols = ["h", "person_id"]
            table = ids.join(F.broadcast(wanted), "h").select(*cols).toArrow()
            frame = table.to_pandas()
            frame["h"] = table.column("h").to_numpy().view(np.uint64)
            return frame

        return lookup


def _has_any(key: str, values: list[Any]) -> Callable[[Column], Column]:
    """An item predicate: the item's ``key`` is one of ``values``."""
    return lambda item: item[key].isin(values)


def _groups(plan: FunnelPlan) -> list[str]:
    """Column groups per step in the workers' output: reached, prev, anchor, and the
    breakdown value hashes on the step's and the anchor's event."""
    return ["r", "v", "n", *(["s", "e"] if plan.by is not None else [])]


class _PartitionCounter:
    """The ``mapInArrow`` function: gather a partition's batches, run the kernel on whole
    owners (the last owner of a gathered block waits for the next block), and yield one
    row per counted unit plus one row of per-step totals."""

    def __init__(self, plan: FunnelPlan, batch_rows: int):
        self.plan = plan
        self.batch_rows = batch_rows

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        plan = self.plan
        n = len(plan.steps)
        labels: dict[int, int] = {}
        totals = np.zeros(n, dtype=np.int64)
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        carry: pa.Table | None = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows < self.batch_rows:
                continue
            table = pa.Table.from_batches(pending)
            if carry is not None:
                table = pa.concat_tables([carry, table])
            table = table.combine_chunks()
            pending, pending_rows = [], 0
            o = table.column("o").to_numpy()
            differs = np.flatnonzero(o != o[-1])
            cut = int(differs[-1]) + 1 if len(differs) else 0
            carry = table.slice(cut)
            if cut:
                yield from self._emit(table.slice(0, cut), labels, totals)
        tail = ([carry] if carry is not None else []) + (
            [pa.Table.from_batches(pending)] if pending else []
        )
        if tail:
            yield from self._emit(pa.concat_tables(tail).combine_chunks(), labels, totals)
        row: dict[str, Any] = {"kind": pa.array([1], pa.int8()), "o": [0], "p": [0]}
        for g in _groups(plan):
            for k in range(n):
                row[f"{g}{k}"] = [int(totals[k]) if g == "r" else 0]
        yield pa.RecordBatch.from_pydict(row, schema=_schema(plan))

    def _emit(
        self, table: pa.Table, labels: dict[int, int], totals: np.ndarray
    ) -> Iterator[pa.RecordBatch]:
        plan = self.plan
        n = len(plan.steps)
        part, tot = count_batch(table, plan, labels, threads=1)
        totals += tot
        owner, period, reached, prev, anchor = part[:5]
        cols: dict[str, Any] = {
            "kind": np.zeros(len(owner), dtype=np.int8),
            "o": owner.view(np.int64),
            "p": period,
        }
        mats = [reached, prev, anchor]
        if plan.by is not None:
            hashes = np.array([0, *labels], dtype=np.uint64).view(np.int64)  # code -1 → 0
            mats += [hashes[part[5] + 1], hashes[part[6] + 1]]
        for g, m in zip(_groups(plan), mats, strict=True):
            for k in range(n):
                cols[f"{g}{k}"] = np.ascontiguousarray(m[:, k])
        out = pa.table(cols, schema=_schema(plan))
        yield from out.to_batches(max_chunksize=100_000)


def _schema(plan: FunnelPlan) -> pa.Schema:
    n = len(plan.steps)
    fields = [("kind", pa.int8()), ("o", pa.int64()), ("p", pa.int64())]
    fields += [(f"{g}{k}", pa.int64()) for g in _groups(plan) for k in range(n)]
    return pa.schema(fields)


__all__ = ["SparkEngine", "local_spark_session"]
