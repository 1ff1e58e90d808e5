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
  first event that has one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pandas as pd

from shopfunnel.store.db import quote_ident

Grain = Literal["day", "hour"]
SEGMENT_COLUMNS = ("device", "channel", "campaign", "country")


@dataclass(frozen=True)
class DiagnosisStep:
    """One diagnosis step: reaching ``event`` in a session (not a funnel :class:`~shopfunnel.funnel.Step`,
    which is an event with filters: a diagnosis step also names the stages it belongs to).

    ``stage`` is the five-stage model stage that reaching this step moves a person into
    (the stage whose tactics address a gap here); ``audience_stage`` is the stage the
    people who fail to reach it are in (who to target).
    """

    name: str
    event: str
    stage: str
    audience_stage: str


DEFAULT_STEPS: tuple[DiagnosisStep, ...] = (
    DiagnosisStep("product view", "view_item", "interest", "awareness"),
    DiagnosisStep("add to cart", "add_to_cart", "decision", "interest"),
    DiagnosisStep("checkout", "begin_checkout", "decision", "decision"),
    DiagnosisStep("shipping info", "add_shipping_info", "purchase", "decision"),
    DiagnosisStep("payment info", "add_payment_info", "purchase", "decision"),
    DiagnosisStep("purchase", "purchase", "purchase", "decision"),
)
VISIT = "visit"


