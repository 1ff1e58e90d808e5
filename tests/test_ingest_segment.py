"""Segment / RudderStack messages map to canonical GA4-named events (REFERENCES §4)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from shopfunnel.errors import InputError, ValidationError
from shopfunnel.ingest import FORMATS, read
from shopfunnel.ingest.segment import MessageError, device_from_user_agent, snake_case, to_canonical

TS = "2024-03-01T10:00:00.000Z"


def track(event, props=None, **extra):
    return {
        "type": "track",
        "event": event,
        "properties": props or {},
        "anonymousId": "a1",
        "messageId": "m1",
        "timestamp": TS,
        **extra,
    }


@pytest.mark.parametrize(
    "segment, ga4",
    [
        ("Products Searched", "search"),
        ("Product List Viewed", "view_item_list"),
        ("Product Clicked", "select_item"),
        ("Product Viewed", "view_item"),
        ("Product Added", "add_to_cart"),
        ("Product Removed", "remove_from_cart"),
        ("Cart Viewed", "view_cart"),
        ("Checkout Started", "begin_checkout"),
        ("Payment Info Entered", "add_payment_info"),
        ("Order Completed", "purchase"),
        ("Order Refunded", "refund"),
        ("Product Added to Wishlist", "add_to_wishlist"),
        ("Promotion Viewed", "view_promotion"),
        ("Promotion Clicked", "select_promotion"),
        ("Signed Up", "signed_up"),
        ("Coupon Entered", "coupon_entered"),
        ("newsletterJoined", "newsletter_joined"),
    ],
)
def test_ecommerce_names_map_to_ga4_and_others_are_snake_cased(segment, ga4):
    assert to_canonical(track(segment))["event"] == ga4


def test_checkout_step_completed_is_shipping_or_payment_info_by_the_method_it_carries():
    assert (
        to_canonical(track("Checkout Step Completed", {"step": 2, "shipping_method": "ups"}))[
            "event"
        ]
        == "add_shipping_info"
    )
    assert (
        to_canonical(track("Checkout Step Completed", {"step": 3, "payment_method": "card"}))[
            "event"
        ]
        == "add_payment_info"
    )
    assert (
        to_canonical(track("Checkout Step Completed", {"step": 1}))["event"]
        == "checkout_step_completed"
    )


def test_order_completed_takes_revenue_as_value_and_products_as_items():
    e = to_canonical(
        track(
            "Order Completed",
            {
                "order_id": 1001,
                "revenue": 25,
                "total": 32,
                "shipping": 4.9,
                "currency": "eur",
                "products": [
                    {
                        "product_id": "p1",
                        "sku": "S1",
                        "name": "Mug",
                        "category": "Kitchen",
                        "price": 12.5,
                        "quantity": 2,
                    }
                ],
            },
        )
    )
    assert (e["order_id"], e["value"], e["currency"]) == ("1001", 25.0, "EUR")
    assert e["items"] == [
        {
            "item_id": "p1",
            "item_name": "Mug",
            "item_category": "Kitchen",
            "price": 12.5,
            "quantity": 2,
        }
    ]
    props = json.loads(e["properties"])
    assert props == {"total": 32, "shipping": 4.9, "source_event": "Order Completed"}
    assert e["event_id"] == "m1" and e["ts"] == datetime(2024, 3, 1, 10, 0)


def test_one_product_events_use_their_own_fields_and_price_times_quantity():
    e = to_canonical(
        track("Product Added", {"sku": "S1", "name": "Mug", "price": 12.5, "quantity": 3})
    )
    assert e["items"] == [
        {"item_id": "S1", "item_name": "Mug", "item_category": None, "price": 12.5, "quantity": 3}
    ]
    assert e["value"] == 37.5


def test_page_calls_are_page_views_with_url_referrer_campaign_and_device():
    e = to_canonical(
        {
            "type": "page",
            "anonymousId": "a1",
            "userId": 42,
            "timestamp": "2024-03-01T11:00:00+01:00",
            "properties": {"url": "https://shop.example/?utm_source=fb&utm_medium=paid_social"},
            "context": {
                "page": {"referrer": "https://m.facebook.com/"},
                "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148",
                "location": {"country": "DE"},
            },
        }
    )
    assert e["event"] == "page_view" and e["user_id"] == "42"
    assert e["ts"] == datetime(2024, 3, 1, 10, 0)
    assert (e["page"], e["referrer"]) == (
        "https://shop.example/?utm_source=fb&utm_medium=paid_social",
        "https://m.facebook.com/",
    )
    assert (e["utm_source"], e["utm_medium"], e["device"], e["country"]) == (
        "fb",
        "paid_social",
        "mobile",
        "DE",
    )


def test_context_campaign_wins_over_url_parameters_and_batch_context_is_merged():
    e = to_canonical(
        track(
            "Product Viewed",
            context={"campaign": {"source": "newsletter", "medium": "email", "name": "spring"}},
        ),
        context={"page": {"url": "https://shop.example/?utm_source=other"}},
    )
    assert (e["utm_source"], e["utm_medium"], e["utm_campaign"]) == (
        "newsletter",
        "email",
        "spring",
    )
    assert e["page"] == "https://shop.example/?utm_source=other"


def test_identify_and_alias_carry_both_ids_so_the_store_links_them():
    e = to_canonical(
        {
            "type": "identify",
            "anonymousId": "a1",
            "userId": "u1",
            "traits": {"plan": "pro"},
            "timestamp": TS,
        }
    )
    assert (e["event"], e["anonymous_id"], e["user_id"], json.loads(e["properties"])) == (
        "identify",
        "a1",
        "u1",
        {"plan": "pro"},
    )
    e = to_canonical({"type": "alias", "previousId": "a2", "userId": "u1", "timestamp": TS})
    assert (e["event"], e["anonymous_id"], e["user_id"]) == ("alias", "a2", "u1")


def test_user_agents_give_mobile_tablet_or_desktop():
    assert device_from_user_agent("Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X)") == "tablet"
    assert device_from_user_agent("Mozilla/5.0 (Linux; Android 13; SM-X200)") == "tablet"
    assert (
        device_from_user_agent("Mozilla/5.0 (Linux; Android 13; Pixel 7) Mobile Safari") == "mobile"
    )
    assert device_from_user_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64)") == "desktop"
    assert device_from_user_agent(None) is None


@pytest.mark.parametrize(
    "message, column",
    [
        ({"type": "track", "anonymousId": "a"}, "event"),
        ({"type": "track", "event": "X"}, "anonymous_id"),
        ({"type": "teleport", "anonymousId": "a"}, "type"),
        (track("Order Completed", {"revenue": "lots"}), "revenue"),
        (track("X", timestamp="tomorrow"), "ts"),
        (track("Order Completed", {"products": "mug"}), "items"),
        ("not an object", "message"),
    ],
)
def test_unusable_messages_are_refused_with_the_column_and_reason(message, column):
    with pytest.raises(MessageError) as err:
        to_canonical(message)
    assert err.value.column == column and err.value.reason


def test_snake_case():
    assert snake_case("  Order  Completed! ") == "order_completed"
    assert snake_case("checkoutStep2") == "checkout_step2"


def test_a_rudderstack_export_loads_through_the_segment_format(tmp_path, store):
    assert "segment" in FORMATS
    lines = [
        {
            "type": "page",
            "anonymousId": "r1",
            "messageId": "x1",
            "originalTimestamp": "2024-03-01T10:00:00Z",
            "context": {"page": {"url": "https://shop.example/"}},
            "channel": "web",
            "rudderId": "abc",
        },
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": "r1",
            "messageId": "x2",
            "originalTimestamp": "2024-03-01T10:01:00Z",
            "properties": {"product_id": "p1", "price": 9.99},
        },
        {
            "batch": [
                {
                    "type": "identify",
                    "anonymousId": "r1",
                    "userId": "u9",
                    "messageId": "x3",
                    "timestamp": "2024-03-01T10:02:00Z",
                },
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": "u9",
                    "messageId": "x4",
                    "timestamp": "2024-03-01T10:03:00Z",
                    "properties": {"order_id": "o1", "revenue": 9.99},
                },
            ]
        },
    ]
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = store.load_staged(read(path, format="segment"))
    assert result.rows_added == 4
    assert store.load_staged(read(path, format="segment")).rows_added == 0  # messageId dedups
    rows = store.db.rows("SELECT event_id, event, person_id, value FROM events ORDER BY ts")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("x1", "page_view", "u9"),
        ("x2", "view_item", "u9"),
        ("x3", "identify", "u9"),
        ("x4", "purchase", "u9"),
    ]
    assert float(rows[3][3]) == 9.99


def test_a_bad_line_in_an_export_names_its_line_and_reason(tmp_path, store):
    path = tmp_path / "export.jsonl"
    path.write_text(
        json.dumps(track("Product Viewed")) + "\n{oops\n" + json.dumps({"type": "track"}) + "\n"
    )
    with pytest.raises(ValidationError) as err:
        store.load_staged(read(path, format="segment"))
    assert [(r.line, r.column) for r in err.value.rejects] == [(2, "message"), (3, "anonymous_id")]
    assert store.db.scalar("SELECT count(*) FROM events") == 0
    result = store.load_staged(read(path, format="segment"), on_error="skip")
    assert result.rows_added == 1 and len(result.rejects) == 2


def test_a_file_that_is_not_utf8_json_lines_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="JSON Lines"):
        read(path, format="segment")
    path.write_text('{"hello": 1}\n')
    with pytest.raises(ValidationError, match="Segment or RudderStack export"):
        read(path, format="segment")
