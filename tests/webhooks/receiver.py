"""A webhook receiver on loopback for the tests: a real ``http.server`` in a thread.

It verifies every signature, applies each idempotency key once (a resend is answered 200
and ignored), and can be told to fail the first attempts of every key, or to hold one
request open (so a test can kill the sender while it waits for the answer).
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from shopfunnel.webhooks import SignatureError, verify_signature
from shopfunnel.webhooks.signing import ID_HEADER


class Receiver:
    """``fail_first``: answer 500 to the first n attempts of each key (nothing applied).
    ``hold_on``: the n-th applied entry (1-based) is applied, then the answer waits until
    :attr:`release` is set."""

    def __init__(self, secret: str, *, fail_first: int = 0, hold_on: int | None = None):
        self.secret = secret
        self.fail_first = fail_first
        self.hold_on = hold_on
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()  # every request per key, failed ones too
        self.applied: dict[str, dict[str, Any]] = {}  # key -> body, the one effect
        self.applied_count: Counter[str] = Counter()
        self.bad_signatures = 0
        self.holding = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    verify_signature(receiver.secret, body, dict(self.headers))
                except SignatureError:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self._answer(401)
                    return
                key = self.headers[ID_HEADER]
                hold = False
                with receiver.lock:
                    receiver.attempts[key] += 1
                    if receiver.attempts[key] <= receiver.fail_first:
                        status = 500
                    else:
                        status = 200
                        if key not in receiver.applied:
                            receiver.applied[key] = orjson.loads(body)
                            receiver.applied_count[key] += 1
                            hold = len(receiver.applied) == receiver.hold_on
                if hold:
                    receiver.holding.set()
                    receiver.release.wait(30)
                self._answer(status)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
