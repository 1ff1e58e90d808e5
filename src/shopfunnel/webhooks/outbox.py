"""The outbox: webhook entries kept in the store until every endpoint has taken them.

Three tables in the store's own file (created here, on first use):

- ``webhook_endpoints``: where to send (``url``), the signing ``secret``, which ``topics``
  (``*`` or a comma-separated list), and when the endpoint was added.
- ``webhook_outbox``: one row per entry, keyed by its **idempotency key**; ``body`` is the
  JSON sent, fixed when the entry is enqueued, so every attempt sends the same bytes.
  Enqueuing a key that is already there does nothing.
- ``webhook_deliveries``: one row per (entry, endpoint): ``pending``, ``delivered`` or
  ``failed``, with the attempts made, the next attempt's time and the last answer.

An entry is fanned out to the endpoints that exist (and want its topic) when it is
enqueued; an endpoint added later receives the entries enqueued after it.

**Delivery** (:func:`deliver_due`), for each pending delivery whose time has come:

1. *claim*: count the attempt and move ``next_attempt_at`` to the back-off time, committed;
2. POST the body, signed (:mod:`shopfunnel.webhooks.signing`), with the idempotency key;
3. *mark*: a 2xx answer marks it ``delivered``; anything else (or no answer within the
   timeout) leaves it pending until ``next_attempt_at``, or ``failed`` once
   ``max_attempts`` attempts have failed (``shopfunnel webhooks retry`` arms it again).

So each entry reaches each endpoint **at least once**: it is marked delivered only after a
2xx, and a crash anywhere (even between the POST and the mark) leaves it pending, to be
sent again with the same key. It takes effect **at most once** when the receiver ignores
keys it has already handled (:mod:`shopfunnel.webhooks.signing` shows how). Back-off:
``first_delay_seconds × factor^(attempt − 1)``, at most ``max_delay_seconds``
(30 s, 1 min, 2 min, … 6 h; 20 attempts span about two and a half days).

Audience entries and exits (:func:`enqueue_audience_changes`) and the messages flows mark
sent (:func:`enqueue_flow_sends`) are the entries today; :func:`enqueue` takes any topic.
"""

from __future__ import annotations

import http.client
import secrets as _secrets
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.store.db import Database
from shopfunnel.store.store import Store
from shopfunnel.webhooks.signing import signed_headers

SECRET_PREFIX = "whsec_"
ENDPOINT_PREFIX = "wh_"
AUDIENCE_ENTERED = "audience.entered"
AUDIENCE_EXITED = "audience.exited"
FLOW_DUE = "flow.due"
CHANGE_TOPICS = {"enter": AUDIENCE_ENTERED, "exit": AUDIENCE_EXITED}
CHANGE_COLUMNS = ("audience", "person_id", "change", "at", "entry_id")
MAX_KEY_LENGTH = 512

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


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive(value: datetime | None) -> datetime:
    if value is None:
        return _now()
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


