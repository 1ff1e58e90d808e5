"""WooCommerce and Shopify order webhooks become purchase and refund events keyed by the
order, with the values computed by hand from the fixtures (tests/fixtures/webhooks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopfunnel.errors import InputError
from shopfunnel.ingest.shop_orders import order_events, shopify_events, woocommerce_events

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_a_paid_woocommerce_order_is_one_purchase_with_value_without_shipping_and_tax() -> None:
    [purchase] = woocommerce_events(
        fixture("woocommerce_order_processing.json"), topic="order.created"
    )
    assert purchase["event"] == "purchase"
    assert purchase["event_id"] == "woocommerce:727:purchase"
    assert purchase["order_id"] == "727"
    assert purchase["ts"] == "2024-03-22T19:28:08"  # date_paid_gmt, already UTC
    assert purchase["value"] == "16.00"  # 27.20 - 10.00 shipping - 1.20 tax
    assert purchase["currency"] == "USD"
    assert purchase["user_id"] == "john.doe@example.com"  # a guest: the e-mail, lower-cased
    assert purchase["anonymous_id"] == "anon-browser-727"  # the storefront visitor
    assert (purchase["utm_source"], purchase["utm_medium"], purchase["utm_campaign"]) == (
        "newsletter",
        "email",
        "spring-sale",
    )
    assert purchase["country"] == "US"
    assert purchase["items"] == [
        {
            "item_id": "93",
            "item_name": "Woo Single #1",
            "item_category": None,
            "price": 3.0,
            "quantity": 2,
        },
        {
            "item_id": "Bar3",
            "item_name": "Ship Your Idea – Color: Black, Size: M Test",
            "item_category": None,
            "price": 10.0,
            "quantity": 1,
        },
    ]
    props = purchase["properties"]
    assert props["coupon"] == "spring10"
    assert props["email"] == "john.doe@example.com"
    assert props["phone"] == "+1 (555) 555-5555"
    assert (props["discount"], props["shipping"], props["tax"], props["total"]) == (
        "2.00",
        "10.00",
        "1.20",
        "27.20",
    )


def test_the_updated_order_with_a_refund_keeps_the_same_purchase_id_and_adds_the_refund() -> None:
    purchase, refund = woocommerce_events(
        fixture("woocommerce_order_refunded.json"), topic="order.updated"
    )
    assert purchase["event_id"] == "woocommerce:727:purchase"
    assert refund["event"] == "refund"
    assert refund["event_id"] == "woocommerce:727:refund:730"
    assert refund["value"] == "6.00"
    assert refund["ts"] == "2024-03-25T12:00:00"
    assert refund["properties"]["reason"] == "Damaged in transit"


def test_an_unpaid_woocommerce_order_is_not_a_purchase_yet() -> None:
    assert (
        woocommerce_events(fixture("woocommerce_order_pending.json"), topic="order.created") == []
    )
    assert (
        woocommerce_events(fixture("woocommerce_order_processing.json"), topic="order.deleted")
        == []
    )


def test_a_registered_woocommerce_customer_is_their_customer_id() -> None:
    order = fixture("woocommerce_order_processing.json") | {"customer_id": 26}
    order["meta_data"] = []
    [purchase] = woocommerce_events(order)
    assert (purchase["user_id"], purchase["anonymous_id"]) == ("26", "26")


def test_a_paid_shopify_order_is_one_purchase_at_its_utc_time() -> None:
    [purchase] = shopify_events(fixture("shopify_order_paid.json"), topic="orders/create")
    assert purchase["event_id"] == "shopify:820982911946154508:purchase"
    assert purchase["ts"] == "2024-03-01T15:00:00"  # 10:00 at -05:00
    assert purchase["value"] == "387.00"  # subtotal: items after the 10.00 discount, no shipping
    assert purchase["user_id"] == "115310627314723954"
    assert purchase["anonymous_id"] == "anon-browser-1001"
    assert (purchase["utm_source"], purchase["utm_medium"], purchase["utm_campaign"]) == (
        "google",
        "cpc",
        "spring",
    )
    assert purchase["referrer"] == "https://www.google.com/"
    assert purchase["country"] == "CA"
    assert [(i["item_id"], i["price"], i["quantity"]) for i in purchase["items"]] == [
        ("IPOD2008PINK", 199.0, 1),
        ("CASE-BLK", 99.0, 2),
    ]
    props = purchase["properties"]
    assert (props["coupon"], props["email"], props["phone"], props["order_number"]) == (
        "WELCOME10",
        "jon@example.com",
        "+16135550135",
        "#1001",
    )
    assert props["shipping"] == "10.00"


def test_orders_create_paid_and_updated_give_the_same_purchase_id() -> None:
    order = fixture("shopify_order_paid.json")
    ids = {
        e["event_id"]
        for topic in ("orders/create", "orders/paid", "orders/updated")
        for e in shopify_events(order, topic=topic)
    }
    assert ids == {"shopify:820982911946154508:purchase"}


def test_a_pending_shopify_order_becomes_a_purchase_when_paid() -> None:
    order = fixture("shopify_order_paid.json") | {"financial_status": "pending"}
    assert shopify_events(order, topic="orders/create") == []
    assert len(shopify_events(order, topic="orders/paid")) == 1


def test_prices_with_taxes_included_give_the_value_without_tax() -> None:
    order = fixture("shopify_order_paid.json") | {"taxes_included": True, "total_tax": "64.50"}
    [purchase] = shopify_events(order, topic="orders/paid")
    assert purchase["value"] == "322.50"


def test_a_shopify_refund_takes_its_order_owner_from_the_store() -> None:
    refund = fixture("shopify_refund.json")
    seen = []

    def owner(order_id: str):
        seen.append(order_id)
        return ("115310627314723954", "anon-browser-1001")

    [event] = shopify_events(refund, topic="refunds/create", owner=owner)
    assert seen == ["820982911946154508"]
    assert event["event"] == "refund"
    assert event["event_id"] == "shopify:820982911946154508:refund:509562969"
    assert event["order_id"] == "820982911946154508"
    assert event["value"] == "99.00"
    assert event["currency"] == "USD"
    assert event["ts"] == "2024-03-03T14:00:00"
    assert event["user_id"] == "115310627314723954"
    assert [(i["item_id"], i["quantity"]) for i in event["items"]] == [("CASE-BLK", 1)]


def test_a_refund_of_an_unknown_order_is_kept_under_the_order() -> None:
    [event] = shopify_events(
        fixture("shopify_refund.json"), topic="refunds/create", owner=lambda order_id: None
    )
    assert (event["user_id"], event["anonymous_id"]) == (None, "shopify-order:820982911946154508")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "no 'id'"),
        ({"total": "twelve"}, "'total' is not an amount"),
        ({"date_paid_gmt": "yesterday"}, "'date_paid_gmt' is not a time"),
    ],
)
def test_a_payload_that_is_not_a_readable_order_is_refused_naming_the_field(
    change, message
) -> None:
    with pytest.raises(InputError, match=message):
        woocommerce_events(fixture("woocommerce_order_processing.json") | change)


def test_a_shopify_webhook_needs_its_topic() -> None:
    with pytest.raises(InputError, match="X-Shopify-Topic"):
        order_events("shopify", fixture("shopify_order_paid.json"), topic=None)
