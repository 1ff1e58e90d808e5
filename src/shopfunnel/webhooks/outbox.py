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

**Delivery** (:func:`~shopfunnel.webhooks.delivery.deliver_due`, in
:mod:`shopfunnel.webhooks.delivery`; endpoints are added and removed in
:mod:`shopfunnel.webhooks.endpoints`), for each pending delivery whose time has come:

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

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.store.db import Database
from shopfunnel.store.store import Store

AUDIENCE_ENTERED = "audience.entered"
AUDIENCE_EXITED = "audience.exited"
FLOW_DUE = "flow.due"
CHANGE_TOPICS = {"enter": AUDIENCE_ENTERED, "exit": AUDIENCE_EXITED}
CHANGE_COLUMNS = ("audience", "person_id", "change", "at", "entry_id")
MAX_KEY_LENGTH = 512


def utc_now() -> datetime:
    """Now, UTC, as the naive timestamp the outbox tables hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(value: datetime | None) -> datetime:
    """``value`` as a naive UTC timestamp (the outbox's clock); None is now."""
    if value is None:
        return utc_now()
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
    created = utc_now()
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
