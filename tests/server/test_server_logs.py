"""Contacts are personal data: what the server logs never quotes an event's values."""

from __future__ import annotations

import logging
import threading

import orjson

from shopfunnel.server.writer import Writer
from shopfunnel.store.store import Store

EMAIL = "leak.check@example.com"


def test_rejected_and_unreadable_spool_records_are_logged_without_their_values(caplog) -> None:
    good = {
        "event_id": "g",
        "ts": "2024-03-01T12:00:00Z",
        "event": "page_view",
        "anonymous_id": "a",
        "properties": orjson.dumps({"email": EMAIL}).decode(),
    }
    bad_time = good | {"event_id": "b", "ts": f"not a time {EMAIL}"}
    data = (
        orjson.dumps(good)
        + b"\n"
        + orjson.dumps(bad_time)
        + b"\n"
        + b'{"broken": "'
        + EMAIL.encode()
        + b"\n"
    )
    caplog.set_level(logging.DEBUG)
    with Store(":memory:") as store:
        writer = Writer(store, spool=None, store_lock=threading.Lock())  # type: ignore[arg-type]
        writer.load_now(data)
        assert store.db.scalar("SELECT count(*) FROM events") == 1
    assert "unreadable spool record left out (record 3" in caplog.text
    assert "failed the store's checks" in caplog.text and "ts cannot be read" in caplog.text
    assert EMAIL not in caplog.text
