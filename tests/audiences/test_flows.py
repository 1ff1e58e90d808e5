"""Flows on tiny stores: timing at the edges, exit on purchase, once per trigger, cooldown and
re-entry, browse vs cart abandonment, post-purchase, win-back, what was left behind, holdouts."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from tests.conftest import T0, log

from shopfunnel.audiences.flow_definitions import Flow, all_flows, get_flow
from shopfunnel.audiences.flows import DUE_COLUMNS, due_now, flow_table, run_flow, sends
from shopfunnel.errors import ConfigError
from shopfunnel.experiments import in_holdout
from shopfunnel.model import Model, model_from_dict
from shopfunnel.store.store import Store

MODEL = Model()
US = pd.Timedelta(microseconds=1)
HOUR, DAY = 60, 24 * 60


def at(minutes: float) -> pd.Timestamp:
    return pd.Timestamp(T0).tz_localize(None) + pd.Timedelta(minutes=minutes)


def due(store: Store, flow: str | Flow, now: pd.Timestamp, model: Model = MODEL) -> list[str]:
    return list(due_now(store, flow, now=now, model=model).due["person_id"])


def sent(store: Store, flow: str | Flow, now: pd.Timestamp, model: Model = MODEL) -> list[str]:
    return list(run_flow(store, flow, now=now, model=model).due["person_id"])


def item(item_id: str, price: float, quantity: int = 1, category: str = "x") -> list[dict]:
    return [
        {
            "item_id": item_id,
            "item_name": item_id.title(),
            "item_category": category,
            "price": price,
            "quantity": quantity,
        }
    ]


def buy(order_id: str, value: float = 10.0) -> dict:
    return {"order_id": order_id, "value": value}


# -- cart abandonment ----------------------------------------------------------------------------
def test_cart_abandonment_is_due_at_exactly_four_hours_and_not_a_microsecond_before(
    store: Store,
) -> None:
    store.load(log(("a", 0, "add_to_cart")))
    assert due(store, "cart-abandonment", at(4 * HOUR) - US) == []
    assert due(store, "cart-abandonment", at(4 * HOUR)) == ["a"]


def test_beginning_checkout_triggers_cart_abandonment_too(store: Store) -> None:
    store.load(log(("a", 0, "begin_checkout")))
    run = due_now(store, "cart-abandonment", now=at(5 * HOUR), model=MODEL)
    assert list(run.due["trigger_event"]) == ["begin_checkout"]
    assert list(run.due["due_at"]) == [at(4 * HOUR)]


def test_a_purchase_exits_the_flow_before_or_after_it_fell_due(store: Store) -> None:
    store.load(
        log(
            ("bought-in-time", 0, "add_to_cart"),
            ("bought-in-time", 2 * HOUR, "purchase", buy("o1")),
            ("bought-late", 0, "add_to_cart"),
            ("bought-late", 5 * HOUR, "purchase", buy("o2")),
            ("same-instant", 0, "add_to_cart"),
            ("same-instant", 0, "purchase", buy("o3")),
            ("never", 0, "add_to_cart"),
        )
    )
    run = due_now(store, "cart-abandonment", now=at(6 * HOUR), model=MODEL)
    assert list(run.due["person_id"]) == ["never"]
    assert run.counts["exited"] == 3
    # judged before the late purchase, bought-late was due
    assert due(store, "cart-abandonment", at(5 * HOUR) - US) == ["bought-late", "never"]


def test_a_flow_is_sent_once_per_trigger_and_a_dry_run_marks_nothing(store: Store) -> None:
    store.load(log(("a", 0, "add_to_cart")))
    assert due(store, "cart-abandonment", at(5 * HOUR)) == ["a"]
    assert sends(store).empty
    assert sent(store, "cart-abandonment", at(5 * HOUR)) == ["a"]
    again = run_flow(store, "cart-abandonment", now=at(6 * HOUR), model=MODEL)
    assert again.due.empty and again.counts["already_sent"] == 1
    record = sends(store, "cart-abandonment")
    text = f"cart-abandonment\x1fa\x1f{at(0).isoformat()}"
    assert list(record["send_id"]) == ["s" + hashlib.sha256(text.encode()).hexdigest()[:32]]
    assert list(record["sent_at"]) == [at(5 * HOUR)] and list(record["due_at"]) == [at(4 * HOUR)]


def test_cooldown_skips_a_trigger_due_within_seven_days_of_the_last_send_for_good(
    store: Store,
) -> None:
    store.load(log(("a", 0, "add_to_cart"), ("a", 1 * DAY, "add_to_cart")))
    assert sent(store, "cart-abandonment", at(5 * HOUR)) == ["a"]  # sent at 5h
    run = due_now(store, "cart-abandonment", now=at(DAY + 5 * HOUR), model=MODEL)
    assert run.due.empty and run.counts["cooling_down"] == 1
    # still skipped once the cooldown is over: that cart fell due inside it
    assert due(store, "cart-abandonment", at(7 * DAY + 6 * HOUR)) == []


def test_a_new_trigger_due_exactly_when_the_cooldown_ends_is_sent(store: Store) -> None:
    # sent at 5h; a cart at 7d + 1h is due at 7d + 5h, exactly 7 days after the send
    store.load(
        log(
            ("a", 0, "add_to_cart"),
            ("a", 7 * DAY + HOUR, "add_to_cart"),
            ("b", 0, "add_to_cart"),
            ("b", 7 * DAY + HOUR - 1e-6 / 60, "add_to_cart"),
        )
    )
    assert sent(store, "cart-abandonment", at(5 * HOUR)) == ["a", "b"]
    run = run_flow(store, "cart-abandonment", now=at(8 * DAY), model=MODEL)
    assert list(run.due["person_id"]) == ["a"]  # b's second cart fell due a microsecond early
    assert run.counts["cooling_down"] == 1
    assert len(sends(store, "cart-abandonment")) == 3


def test_a_trigger_older_than_the_lookback_has_expired(store: Store) -> None:
    store.load(log(("a", 0, "add_to_cart")))
    assert due(store, "cart-abandonment", at(7 * DAY)) == ["a"]
    assert due(store, "cart-abandonment", at(7 * DAY) + US) == []


# -- browse vs cart -----------------------------------------------------------------------------
def test_browse_abandonment_takes_viewers_who_did_not_cart_and_cart_abandonment_the_others(
    store: Store,
) -> None:
    store.load(
        log(
            ("viewer", 0, "view_item", {"items": item("hat", 20.0)}),
            ("carter", 0, "view_item", {"items": item("shoe", 50.0)}),
            ("carter", 10, "add_to_cart", {"items": item("shoe", 50.0)}),
            ("checkout", 0, "view_item"),
            ("checkout", 5, "begin_checkout"),
        )
    )
    now = at(5 * HOUR)
    assert due(store, "browse-abandonment", now) == ["viewer"]
    assert sorted(due(store, "cart-abandonment", now)) == ["carter", "checkout"]


def test_due_rows_say_what_was_left_behind(store: Store) -> None:
    store.load(
        log(
            (
                "a",
                0,
                "purchase",
                {**buy("old"), "items": item("mug", 9.0)},
            ),  # before: not in the cart
            ("a", 10, "view_item", {"items": item("shoe", 50.0, category="shoes")}),
            ("a", 11, "add_to_cart", {"items": item("shoe", 50.0)}),
            ("a", 12, "add_to_cart", {"items": item("sock", 5.0, 2)}),
            ("a", 13, "remove_from_cart", {"items": item("sock", 5.0, 1)}),
            ("a", 14, "view_item", {"items": item("belt", 30.0, category="belts")}),
        )
    )
    row = due_now(store, "cart-abandonment", now=at(6 * HOUR), model=MODEL).due.iloc[0]
    assert row["cart_items"] == "Shoe, Sock" and row["cart_value"] == 55.0
    assert (row["last_viewed_item"], row["last_viewed_category"]) == ("Belt", "belts")
    assert row["last_viewed_at"] == at(14)


def test_contacts_come_only_when_asked(store: Store) -> None:
    props = json.dumps({"email": "ann@example.com", "phone": "+44 20 7946 0958"})
    store.load(log(("a", 0, "page_view", {"properties": props}), ("a", 1, "add_to_cart")))
    plain = due_now(store, "cart-abandonment", now=at(5 * HOUR), model=MODEL).due
    assert list(plain.columns) == DUE_COLUMNS
    assert "ann@example.com" not in plain.to_csv()
    asked = due_now(store, "cart-abandonment", now=at(5 * HOUR), model=MODEL, contacts=True).due
    assert list(asked[["email", "phone"]].iloc[0]) == ["ann@example.com", "+44 20 7946 0958"]


# -- post-purchase and win-back ------------------------------------------------------------------
def test_post_purchase_is_due_a_week_after_an_order_unless_it_was_refunded(store: Store) -> None:
    store.load(
        log(
            ("kept", 0, "purchase", buy("o1")),
            ("refunded", 0, "purchase", buy("o2")),
            ("refunded", 3 * DAY, "refund", buy("o2")),
        )
    )
    assert due(store, "post-purchase", at(7 * DAY) - US) == []
    assert due(store, "post-purchase", at(7 * DAY)) == ["kept"]


def test_win_back_is_due_strictly_past_the_usual_gap(store: Store) -> None:
    # fewer than 20 gaps in the store: the usual gap of a one-order customer is 90 days
    store.load(log(("once", 0, "purchase", buy("o1")), ("clock", 91 * DAY, "page_view")))
    assert due(store, "win-back", at(90 * DAY)) == []
    run = due_now(store, "win-back", now=at(90 * DAY) + US, model=MODEL)
    assert list(run.due["person_id"]) == ["once"]
    assert list(run.due["due_at"]) == [at(90 * DAY)]
    # a new order starts the gap again
    store.load(log(("once", 95 * DAY, "purchase", buy("o2"))).assign(event_id="late"))
    assert due(store, "win-back", at(100 * DAY)) == []


# -- settings -----------------------------------------------------------------------------------
def test_the_model_file_changes_a_built_in_flow_and_adds_new_ones(store: Store) -> None:
    model = model_from_dict(
        {
            "audiences": {"big-spenders": {"kind": "orders", "min_revenue": 100}},
            "flows": {
                "cart-abandonment": {"delay": "1h"},
                "vip-carts": {
                    "trigger": ["add_to_cart"],
                    "exit": ["purchase"],
                    "delay": "30m",
                    "audience": "big-spenders",
                    "cooldown": 0,
                },
            },
        },
        source="shop.toml",
    )
    store.load(
        log(
            ("rich", 0, "purchase", buy("o1", 150.0)),
            ("rich", 10, "add_to_cart"),
            ("poor", 0, "purchase", buy("o2", 20.0)),
            ("poor", 10, "add_to_cart"),
        )
    )
    assert get_flow("cart-abandonment", model).delay == "1h"
    assert get_flow("cart-abandonment", model).source == "builtin"
    assert due(store, "cart-abandonment", at(70), model) == ["poor", "rich"]
    run = due_now(store, "vip-carts", now=at(40), model=model)
    assert list(run.due["person_id"]) == ["rich"] and run.counts["not_in_audience"] == 1
    assert get_flow("vip-carts", model).cooldown is None
    assert [f.name for f in all_flows(model)][-1] == "vip-carts"


def test_a_bad_flow_in_the_model_file_is_named_with_its_field() -> None:
    with pytest.raises(ConfigError, match=r"shop.toml: \[flows.new\]: delay: is required"):
        all_flows(
            model_from_dict({"flows": {"new": {"trigger": ["view_item"]}}}, source="shop.toml")
        )
    with pytest.raises(ConfigError, match="purchase is both a trigger and an exit"):
        all_flows(
            model_from_dict(
                {"flows": {"x": {"trigger": ["purchase"], "exit": ["purchase"], "delay": "1h"}}}
            )
        )
    with pytest.raises(ConfigError, match="delaye: unknown field"):
        all_flows(model_from_dict({"flows": {"cart-abandonment": {"delaye": "1h"}}}))
    with pytest.raises(ConfigError, match="no flow 'carts'"):
        get_flow("carts", MODEL)


def test_a_holdout_is_recorded_but_never_listed(store: Store) -> None:
    people = [f"p{i}" for i in range(40)]
    store.load(log(*[(p, 0, "add_to_cart") for p in people]))
    flow = get_flow("cart-abandonment", MODEL).model_copy(update={"holdout": 0.25})
    run = run_flow(store, flow, now=at(5 * HOUR), model=MODEL)
    held = {p for p in people if in_holdout("flow:cart-abandonment", p, 0.25)}
    assert 0 < len(held) < len(people)
    assert set(run.due["person_id"]) == set(people) - held
    record = sends(store, "cart-abandonment")
    assert set(record[record["held_out"]]["person_id"]) == held
    assert run.counts["held_out"] == len(held)
    # held-out persons count as sent for the trigger: never listed later either
    assert due(store, flow, at(6 * HOUR)) == []


def test_the_flow_table_counts_what_was_sent(store: Store) -> None:
    store.load(log(("a", 0, "add_to_cart"), ("b", 0, "view_item")))
    run_flow(store, "cart-abandonment", now=at(5 * HOUR), model=MODEL)
    table = flow_table(store, MODEL).set_index("name")
    assert table.loc["cart-abandonment", "sent"] == 1
    assert table.loc["browse-abandonment", "sent"] == 0
    assert table.loc["win-back", "delay"] == "usual gap"
