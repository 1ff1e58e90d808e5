"""The per-session level table the diagnosis counts from."""

from __future__ import annotations

from datetime import datetime

from conftest import log
from shopfunnel.diagnosis.session_levels import SessionLevels


def test_a_session_that_bought_without_a_cart_event_counts_at_every_earlier_step(store):
    store.load(
        log(
            ("a", 0, "page_view", {"session_id": "s1", "device": "mobile"}),
            ("a", 1, "purchase", {"session_id": "s1", "order_id": "o1", "value": 50}),
            ("b", 0, "page_view", {"session_id": "s2", "device": "desktop"}),
            ("b", 1, "view_item", {"session_id": "s2"}),
            ("c", 0, "page_view", {"session_id": "s3", "device": "desktop"}),
            ("c", 1, "add_to_cart", {"session_id": "s3"}),
        )
    )
    with SessionLevels(store) as levels:
        assert [s.event for s in levels.steps] == ["view_item", "add_to_cart", "purchase"]
        c = levels.counts().iloc[0]
        assert (c["n0"], c["n1"], c["n2"], c["n3"]) == (3, 3, 2, 1)
        assert c["orders"] == 1 and c["revenue"] == 50
        by = levels.counts(by=["device"]).set_index("device")
        assert by.loc["mobile", "n3"] == 1 and by.loc["desktop", "n1"] == 2


def test_steps_the_store_never_records_are_dropped_and_named(store):
    store.load(
        log(
            ("a", 0, "page_view", {"session_id": "s1"}), ("a", 1, "view_item", {"session_id": "s1"})
        )
    )
    with SessionLevels(store) as levels:
        assert [s.event for s in levels.steps] == ["view_item"]
        assert "purchase" in [s.event for s in levels.missing_steps]


def test_excluded_sessions_leave_the_counts_but_not_the_incident_view(store):
    store.load(
        log(
            ("a", 0, "page_view", {"session_id": "s1", "device": "mobile"}),
            ("b", 0, "page_view", {"session_id": "s2", "device": "desktop"}),
            ("c", 60 * 24 * 2, "page_view", {"session_id": "s3", "device": "mobile"}),
        )
    )
    with SessionLevels(store) as levels:
        assert levels.exclude(datetime(2024, 3, 1), datetime(2024, 3, 2), device="mobile") == 1
        assert levels.counts()["n0"].sum() == 2
        assert levels.counts(include_excluded=True)["n0"].sum() == 3


def test_daily_counts_use_the_day_of_the_sessions_first_event(store):
    store.load(
        log(
            ("a", 0, "page_view", {"session_id": "s1"}),
            ("a", 60 * 12 - 1, "view_item", {"session_id": "s1"}),  # 23:59 on the same day
            ("b", 60 * 12 + 1, "page_view", {"session_id": "s2"}),  # next day 00:01
        )
    )
    with SessionLevels(store) as levels:
        daily = levels.counts(grain="day")
        assert list(daily["n0"]) == [1, 1]
        assert list(daily["n1"]) == [1, 0]
