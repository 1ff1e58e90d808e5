"""The background writer: loads spooled events into the store in batches.

It is the only code that writes events while the server runs. Each round it takes
every durable chunk waiting (up to ``max_batch`` events), loads the rows with
:meth:`Store.load_staged` (validated again, duplicate ``event_id``\\ s ignored,
identities re-stitched) and then moves the spool's checkpoint.

Behind: a load costs a part that grows with the store (the duplicate ids, the sessions
and identities it continues are looked up in every stored event) besides a part per
event. A round waits for more events only until it holds ``max_batch``; past that it takes
what is already waiting, up to ``backlog_batch`` (8 × ``max_batch``): the stored part is paid
once for more events, so a writer that fell behind on a large store catches up instead of
falling further behind (ADR 0195).

Sessions across batches: a browser's events arrive over many requests. The store
sessionises events without a ``session_id`` together with the latest stored event of
their anonymous id, so a visit split across batches stays one session, with its first
event's channel (ADR 0072, ADR 0152).

The timeline: the writer's store runs live (``live_timeline``), so every batch extends
the funnel timeline with a sorted delta (:mod:`shopfunnel.store.live`); a maintenance
thread builds the base when there is none and folds the delta into a new base when it
has grown (ADR 0150, ADR 0151). The dashboard's funnels stay on the timeline.
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
    line is left out (logged by position and size, not content).
    """
    try:
        table = pajson.read_json(
            io.BytesIO(data),
            parse_options=pajson.ParseOptions(
                explicit_schema=RECORD_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowInvalid:
        rows = []
        for number, line in enumerate(data.splitlines(), 1):
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                # the record itself is not logged: it may hold an e-mail or a phone
                log.error(
                    "writer: unreadable spool record left out (record %d of the chunk, %d bytes)",
                    number,
                    len(line),
                )
        table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    return table.append_column(LINE, pa.array(range(1, table.num_rows + 1), type=pa.int64()))


class Writer:
    """A thread that loads spool chunks into ``store`` and advances the checkpoint."""

    def __init__(
        self,
        store: Store,
        spool: Spool,
        *,
        store_lock: threading.Lock,
        max_batch: int = 50_000,
        max_wait_seconds: float = 0.5,
        busy_threads: int | None = 1,
        idle_seconds: float = 5.0,
        backlog_batch: int | None = None,
    ):
        self.store = store
        self.spool = spool
        self.lock = store_lock
        self.max_batch = max_batch
        self.backlog_batch = max(max_batch, backlog_batch or 8 * max_batch)
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
        self.maintainer: TimelineMaintainer | None = None
        self.busy_threads = busy_threads
        self.idle_seconds = idle_seconds
        self._threads_before: int | None = None  # DuckDB's threads while not busy

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
            self.store.live_timeline = True  # extend the timeline (also after a reopen)
            result = self.store.load_staged(
                Staged("collector", table=records_table(data), line_label="event"), on_error="skip"
            )
        if result.rows_added and self.maintainer is not None:
            self.maintainer.poke()
        self.loaded += result.rows_added
        if result.rejects:
            self.rejected += len({r.line for r in result.rejects})
            # line, column and reason, never the value: it may be personal data
            log.error(
                "writer: %d event(s) failed the store's checks and were dropped: %s",
                len(result.rejects),
                "; ".join(f"event {r.line}: {r.column} {r.reason}" for r in result.rejects[:5]),
            )

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
                # the type only: a database error's message can quote a value of the events
                log.error(
                    "writer: loading %d bytes of events failed (%s); retrying in %.1fs",
                    len(data),
                    type(exc).__name__,
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.spool.set_checkpoint(end)

    def recover(self) -> int:
        """Load everything the spool holds after its checkpoint (at start-up), up to
        ``backlog_batch`` events a load: a spool that waited is a writer behind."""
        total = 0
        waiting: list[Chunk] = []
        count = 0
        for chunk in self.spool.unloaded():
            waiting.append(chunk)
            count += chunk.count
            if count >= self.backlog_batch:
                self.load(b"".join(c.data for c in waiting), waiting[-1].end)
                total, waiting, count = total + count, [], 0
        if waiting:
            self.load(b"".join(c.data for c in waiting), waiting[-1].end)
            total += count
        return total

    def start(self, *, maintain_timeline: bool = True) -> None:
        if maintain_timeline and self.maintainer is None:
            self.maintainer = TimelineMaintainer(self)
            self.maintainer.start()
            self.maintainer.poke()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def _busy(self, busy: bool) -> None:
        """While events keep arriving, DuckDB runs the loads on ``busy_threads`` threads
        (one by default): a load of a second's events is a few small queries, whose
        parallel parts cost more CPU than they save on a machine whose cores the
        collector's HTTP and conversion workers already use (measured: about 20% less
        CPU per event on one thread, ADR 0184). DuckDB's thread count is the database's,
        so the dashboard's queries share it; after ``idle_seconds`` without events the
        count returns to what it was."""
        if self.busy_threads is None or busy == (self._threads_before is not None):
            return
        try:
            with self.lock:
                db = self.store.db
                if busy:
                    before = int(db.scalar("SELECT current_setting('threads')"))
                    if before <= self.busy_threads:
                        return
                    db.execute(f"SET threads = {int(self.busy_threads)}")
                    self._threads_before = before
                else:
                    db.execute(f"SET threads = {int(self._threads_before or 1)}")
                    self._threads_before = None
        except Exception as exc:  # only a speed setting: the loads go on either way
            log.warning("writer: could not set DuckDB's threads (%s)", type(exc).__name__)

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(
                    timeout=self.idle_seconds if self._threads_before is not None else None
                )
            except queue.Empty:
                self._busy(False)
                continue
            if first is None:
                break
            self._busy(True)
            chunks = [first]
            count = first.count
            deadline = time.monotonic() + self.max_wait
            while count < self.backlog_batch:
                try:
                    if count < self.max_batch:  # wait for more, until the deadline
                        nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    else:  # behind: only what already waits
                        nxt = self._queue.get_nowait()
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
            self._busy(False)
        if self.maintainer is not None:
            self.maintainer.stop()


class TimelineMaintainer:
    """A thread that keeps the live store's funnel timeline usable (ADR 0151).

    Woken after each batch: when the timeline has no base its chain reaches (a store
    never counted, a segment lost in a crash) it builds one under the store lock (one
    consistent read; loads wait for it, their events safe in the spool); when the delta
    has grown past :func:`shopfunnel.store.live.needs_compaction` it folds it into a new
    base from the timeline's files alone, without the lock, while loads go on. It makes no
    view of its own (the dashboard's reader does).
    """

    def __init__(self, writer: Writer):
        self.writer = writer
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.builds = 0
        self.compactions = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(60)

    def run_once(self) -> None:
        """Build the base if needed, then compact if the delta is large."""
        from shopfunnel.store import live

        writer = self.writer
        with writer.lock:
            store = writer.store
            store.live_timeline = True
            if store._is_empty():
                return
            state = live.backlog(store)
            if state is None:
                live.of_store(store)  # builds the base (the store's one consistent state)
                self.builds += 1
                state = live.backlog(store)
        if state is not None and live.needs_compaction(*state) and live.compact(store):
            self.compactions += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:  # the funnels fall back to SQL meanwhile
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("timeline: maintenance failed; funnels count by SQL until it works")
