"""The diagnosis's sessions table from the store's sorted timeline (ADR 0160).

One compiled pass (:mod:`shopfunnel.store.session_facts`) gives each session's start,
level, person and segment codes; this module turns them into the temporary table
:class:`~shopfunnel.diagnosis.session_levels.SessionLevels` counts from, with the orders
and revenue of the window's purchase events. Sessions are keyed by ``hash(session_id)``
(``session``) and persons by ``hash(person_id)`` (``person``); the segment columns are
ENUMs. The SQL path of ``SessionLevels`` gives the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shopfunnel.diagnosis.session_levels import SEGMENT_COLUMNS, _between
from shopfunnel.store.db import quote_literal


@dataclass(frozen=True)
class TimelineTable:
    """A table made from the timeline: ``feature_events`` names the events its
    ``features`` bitmask column marks (None: no such column)."""

    feature_events: list[str] | None


def create_table(
    store: Any,
    table: str,
    step_events: Sequence[str],
    start: datetime | None,
    end: datetime | None,
) -> TimelineTable | None:
    """Create the sessions ``table`` of ``[start, end)`` in ``store.db`` from the timeline;
    None (and no table) when the timeline cannot serve."""
    import pyarrow as pa

    from shopfunnel.store import session_facts

    found = session_facts.sessions(store, list(step_events), _epoch_us(start), _epoch_us(end))
    if found is None:
        return None
    cols: dict[str, Any] = {
        "session": found.session,
        "person": found.person,
        "start_us": found.start_us,
        "level": found.level.astype(np.int32),
    }
    if found.features is not None:
        cols["features"] = found.features
    for name, codes, labels in zip(SEGMENT_COLUMNS, found.codes, found.labels, strict=True):
        # code -1 (no value) -> index 0, '(none)'
        dictionary = pa.array(["(none)", *labels], pa.string())
        cols[name] = pa.DictionaryArray.from_arrays(
            pa.array(codes.astype(np.int32) + 1), dictionary
        )
    # the segment columns as ENUMs: copied and grouped like small integers, not strings
    # (every reader compares them with strings and sorts them as VARCHAR: see counts)
    segments = ", ".join(
        f"CAST(s.{name} AS ENUM({', '.join(quote_literal(v) for v in dict.fromkeys(['(none)', *labels]))})) AS {name}"
        for name, labels in zip(SEGMENT_COLUMNS, found.labels, strict=True)
    )
    db = store.db
    rows = f"{table}_rows"
    db.register(rows, pa.table(cols))
    where, wparams = _between("ts", start, end)
    where.insert(0, "event = 'purchase'")
    try:
        db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {table} AS
            WITH o AS (
                SELECT hash(session_id) AS session, count(DISTINCT order_id) AS orders,
                       sum(value)::DOUBLE AS revenue
                FROM events WHERE {" AND ".join(where)}
                GROUP BY session_id
            )
            SELECT s.session, s.person, make_timestamp(s.start_us) AS started_at,
                   date_trunc('hour', make_timestamp(s.start_us)) AS hour,
                   CAST(make_timestamp(s.start_us) AS DATE) AS day,
                   {segments}, s.level,{" s.features," if found.features is not None else ""} coalesce(o.orders, 0) AS orders,
                   coalesce(o.revenue, 0)::DOUBLE AS revenue, false AS excluded
            FROM {rows} s LEFT JOIN o ON s.session = o.session
            """,
            wparams,
        )
    finally:
        db.unregister(rows)
    return TimelineTable(found.feature_events)


def _epoch_us(at: datetime | None) -> int | None:
    """Microseconds since 1970 of a naive UTC time (the events' ``ts``), as ``epoch_us``."""
    if at is None:
        return None
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    delta = at - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
