"""Delivering the outbox: claim the due deliveries, POST each signed body, mark the answer;
back-off between attempts, arming failed deliveries again, and the status per endpoint.

The steps and the guarantee (at least once; at most once with a receiver that ignores keys
it has handled) are in :mod:`shopfunnel.webhooks.outbox`'s docstring.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.store.db import Database
from shopfunnel.store.store import Store
from shopfunnel.webhooks.outbox import ensure_tables, naive_utc
from shopfunnel.webhooks.signing import signed_headers

#: ``transport(url, body, headers, timeout_seconds) -> HTTP status``; raises ``OSError``
#: when there is no answer. Tests inject their own; the default is :func:`http_transport`.
Transport = Callable[[str, bytes, Mapping[str, str], float], int]


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again after a failed attempt, and when to stop.

    The wait after attempt ``n`` (1-based) is ``first_delay_seconds × factor^(n − 1)``,
    capped at ``max_delay_seconds``. After ``max_attempts`` failed attempts the delivery is
    ``failed`` and waits for ``shopfunnel webhooks retry``.
    """

    first_delay_seconds: float = 30.0
    factor: float = 2.0
    max_delay_seconds: float = 6 * 3600.0
    max_attempts: int = 20

    def __post_init__(self) -> None:
        if self.first_delay_seconds < 0 or self.factor < 1 or self.max_attempts < 1:
            raise ConfigError(
                f"retry policy {self} is not valid: delays must be >= 0, factor >= 1 and "
                "max_attempts >= 1"
            )

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(
            self.first_delay_seconds * self.factor ** max(attempt - 1, 0), self.max_delay_seconds
        )


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_due` round did: attempts made, and how they ended."""

    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def http_transport(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST ``body`` to ``url`` and return the status. Redirects are not followed (a 3xx is
    a failed attempt: fix the URL)."""
    parts = urllib.parse.urlsplit(url)
    conn_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_class(parts.hostname or "", parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request("POST", path, body=body, headers=dict(headers))
        response = conn.getresponse()
        response.read(64 * 1024)
        return response.status
    finally:
        conn.close()


@dataclass(frozen=True)
class _Claimed:
    idempotency_key: str
    endpoint_id: str
    topic: str
    body: str
    url: str
    secret: str
    attempts: int


def deliver_due(
    store: Store,
    *,
    now: datetime | None = None,
    policy: RetryPolicy = RetryPolicy(),
    transport: Transport | None = None,
    timeout_seconds: float = 10.0,
    limit: int = 100,
    lock: AbstractContextManager[Any] | threading.Lock | None = None,
) -> DeliveryReport:
    """Attempt up to ``limit`` pending deliveries whose time has come (oldest first).

    ``now`` is the clock used for due times and back-off (default: now, UTC). ``lock``
    guards every use of the store (the server passes its write lock); it is *not* held
    while a request is in flight. See the module docstring for the claim → POST → mark steps.
    """
    send = transport or http_transport
    guard: Any = lock if lock is not None else nullcontext()
    at = naive_utc(now)
    with guard:
        claimed = _claim(store.db, at, policy, limit)
    delivered = retrying = failed = 0
    for item in claimed:
        body = item.body.encode("utf-8")
        # signed with the wall clock of the attempt (``now`` only schedules), so the
        # receiver's replay window compares real times
        headers = signed_headers(
            item.secret, idempotency_key=item.idempotency_key, topic=item.topic, body=body
        )
        status: int | None = None
        error: str | None = None
        try:
            status = send(item.url, body, headers, timeout_seconds)
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        ok = status is not None and 200 <= status < 300
        if not ok and error is None:
            error = f"HTTP {status}"
        gave_up = not ok and item.attempts >= policy.max_attempts
        with guard:
            _mark(
                store.db,
                item,
                at,
                status,
                error,
                "delivered" if ok else "failed" if gave_up else "pending",
            )
        delivered += ok
        failed += gave_up
        retrying += not ok and not gave_up
    return DeliveryReport(len(claimed), delivered, retrying, failed)


def _claim(db: Database, at: datetime, policy: RetryPolicy, limit: int) -> list[_Claimed]:
    ensure_tables(db)
    rows = db.rows(
        """
        SELECT d.idempotency_key, d.endpoint_id, o.topic, o.body, e.url, e.secret, d.attempts
        FROM webhook_deliveries d
        JOIN webhook_outbox o USING (idempotency_key)
        JOIN webhook_endpoints e USING (endpoint_id)
        WHERE d.status = 'pending' AND (d.attempts = 0 OR d.next_attempt_at <= ?)
        ORDER BY d.attempts > 0, d.next_attempt_at, o.created_at, d.idempotency_key
        LIMIT ?
        """,
        [at, int(limit)],
    )
    claimed = []
    with db.transaction():
        for key, endpoint, topic, body, url, secret, attempts in rows:
            attempt = int(attempts) + 1
            db.execute(
                "UPDATE webhook_deliveries SET attempts = ?, last_attempt_at = ?, "
                "next_attempt_at = ? WHERE idempotency_key = ? AND endpoint_id = ?",
                [attempt, at, at + timedelta(seconds=policy.delay_after(attempt)), key, endpoint],
            )
            claimed.append(_Claimed(key, endpoint, topic, body, url, secret, attempt))
    return claimed


def _mark(
    db: Database, item: _Claimed, at: datetime, status: int | None, error: str | None, outcome: str
) -> None:
    db.execute(
        "UPDATE webhook_deliveries SET status = ?, last_status = ?, last_error = ?, "
        "delivered_at = ? WHERE idempotency_key = ? AND endpoint_id = ? AND status = 'pending'",
        [
            outcome,
            status,
            None if outcome == "delivered" else error,
            at if outcome == "delivered" else None,
            item.idempotency_key,
            item.endpoint_id,
        ],
    )


def retry_failed(
    store: Store, endpoint_id: str | None = None, *, now: datetime | None = None
) -> int:
    """Arm ``failed`` deliveries again (all, or one endpoint's), due now; return how many."""
    db = store.db
    ensure_tables(db)
    where = "status = 'failed'" + ("" if endpoint_id is None else " AND endpoint_id = ?")
    params: list[Any] = [] if endpoint_id is None else [endpoint_id]
    n = int(db.scalar(f"SELECT count(*) FROM webhook_deliveries WHERE {where}", params) or 0)
    db.execute(
        f"UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
        f"next_attempt_at = ? WHERE {where}",
        [naive_utc(now), *params],
    )
    return n


def delivery_status(store: Store) -> pd.DataFrame:
    """One row per endpoint: ``pending``, ``delivered`` and ``failed`` deliveries, the oldest
    pending entry's time, the next attempt's time, and the last error; plus a row with
    ``endpoint_id`` ``(none)`` counting entries that no endpoint takes."""
    db = store.db
    ensure_tables(db)
    return db.df(
        """
        SELECT e.endpoint_id, e.url,
               count(*) FILTER (WHERE d.status = 'pending') AS pending,
               count(*) FILTER (WHERE d.status = 'delivered') AS delivered,
               count(*) FILTER (WHERE d.status = 'failed') AS failed,
               min(o.created_at) FILTER (WHERE d.status = 'pending') AS oldest_pending,
               min(d.next_attempt_at) FILTER (WHERE d.status = 'pending') AS next_attempt_at,
               arg_max(d.last_error, d.last_attempt_at)
                   FILTER (WHERE d.status <> 'delivered') AS last_error
        FROM webhook_endpoints e
        LEFT JOIN webhook_deliveries d USING (endpoint_id)
        LEFT JOIN webhook_outbox o USING (idempotency_key)
        GROUP BY e.endpoint_id, e.url, e.created_at
        UNION ALL
        SELECT '(none)', NULL, count(*), 0, 0, min(created_at), NULL, NULL
        FROM webhook_outbox o
        WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                          WHERE d.idempotency_key = o.idempotency_key)
        HAVING count(*) > 0
        ORDER BY 1
        """
    )
