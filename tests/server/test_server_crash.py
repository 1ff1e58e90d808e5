"""Crash test: SIGKILL the server at random moments while a client sends batches.

Every event that got a 200 must be in the store after restarts, and none twice.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from server.kit import basic
from shopfunnel.store.store import Store

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "crash-test-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def start(db: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfunnel", "serve", "--db", str(db), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


@pytest.mark.slow
def test_every_acknowledged_event_survives_sigkill_exactly_once(tmp_path):
    rng = random.Random(7)
    db = tmp_path / "crash.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SHOPFUNNEL_ADMIN_PASSWORD": PASSWORD}
    key = subprocess.run(
        [sys.executable, "-m", "shopfunnel", "keys", "create", "--db", str(db)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    port = free_port()
    acknowledged: set[str] = set()
    sent_batches: list[list[dict]] = []
    stop = threading.Event()

    def client() -> None:
        n = 0
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=basic(key), timeout=5
        ) as http:
            while not stop.is_set():
                if sent_batches and rng.random() < 0.2:
                    batch = rng.choice(sent_batches)  # a client retry: same event ids again
                else:
                    batch = [
                        {
                            "event_id": f"e{n + i}",
                            "ts": 1709287200 + n + i,
                            "event": "page_view",
                            "anonymous_id": f"a{(n + i) % 97}",
                        }
                        for i in range(50)
                    ]
                    n += 50
                    sent_batches.append(batch)
                try:
                    r = http.post("/v1/batch", json={"batch": batch})
                except httpx.HTTPError:
                    time.sleep(0.02)
                    continue
                if r.status_code == 200:
                    assert r.json()["accepted"] == len(batch)
                    acknowledged.update(e["event_id"] for e in batch)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    orphans: set[int] = set()
    for _ in range(3):
        proc = start(db, port, env)
        time.sleep(rng.uniform(0.2, 1.5))
        workers = children(proc.pid)
        assert workers, "the server converts in worker processes by default"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        orphans |= workers
    deadline = time.monotonic() + 10
    while orphans and time.monotonic() < deadline:  # the workers follow their server
        orphans = {pid for pid in orphans if Path(f"/proc/{pid}").exists()}
        time.sleep(0.1)
    assert not orphans, "converter workers outlived their killed server"
    stop.set()
    thread.join(10)
    proc = start(db, port, env)  # recovers the spool on start
    proc.terminate()
    assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean stop
    assert len(acknowledged) > 300
    with Store(db, read_only=True) as store:
        stored = store.db.rows("SELECT event_id, count(*) FROM events GROUP BY 1")
    counts = dict(stored)
    assert not acknowledged - counts.keys(), "acknowledged events lost"
    assert max(counts.values()) == 1, "an event stored twice"
