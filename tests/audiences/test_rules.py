"""Each kind of audience rule on tiny stores whose members are worked out by hand, at the
edges of its windows, and combined with all / any / not."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from tests.conftest import T0, log

from shopfunnel.audiences import evaluate
from shopfunnel.audiences.definitions import (
    AbandonedRule,
    AllRule,
    AnyRule,
    ClvRule,
    DropOffRule,
    EventsRule,
    LapsedRule,
    NotRule,
    OrdersRule,
    RfmRule,
    StageRule,
    parse_rule,
)
from shopfunnel.audiences.saved import audience_members
from shopfunnel.errors import ConfigError
from shopfunnel.model import Model, model_from_dict
from shopfunnel.store.store import Store

MODEL = Model()
US = timedelta(microseconds=1)
HOUR, DAY = 60, 24 * 60  # in minutes, as log() takes them


def at(minutes: float) -> pd.Timestamp:
    return pd.Timestamp(T0).tz_localize(None) + pd.Timedelta(minutes=minutes)


def who(store: Store, rule: object, as_of: object = None, model: Model = MODEL) -> list[str]:
    return list(audience_members(store, rule, as_of=as_of, model=model)["person_id"])


def item(category: str, item_id: str = "sku", price: float = 10.0) -> list[dict]:
    return [
        {
            "item_id": item_id,
            "item_name": item_id,
            "item_category": category,
            "price": price,
            "quantity": 1,
        }
    ]


def order(order_id: str, value: float) -> dict:
    return {"order_id": order_id, "value": value}


# -- abandoned ------------------------------------------------------------------------------
CARTS = AbandonedRule(did=("add_to_cart",), without=("purchase",), after="1h", lookback="30d")


def test_a_cart_is_abandoned_at_exactly_after_and_not_a_microsecond_before(store: Store) -> None:
    store.load(log(("a", 0, "add_to_cart")))
    assert who(store, CARTS, at(HOUR)) == ["a"]
    assert who(store, CARTS, at(HOUR) - US) == []


def test_a_purchase_at_or_after_the_cart_means_not_abandoned_one_before_does_not(
    store: Store,
) -> None:
    store.load(
        log(
            ("same-instant", 0, "add_to_cart"),
            ("same-instant", 0, "purchase", order("o1", 5)),
            ("bought-later", 0, "add_to_cart"),
            ("bought-later", 30, "purchase", order("o2", 5)),
            ("bought-before", -10, "purchase", order("o3", 5)),
            ("bought-before", 0, "add_to_cart"),
        )
    )
    assert who(store, CARTS, at(2 * HOUR)) == ["bought-before"]


def test_only_the_latest_cart_counts(store: Store) -> None:
    store.load(log(("a", 0, "add_to_cart"), ("a", 50, "add_to_cart")))
    assert who(store, CARTS, at(90)) == []  # the latest cart is 40 minutes old
    assert who(store, CARTS, at(110)) == ["a"]


def test_a_cart_exactly_lookback_old_is_in_and_older_is_out(store: Store) -> None:
    store.load(log(("a", 0, "add_to_cart")))
    assert who(store, CARTS, at(30 * DAY)) == ["a"]
    assert who(store, CARTS, at(30 * DAY) + US) == []


def test_browse_abandoners_are_those_who_viewed_and_did_not_cart_and_cart_abandoners_the_others(
    store: Store,
) -> None:
    store.load(
        log(
            ("only-viewed", 0, "view_item"),
            ("viewed-then-carted", 0, "view_item"),
            ("viewed-then-carted", 5, "add_to_cart"),
            ("carted-then-viewed", 0, "add_to_cart"),
            ("carted-then-viewed", 5, "view_item"),
        )
    )
    browse = AbandonedRule(
        did=("view_item",), without=("add_to_cart", "begin_checkout", "purchase")
    )
    assert who(store, browse, at(DAY)) == ["carted-then-viewed", "only-viewed"]
    assert who(store, CARTS, at(DAY)) == ["carted-then-viewed", "viewed-then-carted"]


def test_abandoned_can_filter_the_did_events(store: Store) -> None:
    store.load(
        log(
            ("shoes", 0, "view_item", {"items": item("shoes")}),
            ("hats", 0, "view_item", {"items": item("hats")}),
        )
    )
    rule = AbandonedRule(
        did=("view_item",), without=("add_to_cart",), where={"item_category": "shoes"}
    )
    assert who(store, rule, at(DAY)) == ["shoes"]


# -- events ---------------------------------------------------------------------------------
TWICE_SHOES = EventsRule(
    event="view_item", where={"item_category": "shoes"}, at_least=2, within="7d"
)


def test_viewed_a_category_twice_in_seven_days(store: Store) -> None:
    store.load(
        log(
            ("twice", 0, "view_item", {"items": item("shoes")}),
            ("twice", 6 * DAY, "view_item", {"items": item("shoes")}),
            (
                "once-too-early",
                -2 * DAY,
                "view_item",
                {"items": item("shoes")},
            ),  # 8 days before as_of
            ("once-too-early", 6 * DAY, "view_item", {"items": item("shoes")}),
            ("other-category", 0, "view_item", {"items": item("hats")}),
            ("other-category", 1, "view_item", {"items": item("shoes")}),
            # any item of the event may match
            ("basket", 0, "view_item", {"items": item("hats") + item("shoes", "s2")}),
            ("basket", 1, "view_item", {"items": item("shoes")}),
        )
    )
    assert who(store, TWICE_SHOES, at(6 * DAY)) == ["basket", "twice"]


def test_the_events_window_includes_its_start(store: Store) -> None:
    store.load(
        log(
            ("a", 0, "view_item", {"items": item("shoes")}),
            ("a", DAY, "view_item", {"items": item("shoes")}),
        )
    )
    assert who(store, TWICE_SHOES, at(7 * DAY)) == ["a"]
    assert who(store, TWICE_SHOES, at(7 * DAY) + US) == []


def test_events_filter_on_a_property_and_bound_the_count_from_above(store: Store) -> None:
    guest = json.dumps({"checkout_type": "guest"})
    store.load(
        log(
            ("g1", 0, "begin_checkout", {"properties": guest}),
            ("g3", 0, "begin_checkout", {"properties": guest}),
            ("g3", 1, "begin_checkout", {"properties": guest}),
            ("g3", 2, "begin_checkout", {"properties": guest}),
            ("acct", 0, "begin_checkout", {"properties": json.dumps({"checkout_type": "account"})}),
        )
    )
    rule = EventsRule(event="begin_checkout", where={"checkout_type": "guest"}, at_most=2)
    assert who(store, rule, at(10)) == ["g1"]


# -- stage ----------------------------------------------------------------------------------
def test_stage_and_status_select_the_placed_persons(store: Store) -> None:
    # Too few returns for the store's own thresholds: prospects stall after 7 days and are
    # gone after 28 (the model's fallbacks); a single order lapses after 90 days.
    store.load(
        log(
            ("interest-idle-8d", 0, "view_item"),
            ("interest-idle-1d", 7 * DAY, "view_item"),
            ("interest-idle-30d", -22 * DAY, "view_item"),
            ("decision-idle-8d", 0, "add_to_cart"),
            ("clock", 8 * DAY, "page_view"),
        )
    )
    stalled_interest = StageRule(stage="interest", status=("stalled",))
    assert who(store, stalled_interest) == ["interest-idle-8d"]
    assert who(store, StageRule(stage="Interest")) == [
        "interest-idle-1d",
        "interest-idle-30d",
        "interest-idle-8d",
    ]
    assert who(store, StageRule(status=("stalled", "gone"))) == [
        "decision-idle-8d",
        "interest-idle-30d",
        "interest-idle-8d",
    ]
    # any status string is accepted: one nobody has selects nobody
    assert who(store, StageRule(status=("hibernating",))) == []
    with pytest.raises(ConfigError, match="no stage 'intrest'"):
        who(store, StageRule(stage="intrest"))


# -- orders, RFM, lapsed --------------------------------------------------------------------
def test_orders_bounds_are_inclusive_and_zero_orders_lets_non_buyers_in(store: Store) -> None:
    store.load(
        log(
            ("one", 0, "purchase", order("o1", 50)),
            ("two", 0, "purchase", order("o2", 30)),
            ("two", 10, "purchase", order("o3", 20)),
            ("three", 0, "purchase", order("o4", 100)),
            ("three", 1, "purchase", order("o5", 100)),
            ("three", 2, "purchase", order("o6", 100)),
            ("none", 0, "page_view"),
        )
    )
    assert who(store, OrdersRule(min_orders=1, max_orders=1)) == ["one"]
    assert who(store, OrdersRule(min_orders=2)) == ["three", "two"]
    assert who(store, OrdersRule(min_revenue=50, max_revenue=50)) == ["one", "two"]
    assert who(store, OrdersRule(min_orders=0, max_orders=0)) == ["none"]
    # the orders of the last 5 minutes before as_of (minute 10): only two's second one
    assert who(store, OrdersRule(within="5m"), at(10)) == ["two"]


def test_orders_count_distinct_order_ids_up_to_as_of(store: Store) -> None:
    store.load(
        log(
            ("a", 0, "purchase", order("o1", 10)),
            ("a", 1, "purchase", order("o1", 10)),
            ("a", 60, "purchase", order("o2", 10)),
        )
    )
    assert who(store, OrdersRule(max_orders=1), at(30)) == ["a"]
    assert who(store, OrdersRule(max_orders=1), at(60)) == []


def test_rfm_groups_at_the_extremes(store: Store) -> None:
    # five customers whose recency, frequency and spend all improve together: the best is a
    # champion (5, 5, 5), the worst dormant (1, 1, 1)
    rows = []
    for k in range(5):
        for n in range(k + 1):
            rows.append((f"c{k}", k * DAY + n, "purchase", order(f"o{k}-{n}", 10.0 * (k + 1))))
    rows.append(("prospect", 0, "page_view"))
    store.load(log(*rows))
    assert who(store, RfmRule(groups=("champions",))) == ["c4"]
    assert who(store, RfmRule(groups=("dormant",))) == ["c0"]
    assert who(store, RfmRule(groups=("prospects",))) == ["prospect"]


def test_lapsed_is_strictly_past_the_usual_gap(store: Store) -> None:
    # fewer than 20 gaps in the store: a customer with under 3 orders lapses after 90 days;
    # with 3+ orders after their own mean gap × 1.609 (the 80th percentile of an exponential)
    store.load(
        log(
            ("single", 0, "purchase", order("s1", 10)),
            ("regular", 0, "purchase", order("r1", 10)),
            ("regular", 10 * DAY, "purchase", order("r2", 10)),
            ("regular", 20 * DAY, "purchase", order("r3", 10)),
            ("clock", 90 * DAY, "page_view"),
        )
    )
    rule = LapsedRule()
    assert who(store, rule, at(90 * DAY)) == ["regular"]  # 70 days > 16.09; single exactly 90
    assert who(store, rule, at(90 * DAY) + US) == ["regular", "single"]
    own_gap = 10 * 1.6094379124341003  # days
    assert who(store, rule, at(20 * DAY + own_gap * DAY)) == []
    assert who(store, rule, at(20 * DAY + own_gap * DAY + 1 / 60)) == ["regular"]
    half = LapsedRule(gap_multiplier=0.5)  # single after 45 days
    assert who(store, half, at(45 * DAY)) == ["regular"]
    assert who(store, half, at(45 * DAY) + US) == ["regular", "single"]


# -- drop-off -------------------------------------------------------------------------------
def test_drop_off_needs_the_whole_window_to_have_passed(store: Store) -> None:
    store.load(
        log(
            ("viewed-carted", 0, "view_item"),
            ("viewed-carted", 2 * HOUR, "add_to_cart"),
            ("viewed", 0, "view_item"),
            ("bought", 0, "view_item"),
            ("bought", 1, "add_to_cart"),
            ("bought", 2, "purchase"),
            ("carted-too-late", 0, "view_item"),
            ("carted-too-late", DAY + 1, "add_to_cart"),
        )
    )
    steps = ("view_item", "add_to_cart", "purchase")
    after_cart = DropOffRule(step=2, steps=steps, within="1d")
    after_view = DropOffRule(step=1, steps=steps, within="1d")
    assert who(store, after_cart, at(2 * DAY)) == ["viewed-carted"]
    assert who(store, after_view, at(2 * DAY)) == ["carted-too-late", "viewed"]
    # the attempts started at T0 with a one-day window: settled at exactly T0 + 1 day
    assert who(store, after_cart, at(DAY)) == ["viewed-carted"]
    assert who(store, after_cart, at(DAY) - US) == []
    with pytest.raises(ConfigError, match="steps 1 to 2"):
        who(store, DropOffRule(step=3, steps=steps))


def test_drop_off_ignores_events_after_as_of(store: Store) -> None:
    store.load(log(("a", 0, "view_item"), ("a", 1, "add_to_cart"), ("a", 3 * DAY, "purchase")))
    rule = DropOffRule(step=2, steps=("view_item", "add_to_cart", "purchase"), within="7d")
    assert who(store, rule, at(7 * DAY)) == []  # bought within the 7 days
    # judged before the purchase and after the window: still a drop-off then? no — the
    # window has not passed at day 2, so not yet
    assert who(store, rule, at(2 * DAY)) == []


# -- CLV: the cut -----------------------------------------------------------------------------
def test_clv_top_keeps_ties_at_the_cut_and_filters_on_p_alive(store: Store, monkeypatch) -> None:
    store.load(log(("a", 0, "purchase", order("o1", 1))))
    table = pd.DataFrame(
        {
            "person_id": ["w", "x", "y", "z"],
            "p_alive": [0.9, 0.2, 0.5, 1.0],
            "expected_purchases": 1.0,
            "value": [10.0, 8.0, 8.0, 5.0],
        }
    )
    monkeypatch.setattr(evaluate, "customer_values", lambda *a, **k: table)
    assert who(store, ClvRule(top=2)) == ["w", "x", "y"]
    assert who(store, ClvRule(top_share=0.5)) == ["w", "x", "y"]  # ceil(0.5 × 4) = 2, tie in
    assert who(store, ClvRule(top_share=0.25)) == ["w"]
    assert who(store, ClvRule(min_value=8)) == ["w", "x", "y"]
    assert who(store, ClvRule(p_alive_below=0.5)) == ["x"]
    assert who(store, ClvRule(p_alive_at_least=0.5, top=3)) == ["w", "y"]


# -- combinations -------------------------------------------------------------------------------
def combo_store(store: Store) -> Store:
    store.load(
        log(
            ("cart-buyer", 0, "purchase", order("o1", 10)),
            ("cart-buyer", 10, "add_to_cart"),
            ("cart-only", 0, "add_to_cart"),
            ("buyer-only", 0, "purchase", order("o2", 10)),
            ("visitor", 0, "page_view"),
        )
    )
    return store


def test_all_any_and_not_are_intersection_union_and_complement(store: Store) -> None:
    combo_store(store)
    as_of = at(DAY)
    buyers = OrdersRule()
    assert who(store, AllRule(of=(CARTS, buyers)), as_of) == ["cart-buyer"]
    assert who(store, AnyRule(of=(CARTS, buyers)), as_of) == [
        "buyer-only",
        "cart-buyer",
        "cart-only",
    ]
    assert who(store, NotRule(rule=buyers), as_of) == ["cart-only", "visitor"]
    assert who(store, AllRule(of=(CARTS, NotRule(rule=buyers))), as_of) == ["cart-only"]
    assert who(store, NotRule(rule=AnyRule(of=(CARTS, buyers))), as_of) == ["visitor"]


def test_not_only_counts_persons_seen_by_as_of(store: Store) -> None:
    store.load(log(("early", 0, "page_view"), ("late", 60, "page_view")))
    assert who(store, NotRule(rule=OrdersRule()), at(30)) == ["early"]


def test_combinations_refer_to_audiences_by_name_including_the_model_files(store: Store) -> None:
    combo_store(store)
    model = model_from_dict(
        {
            "audiences": {
                "buyers": {"kind": "orders", "description": "anyone who ordered"},
                "carting-buyers": {"kind": "all", "of": ["abandoned-carts", "buyers"]},
                "not-carting": {"kind": "not", "rule": "abandoned-carts"},
            }
        },
        source="shopfunnel.toml",
    )
    assert who(store, "carting-buyers", at(DAY), model) == ["cart-buyer"]
    assert who(store, "not-carting", at(DAY), model) == ["buyer-only", "visitor"]


def test_an_audience_that_refers_to_itself_is_refused(store: Store) -> None:
    combo_store(store)
    model = model_from_dict(
        {"audiences": {"a": {"kind": "any", "of": ["b"]}, "b": {"kind": "all", "of": ["vip", "a"]}}}
    )
    with pytest.raises(ConfigError, match="refers to itself"):
        who(store, "a", model=model)


# -- definitions ---------------------------------------------------------------------------------
def test_rules_read_from_dicts_say_what_is_wrong_and_where() -> None:
    with pytest.raises(ConfigError, match="kind 'event' is not known"):
        parse_rule({"kind": "event"})
    with pytest.raises(ConfigError, match="x: of.0.after: '4x' is not a duration"):
        parse_rule(
            {
                "kind": "all",
                "of": [{"kind": "abandoned", "did": ["a"], "without": ["b"], "after": "4x"}],
            },
            source="x",
        )
    with pytest.raises(ConfigError, match="groups: RFM group"):
        parse_rule({"kind": "rfm", "groups": ["kings"]})
    with pytest.raises(ConfigError, match="stag: unknown field"):
        parse_rule({"kind": "stage", "stag": "decision"})
    with pytest.raises(ConfigError, match="max_orders \\(1\\) is below min_orders \\(2\\)"):
        parse_rule({"kind": "orders", "min_orders": 2, "max_orders": 1})


def test_a_model_file_audience_cannot_take_a_built_in_name(store: Store) -> None:
    model = model_from_dict({"audiences": {"vip": {"kind": "orders"}}}, source="shop.toml")
    with pytest.raises(ConfigError, match=r"shop.toml: \[audiences.vip\]: 'vip' is a built-in"):
        who(store, "vip", model=model)
