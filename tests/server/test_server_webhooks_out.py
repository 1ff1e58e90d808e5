"""While `serve` runs, due webhook deliveries go out on a schedule."""

from __future__ import annotations

import time

import pandas as pd

from server.kit import LiveServer
from shopfunnel.store.store import Store
from shopfunnel.webhooks import add_endpoint, enqueue_audience_changes
from webhooks.receiver import Receiver

SECRET = "whsec_server_schedule_secret"


def test_the_server_delivers_enqueued_entries_by_itself(tmp_path) -> None:
    db = tmp_path / "shop.duckdb"
    with Receiver(SECRET) as receiver:
        with Store(db) as store:
            add_endpoint(store, receiver.url, secret=SECRET)
        with LiveServer(db, webhook_interval_seconds=0.05) as live:
            with live.state.write_lock:
                enqueue_audience_changes(
                    live.state.store,
                    "vip",
                    pd.DataFrame(
                        {
                            "audience": ["vip"] * 3,
                            "person_id": ["a", "b", "c"],
                            "change": "enter",
                            "at": pd.Timestamp("2024-05-01T08:00:00Z"),
                            "entry_id": ["1", "2", "3"],
                        }
                    ),
                )
            deadline = time.monotonic() + 30
            while len(receiver.applied) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
    assert sorted(receiver.applied) == [f"audience:vip:{i}:enter" for i in (1, 2, 3)]
    assert receiver.bad_signatures == 0


def test_the_delivery_status_is_json_for_the_admin(tmp_path) -> None:
    from server.kit import ADMIN

    db = tmp_path / "shop.duckdb"
    with Store(db) as store:
        endpoint = add_endpoint(store, "https://hooks.example.com/h", secret=SECRET)
    with LiveServer(db, webhook_interval_seconds=0) as live:
        assert live.client.get("/v1/webhooks/status").status_code == 401
        rows = live.client.get("/v1/webhooks/status", headers=ADMIN).json()["rows"]
    assert [(r["endpoint_id"], r["pending"], r["delivered"]) for r in rows] == [
        (endpoint.endpoint_id, 0, 0)
    ]
    assert SECRET not in str(rows)
