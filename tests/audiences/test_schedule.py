"""A scheduled round (what `serve` does on its schedule): only followed audiences are refreshed,
only flows with schedule = true run, and their entries, exits and messages reach the webhook
outbox once each however often the round runs."""

from __future__ import annotations

import orjson
import pandas as pd
from tests.conftest import T0, log

from shopfunnel.audiences.flows import run_flow, sends
from shopfunnel.audiences.membership import refresh_audience, refreshes
from shopfunnel.audiences.schedule import followed_audiences, run_scheduled, scheduled_flows
from shopfunnel.model import Model, model_from_dict
from shopfunnel.store.store import Store
from shopfunnel.webhooks import add_endpoint

HOUR = 60
SCHEDULED = model_from_dict({"flows": {"cart-abandonment": {"schedule": True}}})


def at(minutes: float) -> pd.Timestamp:
    return pd.Timestamp(T0).tz_localize(None) + pd.Timedelta(minutes=minutes)


def outbox(store: Store) -> list[tuple[str, str]]:
    return store.db.rows("SELECT idempotency_key, topic FROM webhook_outbox ORDER BY 1")


def carts(store: Store) -> None:
    """a carts at 0, b at 2h; c only views."""
    store.load(
        log(
            ("a", 0, "add_to_cart"),
            ("b", 2 * HOUR, "add_to_cart"),
            ("c", 0, "view_item"),
        )
    )


def test_a_round_refreshes_only_followed_audiences_and_runs_only_scheduled_flows(
    store: Store,
) -> None:
    carts(store)
    assert followed_audiences(store, SCHEDULED) == []
    assert scheduled_flows(SCHEDULED) == ["cart-abandonment"]
    assert scheduled_flows(Model()) == []  # no built-in flow runs by itself
    refresh_audience(store, "abandoned-carts", as_of=at(30), model=SCHEDULED)  # follow it
    assert followed_audiences(store, SCHEDULED) == ["abandoned-carts"]

    done = run_scheduled(store, now=at(5 * HOUR), model=SCHEDULED)
    assert list(done.refreshed) == ["abandoned-carts"] and done.errors == {}
    assert done.refreshed["abandoned-carts"].entered == 2  # a and b, both over an hour old
    assert list(done.flows) == ["cart-abandonment"]
    assert list(done.flows["cart-abandonment"].due["person_id"]) == ["a"]  # b is due at 6h
    assert done.sent == 1
    assert set(refreshes(store)["audience"]) == {"abandoned-carts"}  # vip etc. untouched


def test_flow_messages_and_audience_changes_reach_the_outbox_once_each(store: Store) -> None:
    carts(store)
    add_endpoint(store, "https://hooks.example.com/in", secret="whsec_schedule_test_0123")
    refresh_audience(store, "abandoned-carts", as_of=at(30), model=SCHEDULED)
    for minutes in (5 * HOUR, 5 * HOUR, 6 * HOUR, 7 * HOUR, 7 * HOUR):
        run_scheduled(store, now=at(minutes), model=SCHEDULED)
    keys = [k for k, _ in outbox(store)]
    flow_keys = [k for k in keys if k.startswith("flow:")]
    assert len(keys) == 4 and len(flow_keys) == 2
    assert sorted(flow_keys) == sorted(
        f"flow:cart-abandonment:{s}" for s in sends(store, "cart-abandonment")["send_id"]
    )
    body = orjson.loads(
        store.db.scalar(
            "SELECT body FROM webhook_outbox WHERE topic = 'flow.due' AND person_id = 'a'"
        )
    )
    assert body["data"]["due_at"] == "2024-03-01T16:00:00.000000Z"
    assert body["data"]["trigger_event"] == "add_to_cart" and "email" not in body["data"]


def test_a_crash_between_the_outbox_and_the_record_sends_nothing_twice(store: Store) -> None:
    carts(store)
    add_endpoint(store, "https://hooks.example.com/in", secret="whsec_schedule_test_0123")
    first = run_flow(store, "cart-abandonment", now=at(7 * HOUR), model=SCHEDULED)
    assert sorted(first.due["person_id"]) == ["a", "b"]
    store.db.execute("DELETE FROM flow_sends")  # as if the run died before recording
    again = run_flow(store, "cart-abandonment", now=at(7 * HOUR), model=SCHEDULED)
    assert sorted(again.due["person_id"]) == ["a", "b"]  # listed again, ...
    assert len(outbox(store)) == 2  # ... but the outbox keeps one message each


def test_a_flow_sends_contacts_to_the_webhook_only_when_it_says_so(store: Store) -> None:
    props = orjson.dumps({"email": "ann@example.com"}).decode()
    store.load(log(("a", 0, "page_view", {"properties": props}), ("a", 1, "add_to_cart")))
    add_endpoint(store, "https://hooks.example.com/in", secret="whsec_schedule_test_0123")
    model = model_from_dict({"flows": {"cart-abandonment": {"contacts": True}}})
    run = run_flow(store, "cart-abandonment", now=at(5 * HOUR), model=model)
    assert "email" not in run.due.columns  # the listing still asks for --contacts
    body = orjson.loads(store.db.scalar("SELECT body FROM webhook_outbox"))
    assert body["data"]["email"] == "ann@example.com"


def test_a_failing_audience_is_reported_and_the_rest_still_runs(store: Store) -> None:
    carts(store)
    refresh_audience(store, "abandoned-carts", as_of=at(6 * HOUR), model=SCHEDULED)
    done = run_scheduled(store, now=at(5 * HOUR), model=SCHEDULED)  # the clock went back
    assert "only moves forward" in done.errors["audience abandoned-carts"]
    assert list(done.flows["cart-abandonment"].due["person_id"]) == ["a"]
