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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import pyarrow as pa

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError, InputError, Reject, StoreError, ValidationError
from shopfunnel.store import schema
from shopfunnel.store.channels import channel_sql
from shopfunnel.store.db import Database, is_pandas_frame, quote_ident, quote_literal
from shopfunnel.store.timeline import store_key

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_PATH = "shopfunnel.duckdb"
SCHEMA_VERSION = 1
OnError = Literal["fail", "skip"]
LINE = "__line"


@dataclass
class Staged:
    """A source ready to load: a table with canonical column names and a ``__line`` column.

    ``table`` is an Arrow table (or anything DuckDB can register); ``sql`` is a SELECT
    DuckDB can run instead (used for large Parquet files, which are never read into
    memory). ``source`` names the file in messages; ``line_label`` says what ``__line``
    counts (``line`` for text files, ``row`` for tables). ``rejects`` are rows the
    importer could not even turn into a staged row (a line that is not JSON, say): they
    are reported with the store's own rejects and count as read.
    """

    source: str
    table: Any = None
    sql: str | None = None
    params: list[Any] = field(default_factory=list)
    line_label: str = "line"
    rejects: tuple[Reject, ...] = ()


@dataclass(frozen=True)
class LoadResult:
    """What a load did: rows read, rows added, duplicates skipped and rows rejected."""

    source: str
    rows_read: int
    rows_added: int
    duplicates: int
    rejects: tuple[Reject, ...] = ()


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
        typed = {c: _typed_expr(c, types[c]) for c in present}
        if not staged.rejects and "event_id" in types and self._is_empty():
            note("writing")
            first = self._first_load(staged, present, types, typed)
            if first is not None:
                return first
        note("validating")
        checks = _checks(present, typed, types)
        any_bad = " OR ".join(f"({cond})" for _, cond, _ in checks)
        nulls = {
            c: (f"count(*) FILTER (WHERE {quote_ident(c)} IS NULL)" if c in types else "count(*)")
            for c in ("event_id", "session_id", "channel")
        }
        distinct_ids = "count(DISTINCT event_id)" if "event_id" in types else "0"
        with _hash_threads(db):
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
                    early + self._describe_rejects(staged.source, checks, types),
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
        prepared = self._prepare_sql(
            present,
            typed,
            where,
            derive_sessions=bool(null_sessions),
            derive_channels=bool(null_channels),
            hash_ids=bool(null_ids),
            dedup=bool(null_ids) or unique_ids + (1 if null_ids else 0) < staged_rows,
            continue_stored=stored,
        )
        from shopfunnel.store import live

        # a kept timeline is extended by this load's rows (store/live.py), not rebuilt
        extend = stored and live.wanted(self)
        with db.transaction():
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
                self._stitch(record_moves=from_key is not None)
                db.execute("DROP TABLE IF EXISTS __linked")
            if added:
                self._bump_generation()
        if from_key is not None:
            try:
                if (
                    added
                    and live.append(self, from_key, store_key(db)) is not None
                    and (not self.live_timeline)
                ):
                    live.compact_if_large(self)  # a live server compacts in its own thread
            except (OSError, duckdb.Error):
                pass  # the events are stored; without this segment the next funnel rebuilds
            finally:
                db.execute("DROP TABLE IF EXISTS __fresh")
                db.execute("DROP TABLE IF EXISTS __moved")
        db.execute("DROP TABLE IF EXISTS __bad")
        return LoadResult(
            source=staged.source,
            rows_read=int(rows_read),
            rows_added=added,
            duplicates=int(staged_rows) - int(bad_count) - added,
            rejects=rejects,
        )

    def _is_empty(self) -> bool:
        return not self.db.rows("SELECT 1 FROM events LIMIT 1")

    def _first_load(
        self, staged: Staged, present: list[str], types: dict[str, str], typed: dict[str, str]
    ) -> LoadResult | None:
        """Load into an empty store in one typed pass, or return None to take the general path.

        The pass computes each typed column once and raises (``error()`` in SQL) on the
        first row the general path would reject or have to repair: a failed check, a
        missing ``event_id``, or a missing ``session_id``/``channel`` in a source that has
        the column (sources without the column get them derived as usual). After the
        insert, a repeated ``event_id`` also sends the load back. Anything that sends it
        back rolls the whole transaction back, so the general path starts from the same
        empty store and describes the rejects by line. Identities are computed from the
        source before the insert, so ``person_id`` is written stitched, with no UPDATE.
        """
        db = self.db
        prepared = self._prepare_sql(
            present,
            typed,
            "TRUE",
            derive_sessions="session_id" not in types,
            derive_channels="channel" not in types,
            hash_ids=False,
            dedup=False,
            guard_types=types,
        )
        cols = ", ".join(quote_ident(c) for c in schema.COLUMN_NAMES)
        new_cols = ", ".join(f"n.{quote_ident(c)}" for c in schema.COLUMN_NAMES)
        try:
            with db.transaction():
                if "user_id" in types:
                    # The general path's _stitch over the same rows, before they are written
                    # (the raw IS NOT NULL is pushed into a Parquet scan).
                    anon = typed.get("anonymous_id", "NULL")
                    db.execute(
                        "CREATE OR REPLACE TEMP TABLE __ids AS SELECT coalesce("
                        f"{anon}, {typed['user_id']}) AS anonymous_id, arg_min("
                        f"{typed['user_id']}, {typed['ts']}) AS person_id FROM __src "
                        f"WHERE user_id IS NOT NULL AND {typed['user_id']} IS NOT NULL GROUP BY 1"
                    )
                    person = "coalesce(n.user_id, i.person_id, n.anonymous_id)"
                    join = "LEFT JOIN __ids i ON i.anonymous_id = n.anonymous_id"
                else:
                    person, join = "n.anonymous_id", ""
                db.execute(
                    f"INSERT INTO events ({cols}, person_id) WITH __new AS ({prepared}) "
                    f"SELECT {new_cols}, {person} FROM __new n {join}"
                )
                with _hash_threads(db):
                    added, unique = db.rows(
                        "SELECT count(*), count(DISTINCT event_id) FROM events"
                    )[0]
                if not added or unique < added:
                    raise _FirstLoadRefused
                if "user_id" in types:
                    db.execute("INSERT OR REPLACE INTO identities SELECT * FROM __ids")
                self._bump_generation()
        except (_FirstLoadRefused, duckdb.Error):
            return None
        finally:
            db.execute("DROP TABLE IF EXISTS __ids")
        return LoadResult(
            source=staged.source, rows_read=int(added), rows_added=int(added), duplicates=0
        )

    def _describe_rejects(
        self, source: str, checks: list[tuple[str, str, str]], types: dict[str, str]
    ) -> tuple[Reject, ...]:
        """Every failed check of the rows in ``__bad``, as Rejects ordered by line."""
        reject_sql = " UNION ALL ".join(
            f"SELECT {LINE} AS line, ? AS col, ? AS reason, "
            f"CAST({quote_ident(name) if name in types else 'NULL'} AS VARCHAR) AS value "
            f"FROM __bad WHERE {cond}"
            for name, cond, _ in checks
        )
        params: list[Any] = []
        for name, _, reason in checks:
            params += [name, reason]
        found = self.db.rows(
            f"SELECT line, col, reason, value FROM ({reject_sql}) ORDER BY line, col", params
        )
        return tuple(
            Reject(source, int(line), col, reason, value) for line, col, reason, value in found
        )

    def _prepare_sql(
        self,
        present: list[str],
        typed: dict[str, str],
        where: str,
        *,
        derive_sessions: bool,
        derive_channels: bool,
        hash_ids: bool,
        dedup: bool,
        guard_types: dict[str, str] | None = None,
        continue_stored: bool = False,
    ) -> str:
        """SELECT the staged rows as canonical typed columns with derived values filled in.

        Only the derivations the rows need are planned: a source that carries event ids,
        sessions and channels is copied in one pass. Given the source's column types as
        ``guard_types``, the SELECT raises
        (message ``REFUSED``) on the first row that fails a check of :func:`_checks` or
        lacks an ``event_id``, ``session_id`` or ``channel`` that is not derived here.
        With ``continue_stored``, derived sessions continue the latest stored session of
        their anonymous id (same gap rule; ADR 0152), and rows of a session the store
        already holds take its channel.
        """
        select = []
        for c in schema.COLUMNS:
            expr = typed[c.name] if c.name in present else f"CAST(NULL AS {c.sql_type})"
            select.append(f"{expr} AS {quote_ident(c.name)}")
        if guard_types is not None:
            ctes = [
                _guarded_typed_cte(present, guard_types, typed, derive_sessions, derive_channels)
            ]
        else:
            ctes = [f"typed AS (SELECT {', '.join(select)}, {LINE} FROM __src WHERE {where})"]
        replaced = ["coalesce(anonymous_id, user_id) AS anonymous_id"]
        if hash_ids:
            row_hash_cols = [quote_ident(c) for c in schema.COLUMN_NAMES if c != "event_id"]
            row_hash = (
                "md5(concat_ws('\x1f', "
                + ", ".join(f"coalesce(CAST({c} AS VARCHAR), '')" for c in row_hash_cols)
                + "))"
            )
            replaced.append(f"coalesce(event_id, {row_hash}) AS event_id")
        ctes.append(f"filled AS (SELECT * REPLACE ({', '.join(replaced)}) FROM typed)")
        last = "filled"
        if dedup:  # the first row of an event id wins
            ctes.append(
                "dedup AS (SELECT * FROM filled QUALIFY row_number() OVER "
                f"(PARTITION BY event_id ORDER BY {LINE}) = 1)"
            )
            last = "dedup"
        if derive_sessions:
            gap = self.session_timeout_seconds
            if continue_stored:
                # the latest stored event of each anonymous id takes part (ADR 0152): a
                # visit split across two loads stays one session and keeps its id
                ctes.append(f"""prev AS (
                    SELECT anonymous_id, max(ts) AS ts, arg_max(session_id, ts) AS __prev_sid,
                           TRUE AS __prev
                    FROM events WHERE anonymous_id IN (
                        SELECT anonymous_id FROM {last} WHERE session_id IS NULL)
                    GROUP BY anonymous_id
                )""")
                ctes.append(f"""withprev AS (
                    SELECT *, FALSE AS __prev, CAST(NULL AS VARCHAR) AS __prev_sid FROM {last}
                    UNION ALL BY NAME SELECT * FROM prev
                )""")
                last = "withprev"
            order = f"ORDER BY ts, {LINE} NULLS FIRST"
            ctes.append(f"""starts AS (
                SELECT *, CASE WHEN epoch(ts) - epoch(lag(ts) OVER w) <= {gap} THEN 0 ELSE 1 END
                    AS __new
                FROM {last} WINDOW w AS (PARTITION BY anonymous_id, session_id IS NULL {order})
            )""")
            ctes.append(f"""gaps AS (
                SELECT * EXCLUDE (__new), CASE WHEN session_id IS NULL THEN sum(__new) OVER (
                    PARTITION BY anonymous_id, session_id IS NULL {order}
                    ROWS UNBOUNDED PRECEDING) END AS __sess
                FROM starts
            )""")
            stored_sid = (
                "max(__prev_sid) OVER (PARTITION BY anonymous_id, __sess), "
                if continue_stored
                else ""
            )
            ctes.append(
                "sessioned AS (SELECT * EXCLUDE (__sess) REPLACE (coalesce(session_id, "
                f"{stored_sid}anonymous_id || ':' || CAST(epoch_us(first_value(ts) OVER ("
                "PARTITION BY anonymous_id, __sess ORDER BY ts)) AS VARCHAR)) AS session_id) "
                "FROM gaps)"
            )
            last = "sessioned"
            if continue_stored:
                ctes.append(
                    "sessioned_new AS (SELECT * EXCLUDE (__prev, __prev_sid) FROM "
                    "sessioned WHERE NOT __prev)"
                )
                last = "sessioned_new"
        if derive_channels:
            # A session's channel is the one its first event came from (GA4's session scope).
            channel = channel_sql("utm_source", "utm_medium", "utm_campaign", "referrer", "page")
            first = (
                f"first_value(coalesce(channel, {channel})) OVER (PARTITION BY session_id "
                f"ORDER BY ts, {LINE})"
            )
            stored_ch = "NULL"
            if continue_stored:  # a session the store holds keeps its channel (ADR 0072)
                ctes.append(
                    f"with_stored AS (SELECT n.*, s.__ch FROM {last} n LEFT JOIN (SELECT "
                    "session_id AS __sid, arg_min(channel, ts) AS __ch FROM events WHERE "
                    f"session_id IN (SELECT session_id FROM {last}) GROUP BY session_id) s "
                    "ON s.__sid = n.session_id)"
                )
                last, stored_ch = "with_stored", "__ch"
            ctes.append(
                f"channelled AS (SELECT * REPLACE (coalesce(channel, {stored_ch}, "
                f"{first}) AS channel) FROM {last})"
            )
            last = "channelled"
        cols = ", ".join(quote_ident(c) for c in schema.COLUMN_NAMES)
        return f"WITH {', '.join(ctes)} SELECT {cols} FROM {last}"

    def _stitch(self, *, record_moves: bool = False) -> None:
        """Map every anonymous id seen with a user id to that (earliest) user id.

        With ``record_moves``, the persons whose rows the stitching changed (each moved
        row's new owner and its old one: the anonymous id itself or the user it was
        stitched to before) are added to the temporary table ``__moved``, for the
        timeline's delta (:mod:`shopfunnel.store.live`)."""
        db = self.db
        if record_moves:
            db.execute(
                "CREATE OR REPLACE TEMP TABLE __prior_ids AS SELECT * FROM identities "
                "WHERE anonymous_id IN (SELECT anonymous_id FROM __linked)"
            )
        db.execute(
            """
            INSERT OR REPLACE INTO identities
            SELECT anonymous_id, arg_min(user_id, ts) FROM events
            WHERE user_id IS NOT NULL AND anonymous_id IN (
                SELECT anonymous_id FROM __linked)
            GROUP BY anonymous_id
            """
        )
        update = """
            UPDATE events SET person_id = i.person_id FROM identities i
            WHERE events.anonymous_id = i.anonymous_id AND events.user_id IS NULL
              AND events.person_id <> i.person_id
              AND i.anonymous_id IN (SELECT anonymous_id FROM __linked)
            """
        if not record_moves:
            db.execute(update)
            return
        moved = db.arrow(update + " RETURNING events.anonymous_id AS a, events.person_id AS p")
        db.register("__moved_rows", moved)
        try:
            db.execute(
                """
                INSERT INTO __moved
                SELECT DISTINCT x FROM (
                    SELECT a AS x FROM __moved_rows UNION ALL SELECT p FROM __moved_rows
                    UNION ALL SELECT o.person_id FROM __prior_ids o
                    WHERE o.anonymous_id IN (SELECT a FROM __moved_rows))
                WHERE x NOT IN (SELECT person_id FROM __moved)
                """
            )
        finally:
            db.unregister("__moved_rows")
            db.execute("DROP TABLE IF EXISTS __prior_ids")

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
        with _hash_threads(db):
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


