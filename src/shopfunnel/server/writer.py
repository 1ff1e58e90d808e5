"""The background writer: loads spooled events into the store in batches.

It is the only code that writes events while the server runs. Each round it takes
every durable chunk waiting (up to ``max_batch`` events), continues sessions the store
already holds, loads the rows with :meth:`Store.load_staged` (validated again, duplicate
``event_id``\\ s ignored, identities re-stitched) and then moves the spool's checkpoint.

Sessions across batches: a browser's events arrive over many requests, so the store's
per-load sessionisation alone would cut a visit in two at every batch. Before loading,
events without a ``session_id`` are sessionised together with the latest stored event
of their anonymous id (the same rule: a new session after ``session_timeout`` of
inactivity), and keep that stored session's id when they continue it; events of a
session the store already holds take that session's channel (the channel of its first
event, as everywhere in the store).
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time

import orjson
import pyarrow as pa
import pyarrow.json as pajson

from shopfunnel.server.spool import Chunk, Spool
from shopfunnel.store import schema
from shopfunnel.store.store import LINE, Staged, Store

log = logging.getLogger("shopfunnel.server")

_fields = []
for _f in schema.ARROW_SCHEMA:
    if _f.name in ("ts", "value"):
        _f = pa.field(_f.name, pa.string())
    _fields.append(_f)
BATCH_SCHEMA = pa.schema([*_fields, pa.field(LINE, pa.int64())])


RECORD_SCHEMA = BATCH_SCHEMA.remove(BATCH_SCHEMA.get_field_index(LINE))


def records_table(data: bytes) -> pa.Table:
    """Spool records (JSON Lines) as an Arrow table with a ``__line`` column (1-based).

    Parsed by Arrow's JSON reader (multi-threaded, outside the GIL); a line it cannot
    read makes the whole chunk go through ``orjson`` line by line instead, and that
    line is logged and left out.
    """
    try:
        table = pajson.read_json(io.BytesIO(data), parse_options=pajson.ParseOptions(
            explicit_schema=RECORD_SCHEMA, unexpected_field_behavior="ignore"))
    except pa.ArrowInvalid:
        rows = []
        for line in data.splitlines():
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.error("writer: unreadable spool record left out: %r", line[:200])
        table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    return table.append_column(LINE, pa.array(range(1, table.num_rows + 1), type=pa.int64()))


def continue_sessions(store: Store, table: pa.Table) -> pa.Table:
    """Fill ``session_id`` (and ``channel`` for stored sessions) as the module docstring says."""
    db = store.db
    gap = store.session_timeout_seconds
    db.register("__batch", table)
    try:
        filled = db.arrow(
            f"""
            WITH b AS (
                SELECT * REPLACE (CAST(timezone('UTC', TRY_CAST(ts AS TIMESTAMPTZ)) AS TIMESTAMP) AS ts),
                       coalesce(anonymous_id, user_id) AS __anon
                FROM __batch
            ),
            prev AS (
                SELECT anonymous_id AS __anon, max(ts) AS ts, arg_max(session_id, ts) AS sid
                FROM events WHERE anonymous_id IN (SELECT DISTINCT __anon FROM b WHERE session_id IS NULL)
                GROUP BY 1
            ),
            u AS (
                SELECT __anon, ts, sid, NULL::BIGINT AS {LINE} FROM prev
                UNION ALL SELECT __anon, ts, NULL, {LINE} FROM b WHERE session_id IS NULL
            ),
            flagged AS (
                SELECT *, CASE WHEN epoch(ts) - epoch(lag(ts) OVER w) <= {gap} THEN 0 ELSE 1 END AS __new
                FROM u WINDOW w AS (PARTITION BY __anon ORDER BY ts, {LINE} NULLS FIRST)
            ),
            grouped AS (
                SELECT *, sum(__new) OVER (PARTITION BY __anon ORDER BY ts, {LINE} NULLS FIRST
                                           ROWS UNBOUNDED PRECEDING) AS __grp
                FROM flagged
            ),
            assigned AS (
                SELECT {LINE}, coalesce(max(sid) OVER g,
                    __anon || ':' || CAST(epoch_us(min(ts) OVER g) AS VARCHAR)) AS sid
                FROM grouped WINDOW g AS (PARTITION BY __anon, __grp)
            ),
            sessioned AS (
                SELECT b.*, coalesce(b.session_id, a.sid) AS __sid
                FROM b LEFT JOIN assigned a ON a.{LINE} = b.{LINE}
            ),
            stored AS (
                SELECT session_id, arg_min(channel, ts) AS ch FROM events
                WHERE session_id IN (SELECT DISTINCT __sid FROM sessioned) GROUP BY 1
            )
            SELECT b.{LINE}, b.__sid AS session_id, coalesce(b.channel, s.ch) AS channel
            FROM sessioned b LEFT JOIN stored s ON s.session_id = b.__sid
            ORDER BY b.{LINE}
            """
        )
    finally:
        db.unregister("__batch")
    # ``table`` is in __line order (1..n) and so is ``filled``: set the two columns in place
    # rather than copy every column through DuckDB.
    for name in ("session_id", "channel"):
        column = filled.column(name).cast(pa.string())
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


class Writer:
    """A thread that loads spool chunks into ``store`` and advances the checkpoint."""

    def __init__(self, store: Store, spool: Spool, *, store_lock: threading.Lock,
                 max_batch: int = 50_000, max_wait_seconds: float = 0.5):
        self.store = store
        self.spool = spool
        self.lock = store_lock
        self.max_batch = max_batch
        self.max_wait = max_wait_seconds
        self._queue: queue.Queue[Chunk | None] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.loaded = 0
        self.rejected = 0
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Events acknowledged (durable in the spool) but not yet in the store."""
        return self._pending

    def submit(self, chunk: Chunk) -> None:
        with self._pending_lock:
            self._pending += chunk.count
            self._idle.clear()
        self._queue.put(chunk)

    def load_now(self, data: bytes) -> None:
        """Load spool records (JSON Lines) into the store in one transaction (raises if
        that fails)."""
        if not data:
            return
        with self.lock:
            table = continue_sessions(self.store, records_table(data))
            result = self.store.load_staged(Staged("collector", table=table, line_label="event"),
                                            on_error="skip")
        self.loaded += result.rows_added
        if result.rejects:
            self.rejected += len({r.line for r in result.rejects})
            log.error("writer: %d event(s) failed the store's checks and were dropped: %s",
                      len(result.rejects), "; ".join(str(r) for r in result.rejects[:5]))

    def load(self, data: bytes, end: tuple[int, int]) -> None:
        """Load records into the store (retrying until it works) and move the checkpoint."""
        delay = 0.2
        while data:
            try:
                self.load_now(data)
                self.last_error = None
                break
            except Exception as exc:  # keep the events: they are acknowledged
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("writer: loading %d bytes of events failed; retrying in %.1fs", len(data), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.spool.set_checkpoint(end)

    def recover(self) -> int:
        """Load everything the spool holds after its checkpoint (at start-up)."""
        total = 0
        for chunk in self.spool.unloaded():
            self.load(chunk.data, chunk.end)
            total += chunk.count
        return total

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            chunks = [first]
            count = first.count
            deadline = time.monotonic() + self.max_wait
            while count < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                chunks.append(nxt)
                count += nxt.count
            self.load(b"".join(c.data for c in chunks), chunks[-1].end)
            with self._pending_lock:
                self._pending -= count
                if self._pending == 0:
                    self._idle.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every acknowledged event is in the store (for tests and shutdown)."""
        return self._idle.wait(timeout)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
