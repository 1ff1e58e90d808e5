"""An offer's holdout: a fixed share of its audience never gets a code, and the offer's
result reads its lift against them (revenue per person and purchase rate over the period)."""

from __future__ import annotations

from datetime import datetime

import pytest
from tests.conftest import log

from shopfunnel.errors import ConfigError
from shopfunnel.experiments import in_holdout
from shopfunnel.programs.offer_results import offer_result
from shopfunnel.programs.offers import (
    Offer,
    create_offer,
    get_offer,
    held_out,
    issue_offer_codes,
)
from shopfunnel.programs.tables import ensure_tables

START, END = datetime(2024, 3, 1), datetime(2024, 3, 8)
PERSONS = [f"p{i:03d}" for i in range(400)]


def offer(store, holdout=0.5, audience=None):
    return create_offer(
        store,
        "spring",
        starts_at=START,
        ends_at=END,
        tiers="100:5,300:10",
        audience=audience or PERSONS,
        holdout=holdout,
    )


@pytest.mark.parametrize("share", [1, 1.5, -0.1, True, "0.1"])
def test_a_holdout_is_a_share_below_one(share):
    with pytest.raises(ConfigError, match="holdout"):
        Offer("x", START, END, free_shipping_from=75, shipping_fee=5, holdout=share)


def test_held_out_persons_never_get_a_code_and_the_split_is_the_shared_hash(store):
    store.load(log(("p000", 0, "page_view")))
    offer(store, holdout=0.2)
    codes = issue_offer_codes(store, "spring")
    expected_held = {p for p in PERSONS if in_holdout("offer:spring", p, 0.2)}
    assert set(codes["person_id"]) == set(PERSONS) - expected_held
    # about a fifth held out: 400 × 0.2 = 80, sd 8
    assert 80 - 4 * 8 <= len(expected_held) <= 80 + 4 * 8
    again = issue_offer_codes(store, "spring")  # a re-issue gives the held-out nobody
    assert set(again["person_id"]) == set(codes["person_id"])
    assert get_offer(store, "spring").holdout == 0.2


def test_the_offers_lift_over_its_holdout_is_the_plain_ratio_of_means(store):
    holdout = 0.5
    held = {p for p in PERSONS if in_holdout("offer:spring", p, holdout)}
    rows, revenue = [], {}
    for i, p in enumerate(PERSONS):
        # holders: three in four buy, 100-106; held out: every second buys, 50-54
        if (p not in held and i % 4 != 0) or (p in held and i % 2 == 0):
            value = 100.0 + i % 7 if p not in held else 50.0 + i % 5
            rows.append(
                (p, 60 + i, "purchase", {"order_id": f"o{i}", "value": value, "currency": "USD"})
            )
            revenue[p] = value
        # an order after the offer's end counts for nobody
        rows.append(
            (
                p,
                8 * 24 * 60 + i,
                "purchase",
                {"order_id": f"late{i}", "value": 999.0, "currency": "USD"},
            )
        )
    store.load(log(*rows))
    offer(store, holdout=holdout)
    issue_offer_codes(store, "spring")
    result = offer_result(store, "spring")
    s = result.summary

    holders = [p for p in PERSONS if p not in held]
    mean_holders = sum(revenue.get(p, 0.0) for p in holders) / len(holders)
    mean_held = sum(revenue.get(p, 0.0) for p in held) / len(held)
    rate_holders = sum(p in revenue for p in holders) / len(holders)
    rate_held = sum(p in revenue for p in held) / len(held)
    assert s["held_out_persons"] == len(held) and s["holdout_share"] == holdout
    assert s["revenue_per_person_lift"] == pytest.approx(mean_holders / mean_held - 1, rel=1e-9)
    assert s["purchase_rate_lift"] == pytest.approx(rate_holders / rate_held - 1, rel=1e-9)
    assert (
        s["revenue_per_person_lift_low"]
        < s["revenue_per_person_lift"]
        < (s["revenue_per_person_lift_high"])
    )
    assert s["revenue_per_person_lift_p"] < 0.001


def test_an_offer_without_holdout_has_no_lift_figures(store):
    store.load(log(("p000", 0, "page_view")))
    offer(store, holdout=0.0)
    assert held_out(get_offer(store, "spring"), PERSONS) == []
    assert "revenue_per_person_lift" not in offer_result(store, "spring").summary


def test_a_too_small_audience_gives_a_note_not_a_crash(store):
    store.load(log(("a", 0, "page_view")))
    offer(store, holdout=0.5, audience=["a", "b", "c", "d"])
    issue_offer_codes(store, "spring")
    result = offer_result(store, "spring")
    assert any(n.startswith("holdout, revenue per person:") for n in result.notes)


def test_offers_stored_before_holdouts_read_as_no_holdout(store):
    store.load(log(("p000", 0, "page_view")))
    store.db.execute("""CREATE TABLE program_offers (
        name VARCHAR PRIMARY KEY, tiers VARCHAR, free_shipping_from DOUBLE, shipping_fee DOUBLE,
        starts_at TIMESTAMP NOT NULL, ends_at TIMESTAMP NOT NULL, audience VARCHAR NOT NULL,
        description VARCHAR, created_at TIMESTAMP NOT NULL)""")
    store.db.execute(
        "INSERT INTO program_offers VALUES ('old', '100:5', NULL, NULL, ?, ?, 'all', '', ?)",
        [START, END, START],
    )
    assert get_offer(store, "old").holdout == 0.0
    ensure_tables(store)  # the next write adds the column
    assert get_offer(store, "old").holdout == 0.0
    offer(store, holdout=0.1)
    assert get_offer(store, "spring").holdout == 0.1
