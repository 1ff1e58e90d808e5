"""Staged rows into events: the SQL that types them and fills what they lack (an event
id from the row's hash, sessions from 30 minutes of inactivity, the channel of the session's
first event, the first row of a repeated event id), and the one-pass load of an empty store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import duckdb

from shopfunnel.errors import InputError
from shopfunnel.store import schema
from shopfunnel.store.channels import channel_sql
from shopfunnel.store.checks import FirstLoadRefused, guarded_typed_cte, typed_expr
from shopfunnel.store.db import Database, hash_threads, quote_ident
from shopfunnel.store.memory import bulk_memory
from shopfunnel.store.staged import LINE, LoadResult, Staged

if TYPE_CHECKING:
    import pyarrow as pa

    from shopfunnel.store.store import Store


# the table of each session's first (and stored) channel a large load fills first (ADR 0196)
FIRST_CHANNELS = "__first_channels"

# what the session and channel derivations read (they run on these alone)
_KEY_COLUMNS = (
    "anonymous_id",
    "session_id",
    "ts",
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "referrer",
    "page",
)


def prepare_sql(
    present: list[str],
    typed: dict[str, str],
    where: str,
    *,
    session_timeout_seconds: float,
    derive_sessions: bool,
    derive_channels: bool,
    hash_ids: bool,
    dedup: bool,
    guard_types: dict[str, str] | None = None,
    continue_stored: bool = False,
    narrow_windows: bool = False,
    first_channels: str | None = None,
    channels_only: bool = False,
) -> str:
    """SELECT the staged rows as canonical typed columns with derived values filled in.

    Only the derivations the rows need are planned: a source that carries event ids,
    sessions and channels is copied in one pass. Given the source's column types as
    ``guard_types``, the SELECT raises
    (message ``REFUSED``) on the first row that fails a check of :func:`checks_of` or
    lacks an ``event_id``, ``session_id`` or ``channel`` that is not derived here.
    With ``continue_stored``, derived sessions continue the latest stored session of
    their anonymous id (same gap rule; ADR 0152), and rows of a session the store
    already holds take its channel. With ``narrow_windows`` (loads under a million rows:
    the collector's), the session and channel windows run on the columns they read and
    their results join back by row, instead of sorting whole rows (ADR 0184); large loads
    keep the one pass over whole rows, whose sorts spill, rather than holding a
    materialised copy and a join of every row.

    With ``channels_only`` (a source without a ``channel`` column; sessions not derived)
    the SELECT is instead each session's first channel and, with ``continue_stored``, the
    channel the store holds for it (``__csid``, ``__first``, ``__ch``). Given that table's
    name as ``first_channels``, the rows take their channels from it rather than from
    aggregates in the same query, which held every whole row until the last one was read
    (ADR 0196).
    """
    if channels_only and ("channel" in present or derive_sessions):
        raise ValueError("channels_only is for sources with sessions and no channel column")
    select = []
    for c in schema.COLUMNS:
        expr = typed[c.name] if c.name in present else f"CAST(NULL AS {c.sql_type})"
        select.append(f"{expr} AS {quote_ident(c.name)}")
    if guard_types is not None:
        ctes = [guarded_typed_cte(present, guard_types, typed, derive_sessions, derive_channels)]
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
    wide = None
    if narrow_windows and (derive_sessions or derive_channels):
        # The windows below sort their rows by person and session: they run on the few
        # columns they read (the row, who, when, the session and the channel's inputs),
        # not on every column of the events (items, properties, ...), which they would
        # otherwise carry through each sort; the results join back by the row (ADR 0184).
        ctes.append(f"wide AS MATERIALIZED (SELECT *, row_number() OVER () AS __rid FROM {last})")
        ctes.append(f"narrow AS (SELECT __rid, {LINE}, {', '.join(_KEY_COLUMNS)} FROM wide)")
        wide, last = "wide", "narrow"
    if derive_sessions:
        gap = session_timeout_seconds
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
            "max(__prev_sid) OVER (PARTITION BY anonymous_id, __sess), " if continue_stored else ""
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
        # One aggregate per session (its first row by time, then by input line) joined back
        # by the session: a hash aggregate and a join instead of a window that sorts every
        # row by session (ADR 0183). ``arg_min_null`` keeps the first row's value even
        # when NULL, as ``first_value`` did; the rule below never gives NULL.
        # a session the store holds keeps its channel (ADR 0072)
        stored = (
            "SELECT session_id AS __sid, arg_min(channel, ts) AS __ch FROM events WHERE "
            "session_id IN (SELECT {sessions}) GROUP BY session_id"
        )
        if channels_only:
            # The source has no channel column: each session's first row's inputs, then
            # the rule once per session (not once per distinct inputs, joined to every row),
            # and the channel the store holds for it.
            inputs = ("utm_source", "utm_medium", "utm_campaign", "referrer", "page")
            rule = channel_sql(*(f"f.__in.{c}" for c in inputs))
            ctes.append(
                "first_inputs AS (SELECT session_id AS __csid, arg_min_null(struct_pack("
                f"{', '.join(inputs)}), (ts, {LINE})) AS __in FROM {last} GROUP BY session_id)"
            )
            held = stored.format(sessions="__csid FROM first_inputs")
            return f"WITH {', '.join(ctes)} SELECT f.__csid, {rule} AS __first, " + (
                f"s.__ch FROM first_inputs f LEFT JOIN ({held}) s ON s.__sid = f.__csid"
                if continue_stored
                else "CAST(NULL AS VARCHAR) AS __ch FROM first_inputs f"
            )
        if first_channels is not None:
            joined, stored_ch = first_channels, "f.__ch"
        else:
            channel = channel_sql("utm_source", "utm_medium", "utm_campaign", "referrer", "page")
            ctes.append(
                f"first_channel AS (SELECT session_id AS __csid, arg_min_null(coalesce(channel, "
                f"{channel}), (ts, {LINE})) AS __first FROM {last} GROUP BY session_id)"
            )
            joined, stored_ch = "first_channel", "NULL"
            if continue_stored:
                held = stored.format(sessions=f"session_id FROM {last}")
                ctes.append(
                    f"with_stored AS (SELECT n.*, s.__ch FROM {last} n LEFT JOIN ({held}) s "
                    "ON s.__sid = n.session_id)"
                )
                last, stored_ch = "with_stored", "__ch"
        ctes.append(
            f"channelled AS (SELECT n.* REPLACE (coalesce(n.channel, {stored_ch}, "
            f"f.__first) AS channel) FROM {last} n JOIN {joined} f "
            "ON f.__csid IS NOT DISTINCT FROM n.session_id)"
        )
        last = "channelled"
    cols = ", ".join(quote_ident(c) for c in schema.COLUMN_NAMES)
    if wide is not None:
        wide_cols = ", ".join(
            f"k.{quote_ident(c)}" if c in ("session_id", "channel") else f"w.{quote_ident(c)}"
            for c in schema.COLUMN_NAMES
        )
        return (
            f"WITH {', '.join(ctes)} SELECT {wide_cols} FROM {wide} w "
            f"JOIN {last} k ON k.__rid = w.__rid"
        )
    return f"WITH {', '.join(ctes)} SELECT {cols} FROM {last}"


def first_load(
    store: Store, staged: Staged, present: list[str], types: dict[str, str], typed: dict[str, str]
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
    db = store.db
    try:
        with db.transaction():
            _insert_first(db, present, types, typed, store.session_timeout_seconds)
            with hash_threads(db):
                added, unique = db.rows("SELECT count(*), count(DISTINCT event_id) FROM events")[0]
            if not added or unique < added:
                raise FirstLoadRefused
            store._bump_generation()
    except duckdb.OutOfMemoryException:
        raise  # not a row the general path treats: it would need the memory too
    except (FirstLoadRefused, duckdb.Error):
        return None
    finally:
        _drop_scratch(db)
    return LoadResult(
        source=staged.source, rows_read=int(added), rows_added=int(added), duplicates=0
    )


def _insert_first(
    db: Database,
    present: list[str],
    types: dict[str, str],
    typed: dict[str, str],
    session_timeout_seconds: float,
    *,
    replace_ids: bool = True,
) -> None:
    """The writes of :func:`first_load` for the rows in ``__src``: the guarded typed pass
    into ``events`` with ``person_id`` stitched, and the identities those rows make (raises
    :class:`FirstLoadRefused` or a DuckDB error on a row the general path would treat).
    Rows that carry their sessions but no channel take each session's first channel from
    :data:`FIRST_CHANNELS`, filled before the insert from the columns it needs (ADR 0196).
    The caller drops the scratch tables (:func:`_drop_scratch`) once the transaction ends."""
    first_channels = None
    if "channel" not in types and "session_id" in types:
        first_channels = fill_first_channels(
            db, present, typed, "TRUE", session_timeout_seconds=session_timeout_seconds
        )
    prepared = prepare_sql(
        present,
        typed,
        "TRUE",
        session_timeout_seconds=session_timeout_seconds,
        derive_sessions="session_id" not in types,
        derive_channels="channel" not in types,
        hash_ids=False,
        dedup=False,
        guard_types=types,
        first_channels=first_channels,
    )
    cols = ", ".join(quote_ident(c) for c in schema.COLUMN_NAMES)
    new_cols = ", ".join(f"n.{quote_ident(c)}" for c in schema.COLUMN_NAMES)
    if "user_id" in types:
        # The general path's stitching (identities.stitch) over the same rows,
        # before they are written (the raw IS NOT NULL is pushed into a Parquet scan).
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
    if "user_id" in types:  # a repeated anonymous id fails without replace_ids
        db.execute(
            f"INSERT {'OR REPLACE ' if replace_ids else ''}INTO identities SELECT * FROM __ids"
        )


def fill_first_channels(
    db: Database,
    present: list[str],
    typed: dict[str, str],
    where: str,
    *,
    session_timeout_seconds: float,
    continue_stored: bool = False,
) -> str:
    """Fill :data:`FIRST_CHANNELS` with each session's first channel of the rows in ``__src``
    (and, with ``continue_stored``, the channel the store holds for it): the table
    :func:`prepare_sql` then reads as ``first_channels`` (ADR 0196). Returns its name; the
    caller drops it once the load's transaction ends."""
    channels = prepare_sql(
        present,
        typed,
        where,
        session_timeout_seconds=session_timeout_seconds,
        derive_sessions=False,
        derive_channels=True,
        hash_ids=False,
        dedup=False,
        continue_stored=continue_stored,
        channels_only=True,
    )
    db.execute(f"CREATE OR REPLACE TEMP TABLE {FIRST_CHANNELS} AS {channels}")
    return FIRST_CHANNELS


def _drop_scratch(db: Database) -> None:
    """Drop the temporary tables of :func:`_insert_first` (after its transaction: a
    statement inside a failed one would raise in place of the error)."""
    db.execute("DROP TABLE IF EXISTS __ids")
    db.execute(f"DROP TABLE IF EXISTS {FIRST_CHANNELS}")


def load_blocks(
    store: Store,
    blocks: Iterable[pa.Table],
    *,
    source: str,
    loaded: Callable[[int], None] | None = None,
) -> LoadResult:
    """Load Arrow tables of canonical events into an empty store, one table at a time, as
    :func:`first_load` would load them all at once: the same guarded typed pass, the
    same ``person_id`` and identities. For a generator's output (the sample's blocks,
    :func:`shopfunnel.sample.load_sample`): no file is written and read back, and a table
    is written while the next one is made.

    The contract, which makes the per-table stitching equal the whole source's: no
    anonymous id has rows in two tables, and event ids are unique. A table that breaks a
    check, an anonymous id identified in two tables or a repeated event id raises
    :class:`~shopfunnel.errors.InputError`, and the store is emptied again (each table is
    committed on its own, which keeps memory at a few tables whatever the size).
    ``loaded`` is called with the rows written so far after each table.
    """
    db = store.db
    if not store._is_empty():
        raise InputError(
            f"{source}: the store already holds events; load the sample into a new store "
            "(delete the file, or pass --fresh to the demo)"
        )
    added = 0
    types: dict[str, str] | None = None
    try:
        with bulk_memory(db):  # DuckDB's share capped, as any load's (ADR 0172)
            for table in blocks:
                if not table.num_rows:
                    continue
                db.register("__blk", table)
                try:
                    # a transaction per table: DuckDB holds a table's Arrow buffers until
                    # its transaction ends (one transaction for 10M rows peaked at 3.6 GiB)
                    with db.transaction():
                        db.execute(
                            f"CREATE OR REPLACE TEMP VIEW __src AS SELECT *, 0 AS {LINE} FROM __blk"
                        )
                        if types is None:
                            described = db.rows("DESCRIBE SELECT * FROM __blk")
                            types = {name: typ for name, typ, *_ in described}
                        typed = {c: typed_expr(c, types[c]) for c in types}
                        _insert_first(
                            db,
                            list(types),
                            types,
                            typed,
                            store.session_timeout_seconds,
                            replace_ids=False,
                        )
                finally:
                    db.execute("DROP VIEW IF EXISTS __src")
                    _drop_scratch(db)
                    db.unregister("__blk")
                added += table.num_rows
                if loaded is not None:
                    loaded(added)
            if not added:
                raise InputError(f"{source}: no rows to load (the source is empty)")
            with hash_threads(db):
                unique = db.scalar("SELECT count(DISTINCT event_id) FROM events")
            if unique < added:
                raise InputError(f"{source}: {added - unique:,} repeated event id(s)")
        store._bump_generation()
    except BaseException as exc:
        # the store was empty: empty it again, so nothing is left half-written
        db.execute("DELETE FROM events")
        db.execute("DELETE FROM identities")
        if isinstance(exc, duckdb.Error):
            raise InputError(
                f"{source}: a generated table was refused ({exc}); nothing was loaded. "
                "This is a bug in the generator: report it with the command you ran"
            ) from exc
        raise
    return LoadResult(source=source, rows_read=added, rows_added=added, duplicates=0)
