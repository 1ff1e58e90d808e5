"""Real servers on 127.0.0.1 for the server tests (uvicorn in a thread)."""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from shopfunnel.server import create_app, hash_password

ADMIN_PASSWORD = "correct horse battery staple"
WRITE_KEY = "sfk_test_write_key_0123456789"
_HASH = hash_password(ADMIN_PASSWORD)


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


ADMIN = {"Authorization": f"Bearer {ADMIN_PASSWORD}"}


def page_views(n: int, prefix: str = "e", visitors: int = 3) -> list[dict[str, Any]]:
    """``n`` collector records: page views ``{prefix}0``… of ``visitors`` anonymous ids."""
    return [
        {
            "event_id": f"{prefix}{i}",
            "ts": "2024-03-01T12:00:00",
            "event": "page_view",
            "anonymous_id": f"a{i % visitors}",
        }
        for i in range(n)
    ]


class LiveServer:
    """A uvicorn server on a free loopback port, running in a thread."""

    def __init__(self, db: Path, **settings: Any):
        self.db = db
        settings.setdefault("writer_max_wait_seconds", 0.02)  # tests wait for each load
        self.app = create_app(
            str(db), admin_password_hash=_HASH, write_keys=[WRITE_KEY], **settings
        )
        self.state = self.app.state.server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

    def flush(self) -> None:
        """Wait until every acknowledged event is in the store."""
        assert self.state.writer.wait_idle(30)

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        self.flush()
        with self.state.read_lock:
            return self.state.reader.db.rows(query, params)

    def send(
        self,
        path: str,
        body: Any,
        key: str = WRITE_KEY,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        return self.client.post(
            path, json=body, headers={**basic(key), **(headers or {})}, **kwargs
        )
