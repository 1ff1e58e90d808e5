"""The event store: one DuckDB file of canonical events, plus derived views.

Loading is a pipeline over a *staged* source (any table whose columns carry canonical
names, plus a ``__line`` column saying where each row came from):

1. check the columns (unknown or missing required columns stop the load);
2. validate every value against :mod:`shopfunnel.store.schema` in one vectorised pass,
   collecting rejects with their line, column and reason;
3. ``on_error="fail"`` stops here and writes nothing if anything was rejected;
   ``on_error="skip"`` keeps the valid rows and hands back the rejects;
4. fill derived values: a row hash as ``event_id`` when the source has none, sessions
   from 30 minutes of inactivity when it has no ``session_id``, the channel from UTM
   values and referrer;
5. in one transaction: insert the rows whose ``event_id`` is not stored yet (loading
   the same data twice adds nothing), then re-stitch identities.

Identity stitching: an anonymous id that ever appears on an event with a ``user_id``
belongs to that user (the earliest such user id, if a device was shared), earlier
events included. ``person_id`` is ``user_id`` when the event has one, else the user its
anonymous id is stitched to, else the anonymous id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import pyarrow as pa

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError, InputError, StoreError, ValidationError
from shopfunnel.frames import is_pandas_frame
from shopfunnel.store import schema
from shopfunnel.store.checks import checks_of, describe_rejects, typed_expr
from shopfunnel.store.db import Database, hash_threads, quote_ident
from shopfunnel.store.identities import stitch
from shopfunnel.store.memory import bulk_memory
from shopfunnel.store.prepare import (
    FIRST_CHANNELS,
    fill_first_channels,
    first_load,
    prepare_sql,
)
from shopfunnel.store.staged import LINE, LoadResult, OnError, Staged
from shopfunnel.store.timeline import store_key

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_PATH = "shopfunnel.duckdb"
SCHEMA_VERSION = 1
_BIG_LOAD = 1_000_000  # rows from which the load's distinct count runs on more threads


class Store:
    """A shopfunnel store in one DuckDB file (default ``shopfunnel.duckdb``).

    >>> store = Store(":memory:")
    >>> store.load(events_df)        # pandas, Polars, Arrow, or a file path
    >>> store.info()["events"]

    A load into a store whose funnel timeline is kept extends the timeline with a sorted
    delta instead of making it stale (:mod:`shopfunnel.store.live`, ADR 0150).
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        *,
        session_timeout: str | float = "30m",
        read_only: bool = False,
    ):
        self.path = str(path)
        self.session_timeout_seconds = parse_duration_seconds(session_timeout)
        # set by the server's writer: every load extends the funnel timeline with a delta
        # (even before a base exists), and a thread of the server compacts it (ADR 0151)
        self.live_timeline = False
        if read_only and self.path != ":memory:" and not Path(self.path).exists():
            raise StoreError(
                f"no store at {self.path!r}: create one with `shopfunnel ingest FILE --db "
                f"{self.path}` or `shopfunnel demo`"
            )
        self.db = Database(self.path, read_only=read_only)
        if not read_only:
            self._create()
        elif not self.db.table_exists("events"):
            raise StoreError(f"{self.path!r} is not a shopfunnel store (it has no events table)")

    # -- schema -------------------------------------------------------------------------
    def _create(self) -> None:
        cols = ", ".join(
            f"{quote_ident(c.name)} {c.sql_type}" for c in schema.COLUMNS + schema.DERIVED_COLUMNS
        )
        self.db.execute(f"CREATE TABLE IF NOT EXISTS events ({cols})")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS identities (anonymous_id VARCHAR PRIMARY KEY, "
            "person_id VARCHAR NOT NULL)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('store_id', ?)",
            [str(SCHEMA_VERSION), uuid.uuid4().hex],
        )
        self.db.execute(
            """
            CREATE VIEW IF NOT EXISTS sessions AS
            SELECT session_id, any_value(person_id) AS person_id, min(ts) AS started_at,
                   max(ts) AS ended_at, count(*) AS events,
                   arg_min(channel, ts) AS channel, arg_min(device, ts) AS device,
                   bool_or(event = 'purchase') AS converted
            FROM events GROUP BY session_id
            """
        )
        self.db.execute(
            """
            CREATE VIEW IF NOT EXISTS orders AS
            SELECT order_id, arg_min(person_id, ts) AS person_id, min(ts) AS ts,
                   sum(value) FILTER (WHERE event = 'purchase') AS value,
                   arg_min(currency, ts) AS currency,
                   arg_min(channel, ts) AS channel, arg_min(device, ts) AS device,
                   coalesce(sum(value) FILTER (WHERE event = 'refund'), 0) AS refunded
            FROM events WHERE order_id IS NOT NULL AND event IN ('purchase', 'refund')
            GROUP BY order_id HAVING count(*) FILTER (WHERE event = 'purchase') > 0
            """
        )
        self.db.execute(
            """
            CREATE VIEW IF NOT EXISTS persons AS
            SELECT person_id, min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS events,
                   count(DISTINCT session_id) AS sessions,
                   count(DISTINCT order_id) FILTER (WHERE event = 'purchase') AS orders,
                   coalesce(sum(value) FILTER (WHERE event = 'purchase'), 0) AS revenue,
                   arg_min(channel, ts) AS first_channel, arg_max(channel, ts) AS last_channel,
                   bool_or(user_id IS NOT NULL) AS identified
            FROM events GROUP BY person_id
            """
        )

    # -- loading ------------------------------------------------------------------------
    def load(
        self,
        source: Any,
        *,
        format: str | None = None,
        on_error: OnError = "fail",
        mapping: dict[str, str] | None = None,
        extra_columns: Literal["error", "properties"] = "error",
    ) -> LoadResult:
        """Load events from a DataFrame (pandas or Polars), an Arrow table or a file.

        Files are read by the generic importer (CSV, Parquet, JSON Lines) with an
        optional ``mapping`` of canonical name → source column. For GA4, Segment,
        REES46 or order exports use :func:`shopfunnel.ingest.read` with their format.
        """
        from shopfunnel.ingest import stage

        staged = stage(source, format=format, mapping=mapping, extra_columns=extra_columns)
        return self.load_staged(staged, on_error=on_error)

    def load_staged(
        self,
        staged: Staged,
        *,
        on_error: OnError = "fail",
        progress: Callable[[str], None] | None = None,
    ) -> LoadResult:
        """Validate and write a staged source; see the module docstring for the steps."""
        if on_error not in ("fail", "skip"):
            raise ConfigError(f"on_error={on_error!r} is not valid: use 'fail' or 'skip'")
        note = progress or (lambda _msg: None)
        db = self.db
        if staged.sql is not None:
            db.execute(f"CREATE OR REPLACE TEMP VIEW __src AS {staged.sql}", staged.params)
        else:
            db.register("__src_obj", staged.table)
            db.execute("CREATE OR REPLACE TEMP VIEW __src AS SELECT * FROM __src_obj")
        try:
            with bulk_memory(db):
                return self._load_src(staged, on_error, note)
        finally:
            db.execute("DROP VIEW IF EXISTS __src")
            if staged.sql is None:
                db.unregister("__src_obj")

    def _load_src(
        self, staged: Staged, on_error: OnError, note: Callable[[str], None]
    ) -> LoadResult:
        db = self.db
        described = db.rows("DESCRIBE SELECT * FROM __src")
        types = {name: typ for name, typ, *_ in described}
        present = [c for c in types if c != LINE]
        unknown = [c for c in present if c not in schema.BY_NAME]
        if unknown:
            raise InputError(
                f"{staged.source}: unknown column(s) {', '.join(map(repr, unknown))}. "
                f"Canonical columns are: {', '.join(schema.COLUMN_NAMES)}. Map a column with "
                "--map canonical=source, or keep extras as properties with --extra properties."
            )
        missing = [c.name for c in schema.COLUMNS if c.required and c.name not in types]
        if missing:
            raise InputError(
                f"{staged.source}: required column(s) {', '.join(map(repr, missing))} missing. "
                "Map them with --map, e.g. --map ts=created_at --map event=event_type."
            )
        if "anonymous_id" not in types and "user_id" not in types:
            raise InputError(
                f"{staged.source}: needs an 'anonymous_id' or a 'user_id' column to know who "
                "did each event. Map one with --map anonymous_id=<column>."
            )
        typed = {c: typed_expr(c, types[c]) for c in present}
        if not staged.rejects and "event_id" in types and self._is_empty():
            note("writing")
            first = first_load(self, staged, present, types, typed)
            if first is not None:
                return first
        note("validating")
        checks = checks_of(present, typed, types)
        any_bad = " OR ".join(f"({cond})" for _, cond, _ in checks)
        nulls = {
            c: (f"count(*) FILTER (WHERE {quote_ident(c)} IS NULL)" if c in types else "count(*)")
            for c in ("event_id", "session_id", "channel")
        }
        distinct_ids = "count(DISTINCT event_id)" if "event_id" in types else "0"
        # a small Arrow batch (the collector's appends) is not worth resizing DuckDB's
        # thread pool twice (about 30 ms a load)
        small = staged.sql is None and getattr(staged.table, "num_rows", _BIG_LOAD) < _BIG_LOAD
        with nullcontext() if small else hash_threads(db):
            staged_rows, bad_count, null_ids, null_sessions, null_channels, unique_ids = db.rows(
                f"SELECT count(*), count(*) FILTER (WHERE {any_bad}), {nulls['event_id']}, "
                f"{nulls['session_id']}, {nulls['channel']}, {distinct_ids} FROM __src"
            )[0]
        early = tuple(staged.rejects)
        early_lines = len({r.line for r in early})
        rows_read = int(staged_rows) + early_lines
        if rows_read == 0:
            raise InputError(f"{staged.source}: no rows to load (the source is empty)")
        where = "TRUE"
        rejects = early
        if bad_count:
            db.execute(f"CREATE OR REPLACE TEMP TABLE __bad AS SELECT * FROM __src WHERE {any_bad}")
            rejects = tuple(
                sorted(
                    early + describe_rejects(self.db, staged.source, checks, types),
                    key=lambda r: (r.line, r.column),
                )
            )
            where = f"{LINE} NOT IN (SELECT {LINE} FROM __bad)"
        if rejects and on_error == "fail":
            db.execute("DROP TABLE IF EXISTS __bad")
            shown = "\n  ".join(str(r) for r in rejects[:10])
            more = f"\n  … and {len(rejects) - 10} more" if len(rejects) > 10 else ""
            raise ValidationError(
                f"{staged.source}: {len(rejects)} problem(s) in {len({r.line for r in rejects})} "
                f"{staged.line_label}(s); nothing was loaded.\n  {shown}{more}\n"
                f"Fix the {staged.line_label}s, or load the valid rows with --on-error skip "
                "(the rejects are written to a file).",
                list(rejects),
            )
        note("writing")
        stored = not self._is_empty()
        dedup = bool(null_ids) or unique_ids + (1 if null_ids else 0) < staged_rows
        # a large load of rows that carry their sessions but no channel takes the sessions'
        # channels from a table filled first, and its rows stream into the store (ADR 0196)
        streamed = "channel" not in types and not null_sessions and not dedup and not small
        first_channels = FIRST_CHANNELS if streamed else None
        prepared = prepare_sql(
            present,
            typed,
            where,
            session_timeout_seconds=self.session_timeout_seconds,
            derive_sessions=bool(null_sessions),
            derive_channels=bool(null_channels),
            hash_ids=bool(null_ids),
            dedup=dedup,
            continue_stored=stored,
            narrow_windows=small,
            first_channels=first_channels,
        )
        from shopfunnel.store import live, segments

        # a kept timeline is extended by this load's rows (store/segments.py), not rebuilt
        extend = stored and segments.wanted(self)
        with db.transaction():
            if streamed:
                fill_first_channels(
                    db,
                    present,
                    typed,
                    where,
                    session_timeout_seconds=self.session_timeout_seconds,
                    continue_stored=stored,
                )
            before = int(db.scalar("SELECT count(*) FROM events") or 0)
            from_key = store_key(db) if extend else None
            cols = ", ".join(quote_ident(c) for c in schema.COLUMN_NAMES)
            new_cols = ", ".join(f"i.{quote_ident(c)}" for c in schema.COLUMN_NAMES)
            # An empty store has nothing to skip: no anti-join on the first load.
            unseen = "WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = i.event_id)"
            # an anonymous id stitched by an earlier load is its user's from the start
            rows = f"""
                WITH __new AS ({prepared})
                SELECT {new_cols}, coalesce(i.user_id, ids.person_id, i.anonymous_id)
                    AS person_id
                FROM __new i LEFT JOIN identities ids ON ids.anonymous_id = i.anonymous_id
                {"" if before == 0 else unseen}
                """
            if from_key is not None:
                db.execute(f"CREATE OR REPLACE TEMP TABLE __fresh AS {rows}")
                rows = "SELECT * FROM __fresh"
            db.execute(f"INSERT INTO events ({cols}, person_id) {rows}")
            added = int(db.scalar("SELECT count(*) FROM events") or 0) - before
            if from_key is not None:
                db.execute("CREATE OR REPLACE TEMP TABLE __moved (person_id VARCHAR)")
            if "user_id" in types:
                db.execute(
                    "CREATE OR REPLACE TEMP TABLE __linked AS SELECT DISTINCT "
                    f"coalesce({typed.get('anonymous_id', 'NULL')}, {typed['user_id']}) AS anonymous_id "
                    f"FROM __src WHERE {typed['user_id']} IS NOT NULL AND {where}"
                )
                stitch(self.db, record_moves=from_key is not None)
                db.execute("DROP TABLE IF EXISTS __linked")
            if added:
                self._bump_generation()
        if from_key is not None:
            try:
                if (
                    added
                    and segments.append(self, from_key, store_key(db)) is not None
                    and (not self.live_timeline)
                ):
                    live.compact_if_large(self)  # a live server compacts in its own thread
            except (OSError, duckdb.Error):
                pass  # the events are stored; without this segment the next funnel rebuilds
            finally:
                db.execute("DROP TABLE IF EXISTS __fresh")
                db.execute("DROP TABLE IF EXISTS __moved")
        db.execute("DROP TABLE IF EXISTS __bad")
        db.execute(f"DROP TABLE IF EXISTS {FIRST_CHANNELS}")
        return LoadResult(
            source=staged.source,
            rows_read=int(rows_read),
            rows_added=added,
            duplicates=int(staged_rows) - int(bad_count) - added,
            rejects=rejects,
        )

    def _is_empty(self) -> bool:
        return not self.db.rows("SELECT 1 FROM events LIMIT 1")

    def _bump_generation(self) -> None:
        """Count the changes to the events, so caches built from them know when to rebuild.
        A load that adds nothing changes nothing (stitching needs a new event)."""
        self.db.execute(
            "INSERT OR REPLACE INTO meta SELECT 'generation', CAST(coalesce(max(TRY_CAST(value "
            "AS BIGINT)), 0) + 1 AS VARCHAR) FROM meta WHERE key = 'generation'"
        )

    @property
    def generation(self) -> int:
        """How many loads have changed the events (0 for a new store)."""
        value = self.db.scalar("SELECT value FROM meta WHERE key = 'generation'")
        return int(value) if value is not None else 0

    # -- reading ------------------------------------------------------------------------
    def info(self, *, timeline_pass: bool = False) -> dict[str, Any]:
        """Counts and ranges: events, persons, sessions, orders, first and last event,
        events by name and by channel.

        With ``timeline_pass``, or when another caller already made it, the counts come
        from one compiled pass over the timeline (:mod:`shopfunnel.store.counts`, shared
        with the daily activity) when it can serve: worth it in a process that runs
        compiled code anyway (the report, the dashboard). Alone, SQL is faster: loading
        the compiled code costs about a second."""
        from shopfunnel.store import counts, person_index

        db = self.db
        found = counts.of_store(self, compute=timeline_pass)
        if found is not None:
            index = person_index.of_store(self, build=False)
            persons = (
                len(index)
                if index is not None
                else int(db.scalar("SELECT count(DISTINCT person_id) FROM events"))
            )
            orders = db.scalar(
                "SELECT count(DISTINCT order_id) FROM events WHERE event = 'purchase'"
            )
            return {
                "events": found.events,
                "persons": persons,
                "sessions": found.sessions,
                "orders": int(orders or 0),
                "first_event": _iso(found.first_us) if found.events else None,
                "last_event": _iso(found.last_us) if found.events else None,
                "events_by_name": dict(found.events_by_name),
                "sessions_by_channel": dict(found.sessions_by_channel),
            }
        return self.info_sql()

    def info_sql(self) -> dict[str, Any]:
        """:meth:`info` by SQL over the events (the reference; the path taken when the
        timeline cannot serve)."""
        from shopfunnel.store import person_index

        db = self.db
        index = person_index.of_store(self, build=False)  # the ids beside the timeline
        with hash_threads(db):
            events, persons, sessions, first, last = db.rows(
                "SELECT count(*), "
                + ("NULL" if index is not None else "count(DISTINCT person_id)")
                + ", count(DISTINCT session_id), min(ts), max(ts) FROM events"
            )[0]
            by_channel = dict(
                db.rows(
                    "SELECT coalesce(channel, 'unassigned'), count(DISTINCT session_id) "
                    "FROM events GROUP BY 1 ORDER BY 2 DESC"
                )
            )
        if index is not None:
            persons = len(index)
        orders = db.scalar("SELECT count(DISTINCT order_id) FROM events WHERE event = 'purchase'")
        by_event = dict(db.rows("SELECT event, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC"))
        return {
            "events": int(events),
            "persons": int(persons),
            "sessions": int(sessions),
            "orders": int(orders or 0),
            "first_event": None if first is None else first.isoformat(),
            "last_event": None if last is None else last.isoformat(),
            "events_by_name": {k: int(v) for k, v in by_event.items()},
            "sessions_by_channel": {k: int(v) for k, v in by_channel.items()},
        }

    def events(self, columns: list[str] | None = None) -> pd.DataFrame:
        """All stored events (with ``person_id``) as a DataFrame, ordered by time."""
        cols = "*" if columns is None else ", ".join(quote_ident(c) for c in columns)
        return self.db.df(f"SELECT {cols} FROM events ORDER BY ts, event_id")

    def table(self, name: Literal["persons", "sessions", "orders", "identities"]) -> pd.DataFrame:
        """One of the derived tables as a DataFrame."""
        if name not in ("persons", "sessions", "orders", "identities"):
            raise ConfigError(
                f"no derived table {name!r}: use persons, sessions, orders or identities"
            )
        return self.db.df(f"SELECT * FROM {name}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _iso(micros: int) -> str:
    """µs since 1970 as the ISO text of a naive UTC datetime (as DuckDB's TIMESTAMP gives)."""
    import datetime as dt

    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(micros))).isoformat()


def to_arrow(data: Any) -> pa.Table:
    """An Arrow table from pandas, Polars or Arrow data."""
    if isinstance(data, pa.Table):
        return data
    if is_pandas_frame(data):
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "to_arrow"):
        return data.to_arrow()
    raise ConfigError(
        f"cannot load a {type(data).__name__}: give a pandas or Polars DataFrame, an Arrow "
        "table, or a file path"
    )