@contextmanager
def _hash_threads(db: Database, at_least: int = 4) -> Iterator[None]:
    """Run a large hash aggregate (``count(DISTINCT)`` of 10M ids) with at least
    ``at_least`` DuckDB threads. DuckDB sizes the aggregate's hash tables per thread: on
    2 cores, 2 threads took 1.6–2.0 s CPU for 10M distinct ids and 4 threads 0.73 s."""
    threads = int(db.scalar("SELECT current_setting('threads')"))
    if threads >= at_least:
        yield
        return
    db.execute(f"SET threads = {int(at_least)}")
    try:
        yield
    finally:
        db.execute(f"SET threads = {threads}")


class _FirstLoadRefused(Exception):
    """The first-load pass met a row it cannot write as is: take the general path."""


REFUSED = "shopfunnel: row needs the general load path"


def _guarded_typed_cte(
    present: list[str],
    types: dict[str, str],
    typed: dict[str, str],
    derive_sessions: bool,
    derive_channels: bool,
) -> str:
    """The ``typed`` CTE of :meth:`Store._prepare_sql` that raises instead of filtering.

    Each typed value is computed once, in an inner projection next to its raw value; the
    outer projection passes the typed values on and tests every condition of
    :func:`_checks` (rewritten over the inner columns) in one ``CASE`` around
    ``event_id`` that calls ``error()`` on a bad row. DuckDB keeps the two projections
    apart, so no cast (and no JSON parse) is evaluated twice. A text column that stays
    text needs no cast: its only failure is the empty string, which the general path
    reads as missing and rejects.
    """
    must_have = (
        {"event_id"}
        | ({"session_id"} if not derive_sessions else set())
        | ({"channel"} if not derive_channels else set())
    )
    inner, value, bad = [], {}, []
    for name in present:
        col = schema.BY_NAME[name]
        raw = quote_ident("r_" + name)
        inner.append(f"{quote_ident(name)} AS {raw}")
        if col.sql_type == "VARCHAR" and types[name] == "VARCHAR":
            value[name] = raw
            bad.append(f"{raw} = ''")
        else:
            value[name] = quote_ident("t_" + name)
            inner.append(f"{typed[name]} AS {value[name]}")
            bad.append(f"({raw} IS NOT NULL AND {value[name]} IS NULL)")
        if col.required or name in must_have:
            bad.append(f"{raw} IS NULL")
    who = [quote_ident("r_" + c) for c in ("anonymous_id", "user_id") if c in present]
    bad.append("(" + " AND ".join(f"{w} IS NULL" for w in who) + ")")
    outer = []
    for col in schema.COLUMNS:
        name = quote_ident(col.name)
        if col.name == "event_id":
            outer.append(
                f"CASE WHEN {' OR '.join(bad)} THEN error({quote_literal(REFUSED)}) "
                f"ELSE {value['event_id']} END AS {name}"
            )
        elif col.name in present:
            outer.append(f"{value[col.name]} AS {name}")
        else:
            outer.append(f"CAST(NULL AS {col.sql_type}) AS {name}")
    return (
        f"typed AS (SELECT {', '.join(outer)}, {LINE} FROM (SELECT {', '.join(inner)}, {LINE} "
        "FROM __src))"
    )


