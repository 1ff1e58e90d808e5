"""The official segment-analytics-python client works with only host and write_key changed."""

from __future__ import annotations

import pytest
import segment.analytics as analytics

from server.kit import WRITE_KEY


@pytest.fixture
def segment_client(live):
    analytics.write_key = WRITE_KEY
    analytics.host = live.url
    yield analytics
    analytics.shutdown()
    analytics.default_client = None
    analytics.write_key = None
    analytics.host = None


def test_segment_calls_arrive_as_ga4_events_for_the_identified_person_with_the_revenue(
    live, segment_client
):
    a = segment_client
    a.page(
        anonymous_id="anon-7",
        name="Home",
        properties={
            "url": "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=mugs",
            "referrer": "https://www.google.com/",
        },
    )
    a.track(
        anonymous_id="anon-7",
        event="Product Viewed",
        properties={
            "product_id": "sku-1",
            "name": "Mug",
            "category": "Kitchen",
            "price": 12.5,
            "currency": "eur",
        },
    )
    a.identify(user_id="user-42", anonymous_id="anon-7", traits={"email": "ada@example.com"})
    a.track(
        user_id="user-42",
        anonymous_id="anon-7",
        event="Product Added",
        properties={"product_id": "sku-1", "price": 12.5, "quantity": 2},
    )
    a.track(
        user_id="user-42",
        anonymous_id="anon-7",
        event="Checkout Started",
        properties={"order_id": "o-9", "revenue": 25.0, "currency": "EUR"},
    )
    a.track(
        user_id="user-42",
        event="Order Completed",
        properties={
            "order_id": "o-9",
            "revenue": 25.0,
            "shipping": 4.9,
            "tax": 2.1,
            "total": 32.0,
            "currency": "EUR",
            "products": [{"product_id": "sku-1", "name": "Mug", "price": 12.5, "quantity": 2}],
        },
    )
    a.flush()
    rows = live.sql(
        "SELECT event, person_id, order_id, value, currency, channel FROM events ORDER BY ts"
    )
    # the client stamps milliseconds, so calls can share a timestamp: compare as a set
    assert sorted(r[0] for r in rows) == sorted(
        ["page_view", "view_item", "identify", "add_to_cart", "begin_checkout", "purchase"]
    )
    assert {r[1] for r in rows} == {"user-42"}
    by_event = {r[0]: r for r in rows}
    assert float(by_event["view_item"][3]) == 12.5 and by_event["view_item"][4] == "EUR"
    assert float(by_event["add_to_cart"][3]) == 25.0  # price × quantity
    assert by_event["purchase"][2:5] == ("o-9", pytest.approx(25.0), "EUR")  # revenue, not total
    assert by_event["page_view"][5] == "paid search"
    assert live.sql("SELECT order_id, person_id, value FROM orders") == [
        ("o-9", "user-42", pytest.approx(25.0))
    ]
    items = live.sql("SELECT items FROM events WHERE event = 'purchase'")[0][0]
    assert items == [
        {
            "item_id": "sku-1",
            "item_name": "Mug",
            "item_category": None,
            "price": 12.5,
            "quantity": 2,
        }
    ]
    ids = live.sql("SELECT count(DISTINCT event_id), count(*) FROM events")
    assert ids == [(6, 6)]  # messageId → event_id, one each
