"""The two validators agree: the store's (SQL, in bulk, on a load) and the collector's
(Python, per event, to answer before acknowledging).

The same single-event JSON Lines row goes to both; each accepts it or rejects it, and the
verdicts must match. A gap would mean the collector acknowledges an event the store then
drops (logged, but lost to the user), or refuses one a file load would take.
"""

from __future__ import annotations

import json

import pytest

from shopfunnel.errors import ValidationError
from shopfunnel.server.events import EventError, canonical_event
from shopfunnel.store.store import Store

GOOD = {"event_id": "e1", "ts": "2024-03-15T10:30:00Z", "event": "view_item", "anonymous_id": "a1"}

CASES = {
    "a minimal event": {},
    "a user id instead of an anonymous id": {"anonymous_id": None, "user_id": "u1"},
    "a value and currency": {"value": 12.5, "currency": "EUR"},
    "a value as text": {"value": "12.50"},
    "items": {"items": [{"item_id": "sku1", "price": 9.99, "quantity": 2}]},
    "properties": {"properties": {"coupon": "X1", "n": 3}},
    "UTM fields and a page": {"utm_source": "google", "utm_medium": "cpc", "page": "/p/1"},
    "a timestamp with an offset": {"ts": "2024-03-15T12:30:00+02:00"},
    # bad
    "an unreadable timestamp": {"ts": "15/03/2024 10:30"},
    "no timestamp": {"ts": None},
    "no event name": {"event": None},
    "neither anonymous_id nor user_id": {"anonymous_id": None},
    "a value that is not a number": {"value": "twelve"},
    "an unknown column": {"colour": "red"},
    "items that are not a list": {"items": {"item_id": "sku1"}},
    "an item with an unknown field": {"items": [{"sku": "x"}]},
    "properties that are a list": {"properties": [1, 2]},
}


def store_accepts(row: dict, tmp_path) -> bool:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    try:
        result = Store(":memory:").load(path, on_error="skip")
    except ValidationError:
        return False
    except Exception as exc:  # a clear refusal of the file (unknown column…) is a reject too
        from shopfunnel.errors import ShopfunnelError

        if isinstance(exc, ShopfunnelError):
            return False
        raise
    return result.rows_added == 1 and not result.rejects


def collector_accepts(row: dict) -> bool:
    try:
        canonical_event(row)
    except EventError:
        return False
    return True


@pytest.mark.parametrize("case", list(CASES))
def test_store_and_collector_give_the_same_verdict(case, tmp_path) -> None:
    row = {**GOOD, **CASES[case]}
    row = {k: v for k, v in row.items() if v is not None}
    assert store_accepts(row, tmp_path) == collector_accepts(row), case
