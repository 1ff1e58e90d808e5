"""Tiny stores the journey tests share."""

from __future__ import annotations

import json

import pandas as pd
from tests.conftest import T0, log

from shopfunnel.store.store import Store

MUG = json.dumps([{"item_id": "mug-1", "item_name": "Mug", "price": 12.5, "quantity": 2}])


def at(minutes: float) -> pd.Timestamp:
    return pd.Timestamp(T0.replace(tzinfo=None)) + pd.Timedelta(minutes=minutes)


def shopper_store(path: str = ":memory:") -> Store:
    """Ann browses on her phone (cookie a-phone) from a newsletter, logs in as u-ann two
    days later and buys a mug; a week later she buys again on her laptop (a-laptop).
    Bob (cookie b) browses once and never identifies."""
    store = Store(path)
    store.load(shopper_events())
    return store


def shopper_events() -> pd.DataFrame:
    """The events of :func:`shopper_store`."""
    return log(
        (
            "a-phone",
            0,
            "page_view",
            {
                "session_id": "s1",
                "device": "mobile",
                "page": "/mugs",
                "utm_source": "newsletter",
                "utm_medium": "email",
            },
        ),
        (
            "a-phone",
            2,
            "view_item",
            {
                "session_id": "s1",
                "device": "mobile",
                "items": MUG,
                "value": 25.0,
                "currency": "EUR",
            },
        ),
        (
            "a-phone",
            2880,
            "add_to_cart",
            {
                "session_id": "s2",
                "device": "mobile",
                "user_id": "u-ann",
                "items": MUG,
                "value": 25.0,
                "currency": "EUR",
                "properties": json.dumps(
                    {"email": " Ann@Example.com ", "phone": "+44 20 7946 0000"}
                ),
            },
        ),
        (
            "a-phone",
            2885,
            "purchase",
            {
                "session_id": "s2",
                "device": "mobile",
                "user_id": "u-ann",
                "order_id": "o-1",
                "value": 25.0,
                "currency": "EUR",
                "items": MUG,
            },
        ),
        (
            "a-laptop",
            12960,
            "page_view",
            {
                "session_id": "s3",
                "device": "desktop",
                "user_id": "u-ann",
                "page": "/",
                "referrer": "https://www.google.com/",
            },
        ),
        (
            "a-laptop",
            12965,
            "purchase",
            {
                "session_id": "s3",
                "device": "desktop",
                "user_id": "u-ann",
                "order_id": "o-2",
                "value": 40.0,
                "currency": "EUR",
                "properties": json.dumps({"coupon": "SPRING-1"}),
            },
        ),
        (
            "a-laptop",
            13000,
            "refund",
            {
                "session_id": "s3",
                "device": "desktop",
                "user_id": "u-ann",
                "order_id": "o-2",
                "value": 10.0,
                "currency": "EUR",
            },
        ),
        ("b", 5, "page_view", {"session_id": "sb", "device": "tablet"}),
    )