class SessionLevels:
    """A temporary table of sessions with their level, built once per diagnosis.

    >>> levels = SessionLevels(store)          # one scan of the events
    >>> levels.counts(by=["device"], grain="day")
    """

    _ids = itertools.count()

    def __init__(self, store, steps: Sequence[DiagnosisStep] = DEFAULT_STEPS, *, start: datetime | None = None, end: datetime | None = None):
        self.store = store
        self.db = store.db
        present = {r[0] for r in self.db.rows("SELECT DISTINCT event FROM events")}
        # A step whose event the store never records cannot be measured: drop it, and say so.
        self.steps: tuple[DiagnosisStep, ...] = tuple(s for s in steps if s.event in present)
        self.missing_steps: tuple[DiagnosisStep, ...] = tuple(s for s in steps if s.event not in present)
        self.table = f"__sf_levels_{next(self._ids)}"
        level = " ".join(f"WHEN event = ? THEN {i + 1}" for i, _ in enumerate(self.steps))
        level_expr = f"max(CASE {level} ELSE 0 END)" if self.steps else "0"
        params: list = [s.event for s in self.steps]
        where, wparams = [], []
        if start is not None:
            where.append("ts >= ?")
            wparams.append(start)
        if end is not None:
            where.append("ts < ?")
            wparams.append(end)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        self.db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {self.table} AS
            SELECT session_id, any_value(person_id) AS person_id, min(ts) AS started_at,
                   date_trunc('hour', min(ts)) AS hour, CAST(min(ts) AS DATE) AS day,
                   coalesce(arg_min(device, ts) FILTER (WHERE device IS NOT NULL), '(none)') AS device,
                   coalesce(arg_min(channel, ts) FILTER (WHERE channel IS NOT NULL), '(none)') AS channel,
                   coalesce(arg_min(utm_campaign, ts) FILTER (WHERE utm_campaign IS NOT NULL), '(none)') AS campaign,
                   coalesce(arg_min(country, ts) FILTER (WHERE country IS NOT NULL), '(none)') AS country,
                   {level_expr} AS level,
                   count(DISTINCT order_id) FILTER (WHERE event = 'purchase') AS orders,
                   coalesce(sum(value) FILTER (WHERE event = 'purchase'), 0)::DOUBLE AS revenue,
                   false AS excluded
            FROM events {cond}
            GROUP BY session_id
            """,
            params + wparams,
        )
        span = self.db.rows(f"SELECT min(day), max(day), count(*) FROM {self.table}")[0]
        self.first_day, self.last_day, self.sessions = span[0], span[1], int(span[2] or 0)

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
            if col not in SEGMENT_COLUMNS:
                from shopfunnel.errors import ConfigError

                raise ConfigError(f"cannot exclude by {col!r}: use one of {', '.join(SEGMENT_COLUMNS)}")
            cond.append(f"{quote_ident(col)} = ?")
            params.append(value)
        before = int(self.db.scalar(f"SELECT count(*) FROM {self.table} WHERE excluded") or 0)
        self.db.execute(f"UPDATE {self.table} SET excluded = true WHERE {' AND '.join(cond)}", params)
        return int(self.db.scalar(f"SELECT count(*) FROM {self.table} WHERE excluded") or 0) - before

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
            if col not in SEGMENT_COLUMNS:
                from shopfunnel.errors import ConfigError

                raise ConfigError(f"cannot break down by {col!r}: use one of {', '.join(SEGMENT_COLUMNS)}")
        exprs: list[str] = []
        params: list[object] = []
        for col in by:
            if (top and col in top) or (keep and col in keep):
                values = keep[col] if keep and col in keep else [r[0] for r in self.db.rows(
                    f"SELECT {quote_ident(col)} FROM {self.table} GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT ?",
                    [top[col]],  # type: ignore[index]
                )]
                placeholders = ", ".join("?" for _ in values) or "NULL"
                exprs.append(f"CASE WHEN {quote_ident(col)} IN ({placeholders}) THEN {quote_ident(col)} ELSE 'other' END AS {quote_ident(col)}")
                params += values
            else:
                exprs.append(quote_ident(col))
        if grain is not None:
            exprs.append("hour AS period" if grain == "hour" else "day AS period")
        reached = ", ".join(f"count(*) FILTER (WHERE level >= {k}) AS n{k}" for k in range(1, len(self.steps) + 1))
        where: list[str] = [] if include_excluded else ["NOT excluded"]
        wparams: list[object] = []
        if start is not None:
            where.append("started_at >= ?")
            wparams.append(start)
        if end is not None:
            where.append("started_at < ?")
            wparams.append(end)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        select = ", ".join(exprs + ["count(*) AS n0"] + ([reached] if reached else []) + ["sum(orders) AS orders", "sum(revenue) AS revenue"])
        group = "GROUP BY ALL ORDER BY ALL" if exprs else ""
        df = self.db.df(f"SELECT {select} FROM {self.table} {cond} {group}", params + wparams)
        for k in range(len(self.steps) + 1):
            df[f"n{k}"] = df[f"n{k}"].astype("int64")
        df["orders"] = df["orders"].fillna(0).astype("int64")
        df["revenue"] = df["revenue"].fillna(0.0).astype(float)
        return df

    def top_values(self, col: str, n: int) -> list[str]:
        """The ``n`` values of ``col`` with the most sessions, plus the ``n`` with the most
        sessions on their busiest day (so a short burst, such as a one-off campaign, is kept)."""
        if col not in SEGMENT_COLUMNS:
            from shopfunnel.errors import ConfigError

            raise ConfigError(f"no segment column {col!r}: use one of {', '.join(SEGMENT_COLUMNS)}")
        c = quote_ident(col)
        rows = self.db.rows(
            f"""
            WITH d AS (SELECT {c} AS v, day, count(*) AS n FROM {self.table} GROUP BY ALL),
            t AS (SELECT v, sum(n) AS total, max(n) AS peak FROM d GROUP BY v)
            SELECT v FROM (SELECT v, row_number() OVER (ORDER BY total DESC, v) AS r1,
                                  row_number() OVER (ORDER BY peak DESC, v) AS r2 FROM t)
            WHERE r1 <= ? OR r2 <= ? ORDER BY v
            """,
            [n, n],
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        self.db.execute(f"DROP TABLE IF EXISTS {self.table}")

    def __enter__(self) -> SessionLevels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
