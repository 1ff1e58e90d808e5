"""Webhook endpoints: where the outbox's entries go, each with its signing secret and the
topics it wants (``*`` or a comma-separated list). An endpoint receives the entries
enqueued after it is added (:mod:`shopfunnel.webhooks.outbox`); removing it drops its
deliveries."""

from __future__ import annotations

import secrets as _secrets
import urllib.parse
from dataclasses import dataclass

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.store.store import Store
from shopfunnel.webhooks.outbox import ensure_tables, utc_now

SECRET_PREFIX = "whsec_"
ENDPOINT_PREFIX = "wh_"


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
        [endpoint.endpoint_id, endpoint.url, endpoint.secret, endpoint.topics, utc_now()],
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
