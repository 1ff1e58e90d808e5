"""The background writer loads on one DuckDB thread while events keep arriving (ADR 0184)."""

from __future__ import annotations

import threading
import time

from server.kit import page_views
from shopfunnel.server.spool import Spool
from shopfunnel.server.writer import Writer
from shopfunnel.store.store import Store


def _threads(store: Store) -> int:
    return int(store.db.scalar("SELECT current_setting('threads')"))


def _wait_for(check, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_writer_loads_on_one_thread_while_busy_and_restores_the_count_when_idle(
    tmp_path,
) -> None:
    store = Store(tmp_path / "live.duckdb")
    store.db.execute("SET threads = 3")
    spool = Spool(tmp_path / "spool", sync=False)
    lock = threading.Lock()
    writer = Writer(store, spool, store_lock=lock, max_wait_seconds=0.05, idle_seconds=2.0)
    writer.start(maintain_timeline=False)
    spool.start(writer.submit)
    try:
        records = page_views(10)
        spool.append(records).result(30)
        assert writer.wait_idle(30)
        with lock:
            assert store.db.scalar("SELECT count(*) FROM events") == 10
            busy = _threads(store)
        assert busy == 1

        # no events for idle_seconds: the count it had before comes back (read under the
        # writer's lock: a DuckDB connection refuses a second caller)
        def restored() -> bool:
            with lock:
                return _threads(store) == 3

        assert _wait_for(restored)
        spool.append([{**records[0], "event_id": "late"}]).result(30)
        assert writer.wait_idle(30)
        with lock:
            assert store.db.scalar("SELECT count(*) FROM events") == 11
    finally:
        spool.close()
        writer.stop()
    assert _threads(store) == 3  # stopping restores it too
    store.close()


def test_a_writer_told_not_to_change_threads_leaves_them(tmp_path) -> None:
    store = Store(tmp_path / "live.duckdb")
    store.db.execute("SET threads = 2")
    writer = Writer(store, spool=None, store_lock=threading.Lock(), busy_threads=None)  # type: ignore[arg-type]
    writer._busy(True)
    assert _threads(store) == 2
    store.close()


def test_a_failed_thread_change_is_logged_and_the_writer_keeps_loading(
    tmp_path, caplog, monkeypatch
) -> None:
    store = Store(tmp_path / "live.duckdb")
    store.db.execute("SET threads = 2")
    scalar = store.db.scalar

    def refusing(sql, *args, **kwargs):
        if "current_setting('threads')" in str(sql):
            raise RuntimeError("connection is busy")
        return scalar(sql, *args, **kwargs)

    monkeypatch.setattr(store.db, "scalar", refusing)
    spool = Spool(tmp_path / "spool", sync=False)
    writer = Writer(store, spool, store_lock=threading.Lock(), max_wait_seconds=0.05)
    writer.start(maintain_timeline=False)
    spool.start(writer.submit)
    try:
        record = {
            "event_id": "e",
            "ts": "2024-03-01T12:00:00",
            "event": "page_view",
            "anonymous_id": "a",
        }
        spool.append([record]).result(30)
        assert writer.wait_idle(30)
        assert writer.loaded == 1
    finally:
        spool.close()
        writer.stop()
    store.close()
    assert "could not set DuckDB's threads (RuntimeError)" in caplog.text