def _checks(
    present: list[str], typed: dict[str, str], types: dict[str, str]
) -> list[tuple[str, str, str]]:
    """(column, SQL condition that is true for a bad row, reason) for each rule.

    A value is bad when it is present but its typed form is NULL; for a text column
    that stays text that is exactly the empty string, tested without the cast."""
    checks = []
    for name in present:
        col = schema.BY_NAME[name]
        raw = quote_ident(name)
        if col.required:
            checks.append((name, f"{raw} IS NULL", "is required and missing"))
        unreadable = (
            f"{raw} = ''"
            if col.sql_type == "VARCHAR" and types[name] == "VARCHAR"
            else f"{raw} IS NOT NULL AND {typed[name]} IS NULL"
        )
        checks.append((name, unreadable, f"cannot be read as {_human_type(col.sql_type)}"))
    who = [quote_ident(c) for c in ("anonymous_id", "user_id") if c in present]
    checks.append(
        (
            "anonymous_id",
            " AND ".join(f"{w} IS NULL" for w in who),
            "the row has neither anonymous_id nor user_id",
        )
    )
    return checks


def _human_type(sql_type: str) -> str:
    if sql_type == "TIMESTAMP":
        return "a timestamp (ISO 8601, e.g. 2024-03-15T10:30:00Z; no zone means UTC)"
    if sql_type.startswith("DECIMAL"):
        return "a number"
    if sql_type.startswith("STRUCT"):
        return (
            "a list of items (a JSON array of objects with only item_id, item_name, "
            "item_category, price, quantity)"
        )
    if sql_type == "JSON":
        return 'a JSON object ({"key": value, …})'
    return sql_type.lower()


