"""Audiences: abandoned carts and platform exports hashed as Meta and Google expect."""

from __future__ import annotations

import json

import pytest

from conftest import log
from shopfunnel.audiences import (
    abandoned_carts,
    export_audience,
    normalize_email,
    normalize_phone,
    sha256_hex,
)
from shopfunnel.errors import ConfigError
from shopfunnel.store.store import Store

# Digests from ../shared/REFERENCES.md §7, computed independently with hashlib.
EMAIL_DIGEST = "32c97a063b41feacaa44f43cc5df374905fc0a05139dc8235f5b8d448e735323"
META_PHONE_DIGEST = "26cb4f0c031f8e3956a484b9af6e06210874c4f08470f03f4f8a4d411da745ec"
GOOGLE_PHONE_DIGEST = "4feaaadc0ff47808bdc09d5ed71dadd9ac8d92aeac7a56972c58e697a61c69f0"


def item(item_id: str, price: float, quantity: int = 1) -> list[dict]:
    return [{"item_id": item_id, "item_name": item_id.title(), "item_category": "x",
             "price": price, "quantity": quantity}]


def test_email_is_trimmed_and_lowercased_but_tags_and_dots_stay() -> None:
    assert normalize_email("  John.Doe+Shop@Example.COM ") == "john.doe+shop@example.com"
    assert sha256_hex(normalize_email("  John.Doe+Shop@Example.COM ")) == EMAIL_DIGEST


def test_phone_digests_differ_between_meta_and_google_by_the_plus() -> None:
    assert normalize_phone("+1 (650) 555-0123", "meta") == "16505550123"
    assert normalize_phone("+1 (650) 555-0123", "google") == "+16505550123"
    assert sha256_hex(normalize_phone("+1 (650) 555-0123", "meta")) == META_PHONE_DIGEST
    assert sha256_hex(normalize_phone("+1 (650) 555-0123", "google")) == GOOGLE_PHONE_DIGEST


def test_a_phone_without_country_code_cannot_be_matched() -> None:
    assert normalize_phone("(650) 555-0123", "meta") is None
    assert normalize_phone("0044 20 7946 0958", "meta") == "442079460958"


def cart_store(store: Store) -> Store:
    props = json.dumps({"email": "  John.Doe+Shop@Example.COM ", "phone": "+1 (650) 555-0123"})
    store.load(log(
        # a: adds two items, removes one, never buys -> abandoned with the kept item
        ("a", 0, "add_to_cart", {"items": item("shoe", 50.0)}),
        ("a", 5, "add_to_cart", {"items": item("sock", 5.0, 2)}),
        ("a", 6, "remove_from_cart", {"items": item("sock", 5.0, 2)}),
        ("a", 7, "page_view", {"properties": props}),
        # b: adds and buys -> not abandoned
        ("b", 0, "add_to_cart", {"items": item("hat", 20.0)}),
        ("b", 9, "purchase", {"order_id": "o1", "value": 20.0}),
        # c: bought earlier, then carted again without buying -> abandoned, only the new cart counts
        ("c", 0, "add_to_cart", {"items": item("hat", 20.0)}),
        ("c", 1, "purchase", {"order_id": "o2", "value": 20.0}),
        ("c", 30, "add_to_cart", {"items": item("coat", 120.0)}),
        # d: carted too recently to call it abandoned (the store ends at minute 240)
        ("d", 230, "add_to_cart", {"items": item("scarf", 15.0)}),
        ("e", 240, "page_view"),
    ))
    return store


def test_abandoned_carts_lists_carts_without_a_later_purchase(store: Store) -> None:
    carts = abandoned_carts(cart_store(store), after="1h")
    assert carts["person_id"].tolist() == ["c", "a"]
    assert carts["cart_value"].tolist() == [120.0, 50.0]
    assert carts.set_index("person_id").loc["a", "items"] == "Shoe"
    assert carts.set_index("person_id").loc["a", "email"].strip() == "John.Doe+Shop@Example.COM"


def test_a_shorter_wait_includes_the_recent_cart(store: Store) -> None:
    carts = abandoned_carts(cart_store(store), after="5m")
    assert set(carts["person_id"]) == {"a", "c", "d"}


def test_platform_exports_hash_contacts_and_drop_people_without_any(store: Store) -> None:
    carts = abandoned_carts(cart_store(store), after="1h")
    meta = export_audience(carts, "meta")
    assert meta.to_dict("records") == [
        {"EMAIL": EMAIL_DIGEST, "PHONE": META_PHONE_DIGEST, "EXTERN_ID": "a"}
    ]
    google = export_audience(carts, "google")
    assert google.to_dict("records") == [{"Email": EMAIL_DIGEST, "Phone": GOOGLE_PHONE_DIGEST}]
    assert len(export_audience(carts, "csv")) == 2


def test_an_unknown_platform_is_refused() -> None:
    import pandas as pd

    with pytest.raises(ConfigError, match="use one of csv, meta, google"):
        export_audience(pd.DataFrame({"person_id": []}), "tiktok")  # type: ignore[arg-type]
