"""The diagnosis's sessions on Apache Spark: they stay on the cluster, counts come back.

:class:`~shopfunnel.diagnosis.session_levels.SessionLevels` on a DuckDB store is a table
of sessions that every analysis of the diagnosis counts from. On Spark the sessions are a
Spark DataFrame (:func:`shopfunnel.store.spark_diagnosis.session_frame`, kept with
``persist``) and never reach the driver (ADR 0191): each read of ``SessionLevels`` asks
:class:`SparkSessions` for a grouped table (sessions reaching each step per segment and
period, sessions per value and day, a span, distinct persons) and runs its own SQL on that
small result, so the ordering, the folding into ``other`` and the output types are the
DuckDB path's.

The two things the DuckDB table records per session are kept here as rules:

- the **window** (``start``, ``end``) of the session start: a table made by ``within``
  shares its parent's frame with a narrower window;
- the **exclusions** of ``SessionLevels.exclude``: a list of (start, end, segment values)
  rules; a session is excluded when it started inside one rule's range with that rule's
  values. The checkout and correlation counts read the kept sessions through the same
  rules (:meth:`SparkSessions.kept`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000

Rule = tuple[int, int, tuple[tuple[str, str], ...]]


class _Kept:
    """The persisted sessions frame, unpersisted when the last table using it closes."""

    def __init__(self, frame: DataFrame):
        from pyspark import StorageLevel

        self.frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        self.users = 0

    def hold(self) -> _Kept:
        self.users += 1
        return self

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.frame.unpersist()


class SparkSessions:
    """The sessions of a diagnosis on Spark that started in ``[start, end)``, with the
    exclusion rules added so far. Every method runs one Spark job and returns a small
    result: a grouped table, a span, a count."""

    def __init__(
        self,
        kept: _Kept,
        start: datetime | None,
        end: datetime | None,
        rules: Sequence[Rule] = (),
    ):
        self._kept = kept.hold()
        self.start, self.end = start, end
        self.rules: list[Rule] = list(rules)
        self._closed = False

    @classmethod
    def of_events(
        cls,
        events: Any,
        step_events: Sequence[str],
        start: datetime | None,
        end: datetime | None,
        properties: Sequence[str] = (),
    ) -> SparkSessions:
        """The sessions of ``events`` (a :class:`~shopfunnel.store.spark.SparkEvents`)
        in ``[start, end)``, each with the level it reached in that window."""
        from shopfunnel.store.spark_diagnosis import session_frame

        frame = session_frame(events.df, events._t(), step_events, start, end, properties)
        return cls(_Kept(frame), start, end)

    def within(self, start: datetime | None, end: datetime | None) -> SparkSessions:
        """The sessions of this window that started in ``[start, end)``, with this one's
        rules; the frame is shared, not computed again."""
        return SparkSessions(self._kept, start, end, self.rules)

    # -- the sessions asked for ------------------------------------------------------------

    def _started(self, start: datetime | None, end: datetime | None) -> Column:
        """``start <= started < end`` (None: no bound) as a Spark condition."""
        from pyspark.sql import functions as F

        from shopfunnel.store.spark_reads import _us

        cond = F.lit(True)
        if start is not None:
            cond = cond & (F.col("started_us") >= F.lit(_us(start)))
        if end is not None:
            cond = cond & (F.col("started_us") < F.lit(_us(end)))
        return cond

    def _excluded(self, rules: Sequence[Rule] | None = None) -> Column:
        """Whether a session falls under one of the exclusion ``rules`` (default: all)."""
        from pyspark.sql import functions as F

        cond = F.lit(False)
        for lo, hi, segment in self.rules if rules is None else rules:
            rule = (F.col("started_us") >= F.lit(lo)) & (F.col("started_us") < F.lit(hi))
            for col, value in segment:
                rule = rule & (F.col(col) == F.lit(value))
            cond = cond | rule
        return cond

    def sessions(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        include_excluded: bool = True,
    ) -> DataFrame:
        """The sessions of this window that started in ``[start, end)``, without the
        excluded ones unless ``include_excluded``."""
        frame = self._kept.frame.where(
            self._started(self.start, self.end) & self._started(start, end)
        )
        return frame if include_excluded else frame.where(~self._excluded())

    def kept(self) -> DataFrame:
        """The sessions the diagnosis compares: this window's, without the excluded ones."""
        return self.sessions(include_excluded=False)

    # -- what SessionLevels reads -----------------------------------------------------------

    def span(self) -> tuple[date | None, date | None, int]:
        """The first and last days (UTC) a session started on, and the number of sessions."""
        from pyspark.sql import functions as F

        from shopfunnel.store.spark_reads import _naive

        row = (
            self.sessions()
            .agg(
                F.min("started_us").alias("a"),
                F.max("started_us").alias("b"),
                F.count(F.lit(1)).alias("n"),
            )
            .collect()[0]
        )
        first, last = (None if v is None else _naive(v).date() for v in (row["a"], row["b"]))
        return first, last, int(row["n"])

    def exclude(self, start: datetime, end: datetime, segment: Mapping[str, str]) -> int:
        """Add the rule (sessions of ``segment`` that started in ``[start, end)``) and
        return how many sessions it excludes that no earlier rule did."""
        from shopfunnel.store.spark_reads import _us

        rule: Rule = (_us(start), _us(end), tuple(segment.items()))
        newly = self.sessions().where(self._excluded([rule]) & ~self._excluded()).count()
        self.rules.append(rule)
        return int(newly)

    def persons_and_sessions(
        self, start: datetime, end: datetime, level: int, segment: Mapping[str, str]
    ) -> tuple[int, int]:
        """Distinct persons and sessions among the sessions of ``segment`` that started in
        ``[start, end)`` and reached step ``level`` (excluded ones too)."""
        from pyspark.sql import functions as F

        chosen = self.sessions(start, end).where(F.col("level") >= F.lit(int(level)))
        for col, value in segment.items():
            chosen = chosen.where(F.col(col) == F.lit(value))
        row = chosen.agg(
            F.count_distinct("person_id").alias("persons"), F.count(F.lit(1)).alias("sessions")
        ).collect()[0]
        return int(row["persons"]), int(row["sessions"])

    def day_counts(self, col: str) -> pa.Table:
        """Sessions per value of ``col`` and day (``v``, ``day``: µs of the day's
        midnight, ``n``), excluded ones too."""
        from pyspark.sql import functions as F

        day = F.col("started_us") - F.pmod(F.col("started_us"), F.lit(DAY_US))
        return (
            self.sessions()
            .groupBy(F.col(col).alias("v"), day.alias("day"))
            .agg(F.count(F.lit(1)).alias("n"))
            .toArrow()
        )

    def counts(
        self,
        by: Sequence[str],
        folds: Mapping[str, Sequence[str]],
        grain: str | None,
        start: datetime | None,
        end: datetime | None,
        *,
        include_excluded: bool,
        steps: int,
    ) -> pa.Table:
        """Sessions reaching each step (``n0`` … ``n{steps}``), ``orders`` and ``revenue``
        per value of the ``by`` columns (a column in ``folds`` keeps those values and reads
        ``other`` for the rest) and, with ``grain``, per ``period`` (µs of the hour or of
        the day's midnight); one row when neither is given."""
        from pyspark.sql import functions as F

        keys: list[Column] = []
        for col in by:
            if col in folds:  # no value kept: every session reads other (as IN (NULL) does)
                kept = F.col(col).isin(*folds[col]) if folds[col] else F.lit(False)
                keys.append(F.when(kept, F.col(col)).otherwise(F.lit("other")).alias(col))
            else:
                keys.append(F.col(col))
        if grain is not None:
            unit = HOUR_US if grain == "hour" else DAY_US
            keys.append(
                (F.col("started_us") - F.pmod(F.col("started_us"), F.lit(unit))).alias("period")
            )
        level = F.col("level")
        aggs = [
            F.count(F.lit(1)).alias("n0"),
            *(F.count(F.when(level >= F.lit(k), 1)).alias(f"n{k}") for k in range(1, steps + 1)),
            F.sum("orders").alias("orders"),
            F.sum("revenue").alias("revenue"),
        ]
        chosen = self.sessions(start, end, include_excluded=include_excluded)
        grouped = chosen.groupBy(*keys).agg(*aggs) if keys else chosen.agg(*aggs)
        return grouped.toArrow()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._kept.release()
