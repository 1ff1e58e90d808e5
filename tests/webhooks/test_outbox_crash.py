"""``kill -9`` of a sender while a request is in flight loses nothing and, after the
receiver's dedup by idempotency key, duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd

from shopfunnel.store.store import Store
from shopfunnel.webhooks import add_endpoint, enqueue_audience_changes
from webhooks.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_crash_test_secret_value"
SENDER = """
import sys, time
from shopfunnel.store.store import Store
from shopfunnel.webhooks import RetryPolicy, deliver_due
policy = RetryPolicy(first_delay_seconds=0.2, factor=1.0)
with Store(sys.argv[1]) as store:
    while store.db.scalar("SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'"):
        deliver_due(store, policy=policy, limit=5)
        time.sleep(0.05)
"""


def sender(db: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-c", SENDER, str(db)], env=env)


def test_kill_9_mid_delivery_loses_nothing_and_the_receiver_applies_each_entry_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shop.duckdb"
    n = 20
    with Receiver(SECRET, hold_on=8) as receiver:
        with Store(db) as store:
            add_endpoint(store, receiver.url, secret=SECRET)
            enqueue_audience_changes(
                store,
                "vip",
                pd.DataFrame(
                    {
                        "audience": "vip",
                        "person_id": [f"p{i}" for i in range(n)],
                        "change": "enter",
                        "at": pd.Timestamp("2024-05-01T08:00:00Z"),
                        "entry_id": [f"m{i:02d}" for i in range(n)],
                    }
                ),
            )
        first = sender(db)
        assert receiver.holding.wait(60), "the sender never reached the 8th entry"
        held = list(receiver.applied)[-1]
        os.kill(first.pid, signal.SIGKILL)  # while it waits for the 8th answer
        assert first.wait(30) == -signal.SIGKILL
        receiver.release.set()
        assert len(receiver.applied) == 8
        second = sender(db)
        assert second.wait(120) == 0
    expected = {f"audience:vip:m{i:02d}:enter" for i in range(n)}
    assert set(receiver.applied) == expected  # nothing lost
    assert set(receiver.applied_count.values()) == {1}  # each applied once
    assert receiver.attempts[held] == 2  # the in-flight entry was sent again, same key
    assert receiver.bad_signatures == 0
    with Store(db, read_only=True) as store:
        assert store.db.rows("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1") == [
            ("delivered", n)
        ]
