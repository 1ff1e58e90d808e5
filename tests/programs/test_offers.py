"""Offers: tier boundaries, codes (unique, one use each), the result of an offer and the
near-threshold carts, on tiny stores computed by hand."""

from __future__ import annotations

import json
import math
import re
import statistics
from datetime import datetime

import pandas as pd
import pytest
from tests.conftest import log

from shopfunnel.errors import ConfigError
from shopfunnel.programs import codes as codes_module
from shopfunnel.programs.codes import code_status, fresh_codes, import_codes, issue_codes
from shopfunnel.programs.offer_carts import near_threshold
from shopfunnel.programs.offer_results import offer_result
from shopfunnel.programs.offers import (
    Offer,
    create_offer,
    get_offer,
    issue_offer_codes,
    list_offers,
)

START, END = datetime(2024, 3, 1), datetime(2024, 3, 8)


def tiers_offer(**kw) -> Offer:
    return Offer("t", START, END, tuple(__import__("shopfunnel").parse_tiers("100:5,300:10")), **kw)


@pytest.mark.parametrize(
    ("gross", "discount"),
    [
        (99.99, 0.0),
        (100.0, 5.0),
        (100.01, 5.0),
        (299.99, 15.0),
        (300.0, 30.0),
        (300.01, 30.0),
    ],
)
def test_tiers_start_exactly_at_100_and_300(gross, discount):
    assert tiers_offer().discount_on(gross) == pytest.approx(discount)


# 284.99 could be 299.99 less 5% or 316.66 less 10%: the highest tier that fits is taken
@pytest.mark.parametrize(
    ("paid", "gross"),
    [
        (95.0, 100.0),
        (270.0, 300.0),
        (94.99, 94.99),
        (284.99, 284.99 / 0.9),
        (269.99, 269.99 / 0.95),
    ],
)
def test_the_value_before_the_discount_is_read_back_from_the_paid_value(paid, gross):
    assert tiers_offer().gross_from_paid(paid) == pytest.approx(gross)


def test_an_offer_needs_a_rule_a_fee_for_free_shipping_and_an_end_after_its_start():
    with pytest.raises(ConfigError, match="no rule"):
        Offer("x", START, END)
    with pytest.raises(ConfigError, match="shipping fee"):
        Offer("x", START, END, free_shipping_from=75)
    with pytest.raises(ConfigError, match="before it starts"):
        Offer("x", END, START, free_shipping_from=75, shipping_fee=5)
    with pytest.raises(ConfigError, match="name"):
        Offer("no spaces", START, END, free_shipping_from=75, shipping_fee=5)


def spring(store, shipping_fee=5.0):
    """The seed's offer for a week from 2024-03-01, to everyone."""
    return create_offer(
        store,
        "spring",
        starts_at="2024-03-01",
        days=7,
        tiers="100:5,300:10",
        free_shipping_from=75,
        shipping_fee=shipping_fee,
        audience="all",
    )


def test_offers_are_stored_listed_and_refused_twice(store):
    store.load(log(("A", 0, "page_view")))
    spring(store, shipping_fee=5.95)
    offer = get_offer(store, "spring")
    assert offer.ends_at == END and offer.rule == (
        "5% off from 100, 10% off from 300; free shipping from 75"
    )
    assert [o.name for o in list_offers(store)] == ["spring"]
    with pytest.raises(ConfigError, match="exists"):
        create_offer(store, "spring", starts_at="2024-03-01", days=1, tiers="10:5")
    with pytest.raises(ConfigError, match="no offer named 'summer'.*spring"):
        get_offer(store, "summer")


CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{10}$")


def test_codes_are_unique_unguessable_in_form_and_stable_per_person(store):
    store.load(log(("A", 0, "page_view")))
    persons = [f"p{i}" for i in range(3000)]
    first = issue_codes(store, "o1", persons)
    assert len(first) == 3000 and first["code"].is_unique
    assert first["code"].map(lambda c: bool(CODE.match(c))).all()
    again = issue_codes(store, "o1", persons + ["new"])
    assert (
        again.set_index("person_id")["code"]
        .drop("new")
        .equals(first.set_index("person_id")["code"])
    )
    other = issue_codes(store, "o2", persons)
    assert not set(other["code"]) & set(first["code"])