def _typed_expr(name: str, source_type: str) -> str:
    """A SQL expression casting the staged column to its canonical type, NULL if it can't."""
    col = schema.BY_NAME[name]
    raw = quote_ident(name)
    if col.sql_type == "TIMESTAMP":
        if source_type.startswith("TIMESTAMP WITH TIME ZONE"):
            # The UTC wall clock is the instant's epoch: plain arithmetic, where
            # timezone('UTC', …) goes through ICU's calendar (0.7 s CPU per 10M rows).
            # ±infinity has no epoch and keeps the ICU conversion.
            return (
                f"CASE WHEN isfinite({raw}) THEN make_timestamp(epoch_us({raw})) "
                f"ELSE CAST(timezone('UTC', {raw}) AS TIMESTAMP) END"
            )
        if source_type.startswith("TIMESTAMP") or source_type == "DATE":
            return f"CAST({raw} AS TIMESTAMP)"
        if source_type in ("BIGINT", "INTEGER", "HUGEINT", "DOUBLE"):
            return f"make_timestamp(CAST({raw} AS BIGINT) * 1000000)"
        return f"CAST(timezone('UTC', TRY_CAST({raw} AS TIMESTAMPTZ)) AS TIMESTAMP)"
    if col.sql_type == "JSON":  # properties: a JSON object, nothing else
        if source_type == "VARCHAR" or source_type == "JSON":
            # valid JSON whose text starts with '{' is an object (no second parse)
            return (
                f"CASE WHEN starts_with(ltrim(CAST({raw} AS VARCHAR)), '{{') "
                f"THEN TRY_CAST({raw} AS JSON) END"
            )
        return (
            f"CASE WHEN json_type(to_json({raw})) = 'OBJECT' THEN CAST(to_json({raw}) AS JSON) END"
        )
    if col.name == "items" and source_type in ("VARCHAR", "JSON"):
        # the cast to the item type drops unknown keys and reads a non-object as an empty
        # item: refuse both, as the collector does, rather than lose what they carried
        fields = ", ".join(quote_literal(f) for f in schema.ITEM_FIELDS)
        parsed = f"TRY_CAST({raw} AS JSON)"
        foreign = (
            f"list_bool_or(list_transform(TRY_CAST({parsed} AS JSON[]), lambda it: "
            f"json_type(it) <> 'OBJECT' OR NOT list_has_all([{fields}], json_keys(it))))"
        )
        return f"CASE WHEN {foreign} THEN NULL ELSE TRY_CAST({parsed} AS {col.sql_type}) END"
    if col.sql_type == "VARCHAR":
        return f"NULLIF(CAST({raw} AS VARCHAR), '')"
    return f"TRY_CAST({raw} AS {col.sql_type})"


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