# -- tables ---------------------------------------------------------------------------------
def ensure_tables(db: Database) -> None:
    """Create the outbox tables if the store has none yet."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS webhook_endpoints (endpoint_id VARCHAR PRIMARY KEY, "
        "url VARCHAR NOT NULL, secret VARCHAR NOT NULL, topics VARCHAR NOT NULL, "
        "created_at TIMESTAMP NOT NULL)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS webhook_outbox (idempotency_key VARCHAR PRIMARY KEY, "
        "topic VARCHAR NOT NULL, person_id VARCHAR, body VARCHAR NOT NULL, "
        "created_at TIMESTAMP NOT NULL)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS webhook_deliveries (idempotency_key VARCHAR NOT NULL, "
        "endpoint_id VARCHAR NOT NULL, person_id VARCHAR, status VARCHAR NOT NULL, "
        "attempts INTEGER NOT NULL, next_attempt_at TIMESTAMP NOT NULL, "
        "last_attempt_at TIMESTAMP, last_status INTEGER, last_error VARCHAR, "
        "delivered_at TIMESTAMP, PRIMARY KEY (idempotency_key, endpoint_id))"
    )


# -- endpoints ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """A webhook endpoint. ``secret`` is what the receiver verifies signatures with."""

    endpoint_id: str
    url: str
    secret: str
    topics: str


def _check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"webhook URL {url!r} is not valid: give an absolute http(s) URL, e.g. "
            "https://hooks.example.com/shopfunnel"
        )
    return url


def _check_topics(topics: str) -> str:
    names = [t.strip() for t in topics.split(",") if t.strip()]
    if not names:
        raise ConfigError(
            "topics is empty: give '*' or names such as audience.entered,audience.exited"
        )
    return ",".join(names)


def add_endpoint(
    store: Store, url: str, *, secret: str | None = None, topics: str = "*"
) -> Endpoint:
    """Add an endpoint; with no ``secret`` a random one (``whsec_…``) is made. The secret is
    stored in the store in clear (it is needed to sign) and shown by this call only."""
    db = store.db
    ensure_tables(db)
    if secret is not None and len(secret) < 16:
        raise ConfigError(
            "the webhook secret is too short: use at least 16 characters, or "
            "leave it out to get a random one"
        )
    endpoint = Endpoint(
        ENDPOINT_PREFIX + _secrets.token_hex(4),
        _check_url(url),
        secret or SECRET_PREFIX + _secrets.token_urlsafe(32),
        _check_topics(topics),
    )
    db.execute(
        "INSERT INTO webhook_endpoints VALUES (?, ?, ?, ?, ?)",
        [endpoint.endpoint_id, endpoint.url, endpoint.secret, endpoint.topics, _now()],
    )
    return endpoint


def list_endpoints(store: Store) -> pd.DataFrame:
    """The endpoints without their secrets: endpoint_id, url, topics, created_at."""
    ensure_tables(store.db)
    return store.db.df(
        "SELECT endpoint_id, url, topics, created_at FROM webhook_endpoints ORDER BY created_at"
    )


def remove_endpoint(store: Store, endpoint_id: str) -> int:
    """Remove an endpoint and its deliveries (pending ones are dropped); return deliveries removed."""
    db = store.db
    ensure_tables(db)
    if not db.scalar("SELECT count(*) FROM webhook_endpoints WHERE endpoint_id = ?", [endpoint_id]):
        raise ConfigError(f"no webhook endpoint {endpoint_id!r}: see `shopfunnel webhooks list`")
    with db.transaction():
        dropped = int(
            db.scalar(
                "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ?", [endpoint_id]
            )
            or 0
        )
        db.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", [endpoint_id])
        db.execute("DELETE FROM webhook_endpoints WHERE endpoint_id = ?", [endpoint_id])
    return dropped


# -- enqueuing ------------------------------------------------------------------------------
def _body(key: str, topic: str, created_at: datetime, payload: Mapping[str, Any]) -> str:
    envelope = {
        "id": key,
        "topic": topic,
        "created_at": created_at.isoformat() + "Z",
        "data": payload,
    }
    return orjson.dumps(
        envelope, option=orjson.OPT_SORT_KEYS | orjson.OPT_NAIVE_UTC, default=_json_default
    ).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot send a {type(value).__name__} in a webhook payload")


def enqueue(
    store: Store,
    *,
    topic: str,
    idempotency_key: str,
    payload: Mapping[str, Any],
    person_id: str | None = None,
) -> bool:
    """Put one entry in the outbox; return False when its key is already there (nothing done).

    ``person_id`` (default: ``payload["person_id"]``) ties the entry to a person, so erasing
    the person removes it. The body sent is ``{"id": key, "topic", "created_at", "data":
    payload}``, JSON with sorted keys.
    """
    who = person_id if person_id is not None else payload.get("person_id")
    frame = pd.DataFrame(
        {
            "idempotency_key": [idempotency_key],
            "topic": [topic],
            "person_id": [None if who is None else str(who)],
            "payload": [dict(payload)],
        }
    )
    return _enqueue_frame(store, frame) == 1


def enqueue_audience_changes(store: Store, audience_name: str, changes: pd.DataFrame) -> int:
    """Enqueue the entries and exits of one audience; return how many were new.

    ``changes`` has the columns ``audience``, ``person_id``, ``change`` (``'enter'`` or
    ``'exit'``), ``at`` (when, UTC) and ``entry_id`` (the membership history's id of the
    entry; its exit carries the same id). Each row becomes one entry:

    - topic ``audience.entered`` with data ``{"audience", "person_id", "entered_at",
      "entry_id"}``, or ``audience.exited`` with ``exited_at`` instead of ``entered_at``;
    - idempotency key ``audience:<audience>:<entry_id>:<change>``: feeding the same history
      twice enqueues nothing new, and one entry is never delivered twice.

    Rows of another audience, unknown changes or missing values are refused (nothing is
    enqueued) with the row named.
    """
    missing = [c for c in CHANGE_COLUMNS if c not in changes.columns]
    if missing:
        raise ConfigError(
            f"audience changes need the column(s) {', '.join(missing)} "
            f"(expected: {', '.join(CHANGE_COLUMNS)})"
        )
    if changes.empty:
        return 0
    frame = changes.reset_index(drop=True)
    for i, row in enumerate(frame[list(CHANGE_COLUMNS)].itertuples(index=False)):
        if row.audience != audience_name:
            raise ConfigError(
                f"row {i}: audience {row.audience!r} is not {audience_name!r}; "
                "enqueue one audience's changes per call"
            )
        if row.change not in CHANGE_TOPICS:
            raise ConfigError(f"row {i}: change {row.change!r} is not 'enter' or 'exit'")
        for col in ("person_id", "entry_id", "at"):
            value = getattr(row, col)
            if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
                raise ConfigError(f"row {i}: {col} is missing")
    at = pd.to_datetime(frame["at"], utc=True)
    at_text = at.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entry = frame["entry_id"].astype(str)
    person = frame["person_id"].astype(str)
    payloads = [
        {
            "audience": audience_name,
            "person_id": p,
            "entry_id": e,
            ("entered_at" if c == "enter" else "exited_at"): t,
        }
        for p, e, c, t in zip(person, entry, frame["change"], at_text, strict=True)
    ]
    keys = "audience:" + audience_name + ":" + entry + ":" + frame["change"].astype(str)
    staged = pd.DataFrame(
        {
            "idempotency_key": keys,
            "topic": frame["change"].map(CHANGE_TOPICS),
            "person_id": person,
            "payload": payloads,
        }
    )
    return _enqueue_frame(store, staged)


def enqueue_flow_sends(store: Store, flow_name: str, due: pd.DataFrame) -> int:
    """Enqueue the messages a flow marked sent; return how many were new.

    ``due`` has one row per message with at least ``send_id`` (the flow's id of the
    message: flow, person and trigger) and ``person_id``; every column goes into the data
    (times as ISO 8601 UTC, missing values as null). Topic ``flow.due``, idempotency key
    ``flow:<flow>:<send_id>``: a flow's message is delivered once however often it is fed.
    """
    for col in ("send_id", "person_id"):
        if col not in due.columns:
            raise ConfigError(f"flow sends need the column {col!r} (the rows of a flow run)")
    if due.empty:
        return 0
    frame = due.reset_index(drop=True)
    payloads = []
    for row in frame.to_dict("records"):
        data: dict[str, Any] = {}
        for key, value in row.items():
            if value is not None and not isinstance(value, str | list | dict) and pd.isna(value):
                value = None  # NaN, NaT, NA
            elif isinstance(value, pd.Timestamp | datetime):
                value = pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            data[str(key)] = value
        data["flow"] = flow_name
        payloads.append(data)
    staged = pd.DataFrame(
        {
            "idempotency_key": "flow:" + flow_name + ":" + frame["send_id"].astype(str),
            "topic": FLOW_DUE,
            "person_id": frame["person_id"].astype(str),
            "payload": payloads,
        }
    )
    return _enqueue_frame(store, staged)


def _enqueue_frame(store: Store, frame: pd.DataFrame) -> int:
    """Insert entries (idempotency_key, topic, person_id, payload) whose key is new, and
    their deliveries to the endpoints that want the topic; return how many were new."""
    for key in frame["idempotency_key"]:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise ConfigError(
                f"idempotency key {key!r} is not valid: use text of 1 to "
                f"{MAX_KEY_LENGTH} characters that names the entry"
            )
    frame = frame.drop_duplicates("idempotency_key")
    created = _now()
    staged = pd.DataFrame(
        {
            "idempotency_key": frame["idempotency_key"].to_numpy(),
            "topic": frame["topic"].to_numpy(),
            "person_id": frame["person_id"].to_numpy(),
            "body": [
                _body(k, t, created, p)
                for k, t, p in zip(
                    frame["idempotency_key"], frame["topic"], frame["payload"], strict=True
                )
            ],
        }
    )
    db = store.db
    ensure_tables(db)
    db.register("__outbox_new", staged)
    try:
        with db.transaction():
            db.execute(
                "CREATE OR REPLACE TEMP TABLE __outbox_added AS SELECT n.* FROM __outbox_new n "
                "WHERE NOT EXISTS (SELECT 1 FROM webhook_outbox o "
                "WHERE o.idempotency_key = n.idempotency_key)"
            )
            db.execute(
                "INSERT INTO webhook_outbox SELECT idempotency_key, topic, person_id, body, ? "
                "FROM __outbox_added",
                [created],
            )
            db.execute(
                """
                INSERT INTO webhook_deliveries (idempotency_key, endpoint_id, person_id, status,
                                                attempts, next_attempt_at)
                SELECT a.idempotency_key, e.endpoint_id, a.person_id, 'pending', 0, ?
                FROM __outbox_added a JOIN webhook_endpoints e
                  ON e.topics = '*' OR list_contains(string_split(e.topics, ','), a.topic)
                """,
                [created],
            )
            added = int(db.scalar("SELECT count(*) FROM __outbox_added") or 0)
            db.execute("DROP TABLE __outbox_added")
    finally:
        db.unregister("__outbox_new")
    return added


# -- delivering -----------------------------------------------------------------------------
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
    at = _naive(now)
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
        [_naive(now), *params],
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
