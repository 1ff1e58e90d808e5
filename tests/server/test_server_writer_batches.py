"""How many events a round of the background writer loads: it waits for more until it holds
``max_batch``, then takes what already waits, up to ``backlog_batch`` (ADR 0195)."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson

from server.kit import page_views
from shopfunnel.server.spool import Chunk, Spool
from shopfunnel.server.writer import Writer
from shopfunnel.store.store import Store


def _records(start: int, n: int) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in page_views(n, prefix=f"e{start}-"))


def _writer(tmp_path: Path, **options) -> tuple[Writer, list[int]]:
    store = Store(tmp_path / "live.duckdb")
    writer = Writer(store, spool=None, store_lock=threading.Lock(), **options)  # type: ignore[arg-type]
    loads: list[int] = []
    writer.load = lambda data, end: loads.append(data.count(b"\n"))  # type: ignore[method-assign]
    return writer, loads


def test_a_writer_that_keeps_up_loads_at_most_max_batch_events_a_round(tmp_path) -> None:
    writer, loads = _writer(tmp_path, max_batch=10, backlog_batch=40, max_wait_seconds=0.01)
    for k in range(2):  # 8 events wait: fewer than max_batch
        writer.submit(Chunk(_records(4 * k, 4), 4, (0, k)))
    writer.start(maintain_timeline=False)
    assert writer.wait_idle(30)
    writer.stop()
    assert loads == [8]
    writer.store.close()


def test_a_round_that_holds_max_batch_events_loads_them_without_waiting_for_more(
    tmp_path,
) -> None:
    writer, loads = _writer(tmp_path, max_batch=10, backlog_batch=40, max_wait_seconds=60)
    for k in range(2):  # 12 events wait: past max_batch, so the 60 s wait is not taken
        writer.submit(Chunk(_records(6 * k, 6), 6, (0, k)))
    writer.start(maintain_timeline=False)
    assert writer.wait_idle(10)
    assert loads == [12]
    writer.submit(Chunk(_records(100, 3), 3, (0, 9)))  # 3 wait: the round waits for more
    assert not writer.wait_idle(1)
    writer.stop()
    writer.store.close()


def test_a_writer_behind_takes_up_to_backlog_batch_events_a_round(tmp_path) -> None:
    writer, loads = _writer(tmp_path, max_batch=10, backlog_batch=40, max_wait_seconds=0.01)
    for k in range(20):  # 100 events wait before the writer starts
        writer.submit(Chunk(_records(5 * k, 5), 5, (0, k)))
    writer.start(maintain_timeline=False)
    assert writer.wait_idle(30)
    writer.stop()
    # 100 wait: 40; then 60 wait: 40; then 20 (still more than max_batch) wait: all 20
    assert loads == [40, 40, 20]
    writer.store.close()


def test_recovery_loads_the_spool_in_rounds_of_backlog_batch_events(tmp_path) -> None:
    store = Store(tmp_path / "live.duckdb")
    spool = Spool(tmp_path / "spool", sync=False)
    spool.start(lambda chunk: None)  # acknowledged, never loaded: as after a crash
    for k in range(6):
        spool.append(page_views(5, prefix=f"e{k}-")).result(30)
    spool.close()
    spool = Spool(tmp_path / "spool", sync=False)
    small = spool.unloaded
    spool.unloaded = lambda: small(chunk_bytes=250)  # type: ignore[method-assign]
    chunks = [c.count for c in spool.unloaded()]
    assert len(chunks) > 6 and max(chunks) < 12  # many small chunks wait
    writer = Writer(store, spool, store_lock=threading.Lock(), max_batch=4, backlog_batch=12)
    sizes: list[int] = []
    load_now = writer.load_now
    writer.load_now = lambda data: (sizes.append(data.count(b"\n")), load_now(data))  # type: ignore[method-assign]
    assert writer.recover() == 30
    assert sum(sizes) == 30
    assert all(12 <= n < 12 + max(chunks) for n in sizes[:-1]) and len(sizes) == 3
    assert store.db.scalar("SELECT count(*) FROM events") == 30
    assert sum(c.count for c in spool.unloaded()) == 0  # the checkpoint is past every record
    spool.close()
    store.close()