def test_a_code_already_in_the_store_is_never_issued_again(store, monkeypatch):
    store.load(log(("A", 0, "page_view")))
    import_codes(store, "o1", pd.DataFrame({"person_id": ["A"], "code": ["AAAAAAAAAA"]}))
    drawn = iter(["AAAAAAAAAA", "AAAAAAAAAA", "BBBBBBBBBB"])
    monkeypatch.setattr(codes_module, "new_code", lambda prefix="": next(drawn))
    assert fresh_codes(store, 1) == ["BBBBBBBBBB"]


def test_importing_a_taken_code_writes_nothing(store):
    store.load(log(("A", 0, "page_view")))
    import_codes(store, "o1", pd.DataFrame({"person_id": ["A"], "code": ["abc"]}))
    with pytest.raises(ConfigError, match="already exist"):
        import_codes(store, "o2", pd.DataFrame({"person_id": ["B", "C"], "code": ["XYZ", "ABC"]}))
    assert store.db.scalar("SELECT count(*) FROM program_codes") == 1


def purchase(person, minutes, order, value, **props):
    return (
        person,
        minutes,
        "purchase",
        {
            "order_id": order,
            "value": value,
            "currency": "USD",
            "properties": json.dumps(props) if props else None,
        },
    )


WEEK = 7 * 24 * 60


@pytest.fixture
def ran(store):
    """Four holders A–D of an offer from T0 (2024-03-01 12:00) to 2024-03-08."""
    store.load(
        log(
            purchase("A", 0, "o1", 95.0, coupon="codea", discount=5),  # redeemed
            purchase("A", 60, "o2", 50.0, coupon="CODEA"),  # reused
            purchase("B", 10, "o3", 270.0, coupon=" CODEB "),  # redeemed, discount inferred
            purchase("C", 20, "o4", 80.0),  # comparable
            purchase("C", 30, "o5", 40.0),  # comparable
            purchase("E", 40, "o6", 80.0, coupon="OTHER,CODED"),  # D's code used by E
            purchase("C", WEEK + 60, "o7", 120.0, coupon="CODEC"),  # after the period
        )
    )
    create_offer(
        store,
        "spring",
        starts_at=START,
        ends_at=END,
        tiers="100:5,300:10",
        free_shipping_from=75,
        shipping_fee=5,
        audience=["A", "B", "C", "D"],
    )
    import_codes(
        store,
        "spring",
        pd.DataFrame(
            {"person_id": ["A", "B", "C", "D"], "code": ["CODEA", "CODEB", "CODEC", "CODED"]}
        ),
    )
    return store


def test_each_code_counts_once_inside_the_period(ran):
    uses = offer_result(ran, "spring").uses.set_index("order_id")["use"].to_dict()
    assert uses == {
        "o1": "redeemed",
        "o2": "reused",
        "o3": "redeemed",
        "o6": "redeemed",
        "o7": "outside_period",
    }
    at = datetime(2024, 3, 5)
    assert code_status(ran, "codea", at=at)["status"] == "used"
    assert code_status(ran, "CODEC", at=at)["status"] == "valid"
    assert code_status(ran, "CODEC", at=datetime(2024, 3, 9))["status"] == "expired"
    assert code_status(ran, "CODEC", at=datetime(2024, 2, 9))["status"] == "not_started"
    assert code_status(ran, "NOPE", at=at)["status"] == "unknown"


