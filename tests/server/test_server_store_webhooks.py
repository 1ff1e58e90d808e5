"""Inbound order webhooks: a good signature puts the order in the store once, a bad or
missing one gets 401 and writes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from pathlib import Path

import pytest

from server.kit import LiveServer
from shopfunnel.server import auth
from shopfunnel.server.store_webhooks import platform_signature, signed_by
from shopfunnel.store.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
WOO_SECRET = "wc_test_secret"
SHOPIFY_SECRET = "shpss_test_client_secret"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_the_platform_signature_matches_the_worked_examples() -> None:
    # REFERENCES §8 (computed there with Python hmac + base64)
    woo = b'{"id":727,"status":"processing","currency":"USD","total":"59.90"}'
    assert platform_signature(WOO_SECRET, woo) == "5fkIZaWUe0uqKBchcCy08zpxjWeNmbdl6f0eUyrCT3w="
    shop = b'{"id":820982911946154508,"name":"#1001","currency":"USD","total_price":"59.90"}'
    assert (
        platform_signature(SHOPIFY_SECRET, shop) == "j10f43tdntoz0sMnOinwC15qMPTJEPVmg+RAafG7W6Y="
    )
    assert signed_by(
        ["other_secret", SHOPIFY_SECRET],
        shop,
        "j10f43tdntoz0sMnOinwC15qMPTJEPVmg+RAafG7W6Y=",
        platform="shopify",
    )
    assert not signed_by(
        [], shop, "j10f43tdntoz0sMnOinwC15qMPTJEPVmg+RAafG7W6Y=", platform="shopify"
    )


def test_a_woocommerce_secret_is_html_entity_decoded_as_woocommerce_does() -> None:
    body = b'{"id":1}'
    assert signed_by(["a&amp;b_secret"], body, sign("a&b_secret", body), platform="woocommerce")


@pytest.fixture
def live(tmp_path: Path):
    db = tmp_path / "shop.duckdb"
    with Store(db) as store:
        auth.set_platform_secret(store.db, "woocommerce", WOO_SECRET)
        auth.set_platform_secret(store.db, "shopify", SHOPIFY_SECRET)
    with LiveServer(db, max_webhook_body_bytes=64 * 1024) as server:
        yield server


def events(live: LiveServer) -> list[tuple]:
    return live.sql(
        "SELECT event_id, event, order_id, CAST(value AS VARCHAR), person_id "
        "FROM events ORDER BY event_id"
    )


def woo(live: LiveServer, body: bytes, signature: str | None, topic: str = "order.created"):
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Source": "https://shop.example/",
        "X-WC-Webhook-ID": "3",
        "X-WC-Webhook-Delivery-ID": "ab12",
    }
    if signature is not None:
        headers["X-WC-Webhook-Signature"] = signature
    return live.client.post("/v1/webhooks/woocommerce", content=body, headers=headers)


def test_a_signed_woocommerce_order_is_stored_once_however_often_it_comes(live, caplog) -> None:
    created = raw("woocommerce_order_processing.json")
    caplog.set_level(logging.DEBUG)
    answer = woo(live, created, sign(WOO_SECRET, created))
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"] == 1
    assert woo(live, created, sign(WOO_SECRET, created)).status_code == 200  # a retry
    updated = raw("woocommerce_order_refunded.json")
    assert woo(live, updated, sign(WOO_SECRET, updated), "order.updated").json()["events"] == 2
    assert events(live) == [
        ("woocommerce:727:purchase", "purchase", "727", "16.00", "john.doe@example.com"),
        ("woocommerce:727:refund:730", "refund", "727", "6.00", "john.doe@example.com"),
    ]
    assert "john.doe" not in caplog.text.lower()  # contacts never reach the logs


@pytest.mark.parametrize("signature", [None, "", "not-base64", sign("another_secret", b"x")])
def test_a_woocommerce_order_without_the_right_signature_is_refused_and_not_written(
    live, signature
) -> None:
    body = raw("woocommerce_order_processing.json")
    answer = woo(live, body, signature)
    assert answer.status_code == 401
    assert "signature" in answer.json()["error"]
    assert events(live) == []


def test_a_changed_body_with_the_original_signature_is_refused(live) -> None:
    body = raw("woocommerce_order_processing.json")
    forged = body.replace(b'"total": "27.20"', b'"total": "0.20"')
    assert woo(live, forged, sign(WOO_SECRET, body)).status_code == 401
    assert events(live) == []


def test_the_woocommerce_ping_on_save_is_answered_and_writes_nothing(live) -> None:
    answer = live.client.post(
        "/v1/webhooks/woocommerce",
        content=b"webhook_id=3",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200 and answer.json()["ping"] is True
    assert events(live) == []


def test_a_body_over_the_limit_is_refused_with_413(live) -> None:
    big = json.dumps({"id": 1, "note": "x" * 70_000}).encode()
    assert woo(live, big, sign(WOO_SECRET, big)).status_code == 413
    assert events(live) == []


def shopify(live: LiveServer, body: bytes, signature: str | None, topic: str):
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "shop-example.myshopify.com",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-API-Version": "2024-01",
    }
    if signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature
    return live.client.post("/v1/webhooks/shopify", content=body, headers=headers)


def test_a_signed_shopify_order_and_its_refund_are_stored_once(live) -> None:
    order = raw("shopify_order_paid.json")
    for topic in ("orders/create", "orders/paid", "orders/create"):
        assert shopify(live, order, sign(SHOPIFY_SECRET, order), topic).status_code == 200
    refund = raw("shopify_refund.json")
    live.flush()  # the refund's owner is looked up among the stored orders
    for _ in range(2):
        assert (
            shopify(live, refund, sign(SHOPIFY_SECRET, refund), "refunds/create").status_code == 200
        )
    assert events(live) == [
        (
            "shopify:820982911946154508:purchase",
            "purchase",
            "820982911946154508",
            "387.00",
            "115310627314723954",
        ),
        (
            "shopify:820982911946154508:refund:509562969",
            "refund",
            "820982911946154508",
            "99.00",
            "115310627314723954",
        ),
    ]
    coupon = live.sql(
        "SELECT json_extract_string(properties, '$.coupon') FROM events WHERE event = 'purchase'"
    )
    assert coupon == [("WELCOME10",)]


def test_a_shopify_order_signed_with_the_woocommerce_secret_is_refused(live) -> None:
    order = raw("shopify_order_paid.json")
    assert shopify(live, order, sign(WOO_SECRET, order), "orders/create").status_code == 401
    assert events(live) == []


def test_without_a_kept_secret_every_webhook_is_refused_with_a_hint(tmp_path) -> None:
    with LiveServer(tmp_path / "bare.duckdb") as bare:
        order = raw("shopify_order_paid.json")
        answer = shopify(bare, order, sign(SHOPIFY_SECRET, order), "orders/create")
        assert answer.status_code == 401
        assert "shopfunnel keys platform-secret shopify" in answer.json()["error"]
