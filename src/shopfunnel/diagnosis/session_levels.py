"""Each session's furthest funnel step: the compact table every diagnosis counts from.

The diagnosis works on **sessions**, not persons: published benchmarks are per session
(SaleCycle, Baymard), the segment attributes it compares (channel, campaign, device) are
session-scoped, and incidents are located in time, which a session's start fixes. The
person-level funnel is :mod:`shopfunnel.funnel.api`'s job. See docs/adr/0061.

Definitions (an *open* funnel, as GA4 allows):

- a session's **level** is the highest step index ``k`` whose event occurs in the session
  (0 when none does: the session only reached the visit step);
- a session **reached step k** when its level is at least ``k``, so a session that
  bought without a recorded ``add_to_cart`` still counts as having reached it, and the
  counts never increase along the steps;
- a session belongs to the hour and day (UTC) of its first event, and takes its device,
  channel, campaign (``utm_campaign``, ``(none)`` when missing) and country from its
  first event that has one, and likewise each session property named in ``properties``
  (a key of the events' ``properties``; its column is named after the key).

The table comes from one compiled pass over the store's sorted timeline when that can stand
for every event (:mod:`shopfunnel.store.session_facts`, ADR 0160: sessions keyed by
``hash(session_id)``, segment columns as ENUMs), else from one SQL scan of the events; both
give the same rows. On Spark there is no table on the driver: the sessions stay on the
cluster (:mod:`shopfunnel.diagnosis.spark_levels`, ADR 0191) and each read brings back a
grouped result that the same SQL finishes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from shopfunnel.diagnosis.steps import DEFAULT_STEPS, VISIT, DiagnosisStep
from shopfunnel.store.db import json_pointer, quote_ident

if TYPE_CHECKING:  # pragma: no cover
    from shopfunnel.diagnosis.spark_levels import SparkSessions

Grain = Literal["day", "hour"]
SEGMENT_COLUMNS = ("device", "channel", "campaign", "country")
# the other columns of the sessions table (a property cannot take their names)
_OWN_COLUMNS = (
    "",
    "session_id",
    "person_id",
    "started_at",
    "hour",
    "day",
    "level",
    "orders",
    "revenue",
    "excluded",
    "period",
)


class SessionLevels:
    """A temporary table of sessions with their level, built once per diagnosis.

    >>> levels = SessionLevels(store)          # one scan of the events
    >>> levels.counts(by=["device"], grain="day")
    """

    _ids = itertools.count()

    def __init__(
        self,
        store,
        steps: Sequence[DiagnosisStep] = DEFAULT_STEPS,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        properties: Sequence[str] = (),
        from_timeline: bool | None = None,
    ):
        """``from_timeline``: None takes the sessions from the store's timeline when it can
        serve (:mod:`shopfunnel.store.session_facts`; not with ``properties``) and else from
        SQL; False always from SQL; True only from the timeline (an error when it cannot)."""
        self.store = store
        self.db = store.db
        for key in properties:
            if not isinstance(key, str) or key in SEGMENT_COLUMNS or key in _OWN_COLUMNS:
                from shopfunnel.errors import ConfigError

                raise ConfigError(
                    f"cannot segment by the property {key!r}: it is empty or names a column "
                    f"sessions already have ({', '.join(c for c in SEGMENT_COLUMNS + _OWN_COLUMNS if c)}); name another key"
                )
        self.properties: tuple[str, ...] = tuple(dict.fromkeys(properties))
        self.segment_columns: tuple[str, ...] = SEGMENT_COLUMNS + self.properties
        on_spark = getattr(store, "on_spark", False)  # shopfunnel.store.spark.SparkEvents
        present = (
            store.event_names()
            if on_spark
            else {r[0] for r in self.db.rows("SELECT DISTINCT event FROM events")}
        )
        # A step whose event the store never records cannot be measured: drop it, and say so.
        self.steps: tuple[DiagnosisStep, ...] = tuple(s for s in steps if s.event in present)
        self.missing_steps: tuple[DiagnosisStep, ...] = tuple(
            s for s in steps if s.event not in present
        )
        self.table = f"__sf_levels_{next(self._ids)}"
        self.start, self.end = start, end
        # on Spark: the sessions there, with this table's window and exclusions
        self.spark: SparkSessions | None = None
        # how the events meet this table: by the session id, or by its hash (timeline rows)
        self.session_column, self.events_session = "session_id", "e.session_id"
        self.person_column = "person_id"
        # the events a ``features`` bitmask column marks (store/session_facts.py), if any
        self.feature_events: list[str] | None = None
        if on_spark:  # the same table, its rows from Spark SQL (store/spark_diagnosis.py)
            self._from_spark(start, end)
            return
        if from_timeline is not False and not self.properties and self._from_timeline(start, end):
            return
        if from_timeline:
            from shopfunnel.errors import ShopfunnelError

            raise ShopfunnelError(
                "the store's timeline cannot give the sessions (none built for these events, a "
                "live delta, a session of two persons or an event without a session): leave "
                "from_timeline unset to count them by SQL"
            )
        level = " ".join(f"WHEN event = ? THEN {i + 1}" for i, _ in enumerate(self.steps))
        level_expr = f"max(CASE {level} ELSE 0 END)" if self.steps else "0"
        params: list = [s.event for s in self.steps]
        prop_exprs = "".join(
            f"coalesce(arg_min(json_extract_string(properties, ?), ts) FILTER (WHERE json_extract_string(properties, ?) IS NOT NULL), '(none)') AS {quote_ident(key)},\n"
            for key in self.properties
        )
        prop_params: list = [json_pointer(key) for key in self.properties for _ in range(2)]
        where, wparams = _between("ts", start, end)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        # Orders and revenue come from the purchase events alone: a distinct count among the
        # session aggregates made DuckDB take a slow path (13 s instead of 3 at 10M events).
        purchase_cond = (
            ("WHERE event = 'purchase' AND " + " AND ".join(where))
            if where
            else "WHERE event = 'purchase'"
        )
        self.db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {self.table} AS
            WITH s AS (
                SELECT session_id, any_value(person_id) AS person_id, min(ts) AS started_at,
                       date_trunc('hour', min(ts)) AS hour, CAST(min(ts) AS DATE) AS day,
                       coalesce(arg_min(device, ts) FILTER (WHERE device IS NOT NULL), '(none)') AS device,
                       coalesce(arg_min(channel, ts) FILTER (WHERE channel IS NOT NULL), '(none)') AS channel,
                       coalesce(arg_min(utm_campaign, ts) FILTER (WHERE utm_campaign IS NOT NULL), '(none)') AS campaign,
                       coalesce(arg_min(country, ts) FILTER (WHERE country IS NOT NULL), '(none)') AS country,
                       {prop_exprs}{level_expr} AS level
                FROM events {cond}
                GROUP BY session_id
            ),
            o AS (
                SELECT session_id, count(DISTINCT order_id) AS orders, sum(value)::DOUBLE AS revenue
                FROM events {purchase_cond}
                GROUP BY session_id
            )
            SELECT s.*, coalesce(o.orders, 0) AS orders, coalesce(o.revenue, 0)::DOUBLE AS revenue,
                   false AS excluded
            FROM s LEFT JOIN o ON s.session_id IS NOT DISTINCT FROM o.session_id
            """,
            prop_params + params + wparams + wparams,
        )
        self._span()

    def _from_timeline(self, start: datetime | None, end: datetime | None) -> bool:
        """The table from one pass over the timeline
        (:func:`shopfunnel.diagnosis.timeline_sessions.create_table`), sessions keyed by
        ``hash(session_id)`` (``session``) and persons by ``hash(person_id)``
        (``person``); False when the timeline cannot serve."""
        from shopfunnel.diagnosis.timeline_sessions import create_table

        made = create_table(self.store, self.table, [s.event for s in self.steps], start, end)
        if made is None:
            return False
        self.session_column, self.events_session = "session", "hash(e.session_id)"
        self.person_column = "person"
        self.feature_events = made.feature_events
        self._span()
        return True

    def _span(self) -> None:
        if self.spark is not None:
            self.first_day, self.last_day, self.sessions = self.spark.span()
            return
        span = self.db.rows(f"SELECT min(day), max(day), count(*) FROM {self.table}")[0]
        self.first_day, self.last_day, self.sessions = span[0], span[1], int(span[2] or 0)

    def _from_spark(self, start: datetime | None, end: datetime | None) -> None:
        """The sessions on Spark (:class:`~shopfunnel.diagnosis.spark_levels.SparkSessions`):
        computed and kept there; no table on the driver."""
        from shopfunnel.diagnosis.spark_levels import SparkSessions

        self.spark = SparkSessions.of_events(
            self.store, [s.event for s in self.steps], start, end, self.properties
        )
        self._span()

    def within(self, start: datetime | None, end: datetime | None) -> SessionLevels:
        """The sessions that started in ``[start, end)``, as a table of their own, without
        reading the events again (one scan serves a year for the lasting-incident scan and
        its last weeks for the rest of the diagnosis). A session keeps the level it reached
        in this table's window: one that started before ``start`` is left out rather than
        cut in two."""
        child = object.__new__(SessionLevels)
        child.store, child.db = self.store, self.db
        child.properties, child.segment_columns = self.properties, self.segment_columns
        child.steps, child.missing_steps = self.steps, self.missing_steps
        child.table = f"__sf_levels_{next(self._ids)}"
        child.start, child.end = start, end
        child.spark = None
        child.session_column, child.events_session = self.session_column, self.events_session
        child.person_column = self.person_column
        child.feature_events = self.feature_events
        if self.spark is not None:
            child.spark = self.spark.within(start, end)
            child._span()
            return child
        cond, params = _between("started_at", start, end)
        cond.insert(0, "true")
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE {child.table} AS SELECT * FROM {self.table} "
            f"WHERE {' AND '.join(cond)}",
            params,
        )
        span = self.db.rows(f"SELECT min(day), max(day), count(*) FROM {child.table}")[0]
        child.first_day, child.last_day, child.sessions = span[0], span[1], int(span[2] or 0)
        return child

    def _column(self, col: str, refusal: str) -> str:
        """``col``, a segment column of this table; else a ConfigError, ``refusal`` first."""
        if col not in self.segment_columns:
            from shopfunnel.errors import ConfigError

            raise ConfigError(f"{refusal} {col!r}: use one of {', '.join(self.segment_columns)}")
        return col

    @property
    def step_names(self) -> list[str]:
        return [VISIT] + [s.name for s in self.steps]

    def exclude(self, start: datetime, end: datetime, **segment: str) -> int:
        """Leave the sessions of ``segment`` (device=…, channel=…, campaign=…) that started in
        ``[start, end)`` out of later :meth:`counts` (an incident is reported once, as an
        incident, not again as a weak segment or period). Returns how many were marked."""
        cond = ["started_at >= ?", "started_at < ?"]
        params: list[object] = [start, end]
        for col, value in segment.items():
            cond.append(f"{quote_ident(self._column(col, 'cannot exclude by'))} = ?")
            params.append(value)
        if self.spark is not None:
            return self.spark.exclude(start, end, segment)
        before = int(self.db.scalar(f"SELECT count(*) FROM {self.table} WHERE excluded") or 0)
        self.db.execute(
            f"UPDATE {self.table} SET excluded = true WHERE {' AND '.join(cond)}", params
        )
        return (
            int(self.db.scalar(f"SELECT count(*) FROM {self.table} WHERE excluded") or 0) - before
        )

    def persons_per_session(
        self, start: datetime, end: datetime, level: int = 0, **segment: str
    ) -> float:
        """Distinct persons per session among the sessions of ``segment`` that started in
        ``[start, end)`` and reached step ``level`` (NaN when there is none): how many
        persons a number of those sessions stands for."""
        cond = ["started_at >= ?", "started_at < ?", "level >= ?"]
        params: list[object] = [start, end, int(level)]
        for col, value in segment.items():
            cond.append(f"{quote_ident(self._column(col, 'no segment column'))} = ?")
            params.append(value)
        if self.spark is not None:
            persons, sessions = self.spark.persons_and_sessions(start, end, level, segment)
        else:
            persons, sessions = self.db.rows(
                f"SELECT count(DISTINCT {self.person_column}), count(*) FROM {self.table} WHERE {' AND '.join(cond)}",
                params,
            )[0]
        return float(persons) / sessions if sessions else float("nan")

    def counts(
        self,
        by: Sequence[str] = (),
        grain: Grain | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        top: dict[str, int] | None = None,
        include_excluded: bool = False,
        keep: dict[str, list[str]] | None = None,
    ) -> pd.DataFrame:
        """Sessions reaching each step, grouped by ``by`` columns and optionally by ``grain``.

        Columns: the ``by`` columns, ``period`` (when ``grain`` is set), ``n0`` (sessions)
        and ``n1..nK`` (sessions that reached step k), ``orders`` and ``revenue`` (purchase
        value). ``start``/``end`` bound the session start (``[start, end)``). Sessions
        marked by :meth:`exclude` are left out unless ``include_excluded``. ``top`` folds
        a column's values outside its ``top[col]`` most frequent (by sessions) into ``other``;
        ``keep[col]`` lists the values to keep instead.
        """
        for col in by:
            self._column(col, "cannot break down by")
        exprs: list[str] = []
        params: list[object] = []
        folds: dict[str, list[str]] = {}
        for col in by:
            if (top and col in top) or (keep and col in keep):
                values = (
                    list(keep[col]) if keep and col in keep else self._most_sessions(col, top[col])  # type: ignore[index]
                )
                folds[col] = values
                placeholders = ", ".join("?" for _ in values) or "NULL"
                exprs.append(
                    f"CASE WHEN {quote_ident(col)} IN ({placeholders}) THEN {quote_ident(col)} ELSE 'other' END AS {quote_ident(col)}"
                )
                params += values
            else:
                exprs.append(quote_ident(col))
        K = len(self.steps)
        if self.spark is not None:  # grouped on Spark, finished here by the same SQL
            grouped = self.spark.counts(
                by, folds, grain, start, end, include_excluded=include_excluded, steps=K
            )
            name = f"{self.table}_counts"
            columns = [quote_ident(col) for col in by]
            if grain is not None:
                period = "make_timestamp(period)"
                columns.append(
                    f"{period} AS period"
                    if grain == "hour"
                    else f"CAST({period} AS DATE) AS period"
                )
            columns += [f"n{k}" for k in range(K + 1)] + ["orders", "revenue"]
            sql, params, source = f"SELECT {', '.join(columns)} FROM {name}", [], (name, grouped)
        else:
            if grain is not None:
                exprs.append("hour AS period" if grain == "hour" else "day AS period")
            reached = ", ".join(
                f"count(*) FILTER (WHERE level >= {k}) AS n{k}" for k in range(1, K + 1)
            )
            where, wparams = _between("started_at", start, end)
            if not include_excluded:
                where.insert(0, "NOT excluded")
            cond = ("WHERE " + " AND ".join(where)) if where else ""
            select = ", ".join(
                exprs
                + ["count(*) AS n0"]
                + ([reached] if reached else [])
                + ["sum(orders) AS orders", "sum(revenue) AS revenue"]
            )
            sql, params, source = (
                f"SELECT {select} FROM {self.table} {cond}",
                params + wparams,
                None,
            )
            if exprs:
                sql += " GROUP BY ALL"
        if by or grain is not None:
            # grouped by the columns as stored (ENUMs from the timeline), then sorted as text
            names = [quote_ident(col) for col in by]
            outer = [f"CAST({q} AS VARCHAR) AS {q}" for q in names]
            outer.append(f"* EXCLUDE ({', '.join(names)})" if names else "*")
            sql = f"SELECT {', '.join(outer)} FROM ({sql}) ORDER BY ALL"
        df = self._df(sql, params, source)
        for k in range(K + 1):
            df[f"n{k}"] = df[f"n{k}"].astype("int64")
        df["orders"] = df["orders"].fillna(0).astype("int64")
        df["revenue"] = df["revenue"].fillna(0.0).astype(float)
        return df

    def _df(
        self, sql: str, params: Sequence[object], source: tuple[str, Any] | None
    ) -> pd.DataFrame:
        """``sql`` on the driver's DuckDB, with ``source`` (a name and a result from Spark)
        registered for the query's length."""
        if source is None:
            return self.db.df(sql, list(params))
        self.db.register(*source)
        try:
            return self.db.df(sql, list(params))
        finally:
            self.db.unregister(source[0])

    def _per_value_and_day(self, col: str) -> tuple[str, tuple[str, Any] | None]:
        """A relation of sessions per value of ``col`` and day (``v``, ``day``, ``n``),
        excluded ones too, and what it needs registered (a result from Spark)."""
        if self.spark is None:
            return (
                f"(SELECT {quote_ident(col)} AS v, day, count(*) AS n FROM {self.table} GROUP BY ALL)",
                None,
            )
        name = f"{self.table}_days"
        relation = f"(SELECT v, CAST(make_timestamp(day) AS DATE) AS day, n FROM {name})"
        return relation, (name, self.spark.day_counts(col))

    def _most_sessions(self, col: str, n: int) -> list[str]:
        """The ``n`` values of ``col`` with the most sessions (ties: by value)."""
        d, source = self._per_value_and_day(col)
        df = self._df(
            f"SELECT CAST(v AS VARCHAR) AS v FROM (SELECT v, sum(n) AS n FROM {d} GROUP BY 1) "
            "ORDER BY n DESC, 1 LIMIT ?",
            [n],
            source,
        )
        return df["v"].tolist()

    def top_values(self, col: str, n: int) -> list[str]:
        """The ``n`` values of ``col`` with the most sessions, plus the ``n`` with the most
        sessions on their busiest day (so a short burst, such as a one-off campaign, is kept)."""
        self._column(col, "no segment column")
        d, source = self._per_value_and_day(col)
        df = self._df(
            f"""
            WITH t AS (SELECT CAST(v AS VARCHAR) AS v, sum(n) AS total, max(n) AS peak FROM {d} GROUP BY 1)
            SELECT v FROM (SELECT v, row_number() OVER (ORDER BY total DESC, v) AS r1,
                                  row_number() OVER (ORDER BY peak DESC, v) AS r2 FROM t)
            WHERE r1 <= ? OR r2 <= ? ORDER BY v
            """,
            [n, n],
            source,
        )
        return df["v"].tolist()

    def close(self) -> None:
        if self.spark is not None:
            self.spark.close()
            return
        self.db.execute(f"DROP TABLE IF EXISTS {self.table}")

    def __enter__(self) -> SessionLevels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _between(column: str, start: datetime | None, end: datetime | None) -> tuple[list[str], list]:
    """SQL conditions (and their parameters) for ``start <= column < end``; None: no bound."""
    cond: list[str] = []
    params: list = []
    if start is not None:
        cond.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        cond.append(f"{column} < ?")
        params.append(end)
    return cond, params
