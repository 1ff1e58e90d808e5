"""The store: validated, idempotent loads; sessions; identity stitching; derived views."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import log
from shopfunnel.errors import InputError, ValidationError
from shopfunnel.store.store import Store


def test_loading_the_same_events_twice_adds_nothing(store: Store) -> None:
    events = log(("a", 0, "page_view"), ("a", 1, "view_item"), ("b", 2, "page_view"))
    first = store.load(events)
    second = store.load(events)
    assert (first.rows_added, second.rows_added, second.duplicates) == (3, 0, 3)
    assert store.info()["events"] == 3


def test_rows_without_event_id_get_a_stable_hash(store: Store) -> None:
    events = log(("a", 0, "page_view"), ("a", 1, "view_item")).drop(columns="event_id")
    store.load(events)
    store.load(events)
    ids = store.events()["event_id"]
    assert ids.nunique() == 2 and len(ids) == 2


def test_sessions_split_after_thirty_minutes_of_inactivity(store: Store) -> None:
    store.load(
        log(
            ("a", 0, "page_view"),
            ("a", 29, "view_item"),
            ("a", 60, "page_view"),
            ("a", 89, "add_to_cart"),
            ("a", 120, "page_view"),
        )
    )
    sessions = store.events()["session_id"]
    # 0 and 29 together; 60 starts anew (31 min gap); 89 joins 60 (29 min); 120 is new (31 min).
    assert sessions.tolist()[0] == sessions.tolist()[1]
    assert sessions.nunique() == 3


def test_session_timeout_is_configurable() -> None:
    with Store(":memory:", session_timeout="10m") as s:
        s.load(log(("a", 0, "page_view"), ("a", 11, "page_view")))
        assert s.info()["sessions"] == 2


def test_a_session_id_from_the_source_is_kept(store: Store) -> None:
    store.load(
        log(
            ("a", 0, "page_view", {"session_id": "s1"}),
            ("a", 500, "page_view", {"session_id": "s1"}),
        )
    )
    assert store.info()["sessions"] == 1


def test_identity_stitching_moves_earlier_anonymous_events_to_the_user(store: Store) -> None:
    store.load(log(("anon1", 0, "page_view"), ("anon1", 5, "view_item")))
    assert set(store.events()["person_id"]) == {"anon1"}
    store.load(
        log(
            ("anon1", 10, "purchase", {"user_id": "u42", "event_id": "p1"}),
            ("anon2", 20, "page_view", {"event_id": "x2"}),
        )
    )
    people = store.events().set_index("event_id")["person_id"].to_dict()
    assert people["e0"] == people["e1"] == people["p1"] == "u42"
    assert people["x2"] == "anon2"
    assert store.info()["persons"] == 2


def test_channel_comes_from_utm_or_referrer_and_holds_for_the_session(store: Store) -> None:
    store.load(
        log(
            ("a", 0, "page_view", {"utm_source": "google", "utm_medium": "cpc"}),
            ("a", 1, "view_item"),
            ("b", 0, "page_view", {"referrer": "https://www.instagram.com/p/1"}),
            ("c", 0, "page_view"),
            ("d", 0, "page_view", {"utm_source": "newsletter", "utm_medium": "email"}),
        )
    )
    channels = store.events().groupby("anonymous_id")["channel"].agg(set).to_dict()
    assert channels == {
        "a": {"paid search"},
        "b": {"organic social"},
        "c": {"direct"},
        "d": {"email"},
    }


def test_a_bad_timestamp_fails_the_whole_load_and_names_the_row(store: Store) -> None:
    events = log(("a", 0, "page_view"), ("a", 1, "view_item"), ("a", 2, "add_to_cart"))
    events["ts"] = events["ts"].astype(str)
    events.loc[1, "ts"] = "yesterday"
    with pytest.raises(ValidationError) as caught:
        store.load(events)
    assert [(r.line, r.column, r.value) for r in caught.value.rejects] == [(2, "ts", "yesterday")]
    assert store.info()["events"] == 0


def test_skip_keeps_the_valid_rows_and_returns_the_rejects(store: Store) -> None:
    events = log(("a", 0, "page_view"), ("a", 1, "view_item"), ("a", 2, "add_to_cart"))
    events["value"] = ["1", "abc", "3"]
    result = store.load(events, on_error="skip")
    assert result.rows_added == 2
    assert [(r.line, r.column) for r in result.rejects] == [(2, "value")]


def test_a_row_needs_someone_and_an_event(store: Store) -> None:
    events = pd.DataFrame(
        {
            "ts": ["2024-01-01T00:00:00Z"] * 2,
            "event": ["page_view", None],
            "anonymous_id": [None, "a"],
        }
    )
    with pytest.raises(ValidationError) as caught:
        store.load(events)
    assert sorted((r.line, r.column) for r in caught.value.rejects) == [
        (1, "anonymous_id"),
        (2, "event"),
    ]


def test_unknown_columns_are_refused_with_a_way_out(store: Store) -> None:
    events = log(("a", 0, "page_view")).assign(colour="red")
    with pytest.raises(InputError, match="unknown column.*'colour'.*--map.*--extra properties"):
        store.load(events)
    store.load(events, extra_columns="properties")
    assert '"colour"' in store.events()["properties"][0]


def test_orders_view_has_one_row_per_purchase_with_its_refunds(store: Store) -> None:
    store.load(
        log(
            ("a", 0, "purchase", {"order_id": "o1", "value": 50.0, "currency": "USD"}),
            ("a", 60 * 24, "refund", {"order_id": "o1", "value": 20.0, "currency": "USD"}),
            ("b", 5, "purchase", {"order_id": "o2", "value": 10.0, "currency": "USD"}),
        )
    )
    orders = store.table("orders").set_index("order_id")
    assert float(orders.loc["o1", "value"]) == 50.0
    assert float(orders.loc["o1", "refunded"]) == 20.0
    assert float(orders.loc["o2", "refunded"]) == 0.0


def test_a_repeated_event_id_within_one_load_is_stored_once(store: Store) -> None:
    events = log(("a", 0, "page_view"), ("a", 1, "view_item"))
    events = pd.concat([events, events.iloc[[0]]], ignore_index=True)
    result = store.load(events)
    assert (result.rows_added, result.duplicates) == (2, 1)


def test_generation_counts_the_loads_that_changed_the_events(store: Store) -> None:
    assert store.generation == 0
    events = log(("a", 0, "page_view"), ("a", 5, "view_item"))
    store.load(events)
    assert store.generation == 1
    store.load(events)  # nothing new: caches stay valid
    assert store.generation == 1
    store.load(log(("b", 0, "page_view")).assign(event_id="new"))
    assert store.generation == 2