def test_the_result_of_an_offer_matches_the_hand_calculation(ran):
    r = offer_result(ran, "spring", gross_margin=0.5).summary
    assert (r["codes_issued"], r["codes_redeemed"], r["redemption_rate"]) == (4, 3, 0.75)
    assert (r["reuses"], r["uses_outside_period"], r["redeemed_by_other"]) == (1, 1, 1)
    assert r["redeemed_orders"] == 3 and r["revenue_redeemed"] == pytest.approx(445)
    # o1 says 5; o3 paid 270 = 300 less 10%; o6 paid 80, below every tier: nothing off
    assert r["discount_given"] == pytest.approx(35) and r["gross_redeemed"] == pytest.approx(480)
    # gross 100, 300 and 80 all reach the free-shipping threshold of 75
    assert r["orders_shipped_free"] == 3 and r["shipping_absorbed"] == pytest.approx(15)
    assert r["cost"] == pytest.approx(50)
    # comparable: C, who holds a code and did not redeem; orders o4 and o5 inside the period
    assert (r["comparable_persons"], r["comparable_orders"]) == (1, 2)
    assert r["mean_value_comparable"] == pytest.approx(60)
    assert r["mean_gross_redeemed"] == pytest.approx(160)
    assert r["gross_difference"] == pytest.approx(100)
    se = math.sqrt(statistics.variance([100, 300, 80]) / 3 + statistics.variance([80, 40]) / 2)
    assert r["gross_difference_low"] == pytest.approx(100 - 1.959963984540054 * se)
    # holders' orders in the period: o1, o2, o3, o4, o5 (E's o6 is not a holder's),
    # worth 100 + 50 + 300 + 80 + 40 = 570 before discounts; margin 0.5
    assert (r["holder_orders"], r["holder_gross_revenue"]) == (5, pytest.approx(570))
    assert r["breakeven_uplift"] == pytest.approx(50 / (0.5 * 570 - 50))
    assert r["breakeven_extra_orders"] == pytest.approx(5 * 50 / (0.5 * 570 - 50))


def test_codes_are_issued_to_who_qualifies(store):
    store.load(log(purchase("A", 0, "o1", 20.0), ("B", 1, "page_view")))
    create_offer(store, "c", starts_at="2024-03-02", days=3, tiers="0:10", audience="customers")
    assert issue_offer_codes(store, "c")["person_id"].tolist() == ["A"]


def cart(person, minutes, value):
    item = {
        "item_id": "sku1",
        "item_name": "Mug",
        "item_category": "Home",
        "price": value,
        "quantity": 1,
    }
    return (person, minutes, "add_to_cart", {"value": value, "items": [item]})


def test_near_threshold_lists_carts_short_of_the_next_threshold_up_to_the_boundary(store):
    store.load(
        log(
            cart("a", 0, 88.0),  # 12 short of 100
            cart("b", 0, 100.0),  # at 100: has the 5%, 200 short of 300
            cart("c", 0, 99.99),  # 0.01 short of 100
            cart("d", 0, 285.0),  # exactly 15 short of 300: listed
            cart("e", 0, 284.99),  # 15.01 short: not listed
            cart("f", 0, 70.0),  # 5 short of free shipping at 75
            cart("g", 0, 75.0),  # at 75: has free shipping, 25 short of 100
            purchase("z", 600, "o1", 10.0),
        )
    )
    spring(store)
    near = near_threshold(store, "spring", within=15).set_index("person_id")
    assert near["short"].to_dict() == {"c": 0.01, "f": 5.0, "a": 12.0, "d": 15.0}
    assert near.loc["a", "message"] == "add USD 12.00 for 5% off"
    assert near.loc["f", "reward"] == "free shipping" and near.loc["d", "threshold"] == 300


def test_a_ga4_purchase_coupon_parameter_is_read_as_a_use(store, tmp_path):
    from shopfunnel.ingest import read

    ts = 1709294400000000  # 2024-03-01 12:00 UTC, inside the offer
    row = {
        "event_timestamp": ts,
        "event_name": "purchase",
        "user_pseudo_id": "p1",
        "event_params": [
            {"key": "transaction_id", "value": {"string_value": "T-1"}},
            {"key": "value", "value": {"double_value": 95.0}},
            {"key": "currency", "value": {"string_value": "USD"}},
            {"key": "coupon", "value": {"string_value": "spring-abc"}},
        ],
    }
    path = tmp_path / "ga4.json"
    path.write_text(json.dumps(row) + "\n")
    store.load_staged(read(path, format="ga4"))
    assert (
        store.db.scalar("SELECT json_extract_string(properties, '$.coupon') FROM events")
        == "spring-abc"
    )
    create_offer(store, "spring", starts_at=START, ends_at=END, tiers="100:5", audience=["p1"])
    import_codes(store, "spring", pd.DataFrame({"person_id": ["p1"], "code": ["SPRING-ABC"]}))
    r = offer_result(store, "spring").summary
    assert (r["codes_redeemed"], r["discount_given"]) == (1, pytest.approx(5.0))
