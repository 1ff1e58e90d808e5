"""The read side the dashboard and the JSON API share: every analysis they show.

Each function takes the server's read-only view of the store and returns plain data
(DataFrames or dicts); the dashboard renders them and the API serialises them, so both
always show the same numbers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.store import Store

MAX_LIMIT = 10_000


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"limit={limit} is not valid: use 1 to {MAX_LIMIT}")
    return limit


def info(store: Store) -> dict[str, Any]:
    return store.info()


def recent_events(store: Store, limit: int = 100) -> pd.DataFrame:
    """The latest ``limit`` events, newest first."""
    return store.db.df(
        "SELECT event_id, ts, event, person_id, anonymous_id, user_id, session_id, channel, "
        "page, order_id, value, currency, CAST(properties AS VARCHAR) AS properties "
        "FROM events ORDER BY ts DESC, event_id LIMIT ?",
        [check_limit(limit)],
    )


def persons(store: Store, limit: int = 1000) -> pd.DataFrame:
    """Persons with their first and last visit, sessions, orders and revenue, best customers first."""
    return store.db.df(
        "SELECT * FROM persons ORDER BY revenue DESC, last_seen DESC, person_id LIMIT ?",
        [check_limit(limit)],
    )
