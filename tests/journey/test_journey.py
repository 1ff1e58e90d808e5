"""One person's journey on tiny stores built by hand: identities stitched, sessions with their
channel and device, events in order with products, stage changes, orders, the audiences'
tables when present, experiments and programs."""

from __future__ import annotations

import json

import pytest
from tests.conftest import log
from tests.journey.programs_store import programs_store
from tests.journey.stores import at, shopper_store

from shopfunnel.errors import ConfigError
from shopfunnel.journey import PersonMatch, find_persons, person_journey
from shopfunnel.stages.history import stage_changes, stage_evidence
from shopfunnel.store.store import Store


@pytest.fixture
def ann() -> Store:
    s = shopper_store()
    yield s
    s.close()


def test_every_anonymous_id_seen_with_the_customer_id_is_stitched_to_her(ann) -> None:
    j = person_journey(ann, "u-ann")
    ids = j.identities.set_index("id")
    assert ids["kind"].to_dict() == {
        "u-ann": "customer id",
        "a-phone": "stitched",
        "a-laptop": "stitched",
    }
    # the phone's events before the login count as hers: 4 events, linked at the login
    assert ids.loc["a-phone", "events"] == 4
    assert ids.loc["a-phone", "first_seen"] == at(0)
    assert ids.loc["a-phone", "linked_at"] == at(2880)
    assert ids.loc["a-laptop", "linked_at"] == at(12960)
    assert j.summary["identified"] is True and j.summary["events"] == 7


def test_a_device_shared_with_an_earlier_customer_is_marked_and_not_stitched(store) -> None:
    store.load(
        log(
            ("tablet", 0, "page_view", {"user_id": "u1"}),
            ("tablet", 10, "page_view"),
            ("tablet", 60, "purchase", {"user_id": "u2", "order_id": "o", "value": 5.0}),
        )
    )
    kinds = person_journey(store, "u2").identities.set_index("id")["kind"].to_dict()
    assert kinds == {"u2": "customer id", "tablet": "shared device"}
    assert person_journey(store, "u1").identities.set_index("id").loc["tablet", "events"] == 2


def test_an_anonymous_visitor_has_one_anonymous_identity(ann) -> None:
    j = person_journey(ann, "b")
    assert j.identities[["kind", "id", "events"]].values.tolist() == [["anonymous", "b", 1]]
    assert j.summary["identified"] is False and j.summary["stage"] == "Awareness"


def test_sessions_carry_the_channel_device_and_landing_page_of_their_first_event(ann) -> None:
    s = person_journey(ann, "u-ann").sessions
    assert s["session_id"].tolist() == ["s1", "s2", "s3"]
    assert s["channel"].tolist()[0] == "email" and s["channel"].tolist()[2] == "organic search"
    assert s["device"].tolist() == ["mobile", "mobile", "desktop"]
    assert s["landing_page"].tolist()[0] == "/mugs"
    assert s["events"].tolist() == [2, 2, 3]
    assert s["orders"].tolist() == [0, 1, 1] and s["revenue"].tolist() == [0.0, 25.0, 40.0]
    assert s["started_at"].tolist() == [at(0), at(2880), at(12960)]


def test_events_come_in_time_order_with_their_products_and_values(ann) -> None:
    e = person_journey(ann, "u-ann").events
    assert e["event"].tolist() == [
        "page_view",
        "view_item",
        "add_to_cart",
        "purchase",
        "page_view",
        "purchase",
        "refund",
    ]
    assert e["ts"].is_monotonic_increasing
    assert e["products"].tolist()[1] == "Mug ×2"
    assert e["products"].isna().tolist() == [True, False, False, False, True, True, True]
    assert e["value"].tolist()[3] == 25.0 and e["order_id"].tolist()[5] == "o-2"


def test_the_events_limit_keeps_the_latest_and_says_so(ann) -> None:
    j = person_journey(ann, "u-ann", events_limit=2)
    assert j.events["event"].tolist() == ["purchase", "refund"]
    assert "showing the latest 2 of 7 events" in j.notes
    with pytest.raises(ConfigError, match="events_limit"):
        person_journey(ann, "u-ann", events_limit=0)


def test_orders_have_value_refund_products_and_coupons(ann) -> None:
    j = person_journey(ann, "u-ann")
    o = j.orders
    assert o["order_id"].tolist() == ["o-1", "o-2"]
    assert o["value"].tolist() == [25.0, 40.0] and o["refunded"].tolist() == [0.0, 10.0]
    assert o["products"].fillna("none").tolist() == ["Mug ×2", "none"]
    assert o["coupons"].fillna("none").tolist() == ["none", "SPRING-1"]
    assert o["channel"].tolist() == ["direct", "organic search"]  # the channel of its session
    assert (j.summary["orders"], j.summary["revenue"], j.summary["refunded"]) == (2, 65.0, 10.0)
    assert j.summary["currency"] == "EUR"


def test_an_order_belongs_to_the_person_of_its_first_purchase_event(store) -> None:
    store.load(
        log(
            ("p1", 0, "purchase", {"order_id": "o", "value": 5.0}),
            ("p2", 1, "purchase", {"order_id": "o", "value": 5.0}),
        )
    )
    assert person_journey(store, "p1").orders["order_id"].tolist() == ["o"]
    assert person_journey(store, "p2").orders.empty


def test_stage_changes_follow_her_first_evidence_of_each_stage(ann) -> None:
    j = person_journey(ann, "u-ann")
    assert j.stages["reached_at"].tolist() == [at(0), at(2), at(2880), at(2885), at(12965)]
    assert j.stages["evidence"].tolist() == [
        "page_view",
        "view_item",
        "add_to_cart",
        "purchase",
        "order #2",
    ]
    c = j.stage_changes
    assert c["to_stage"].tolist() == ["Awareness", "Interest", "Decision", "Purchase", "Retention"]
    assert c["from_stage"].tolist() == ["", "Awareness", "Interest", "Decision", "Purchase"]
    assert (c["skipped"] == "").all()
    assert j.summary["stage"] == "Retention"


def test_a_purchase_straight_from_an_email_skips_interest_and_decision(store) -> None:
    store.load(log(("p", 0, "page_view"), ("p", 60, "purchase", {"order_id": "o", "value": 9.0})))
    c = stage_changes(stage_evidence(store, "p"))
    assert c[["from_stage", "to_stage", "skipped"]].values.tolist() == [
        ["", "Awareness", ""],
        ["Awareness", "Purchase", "Interest, Decision"],
    ]


def test_evidence_of_several_stages_at_one_instant_is_one_change(store) -> None:
    store.load(log(("p", 0, "add_to_cart"), ("p", 0, "view_item"), ("p", 5, "view_item")))
    c = stage_changes(stage_evidence(store, "p"))
    assert c[["at", "from_stage", "to_stage", "evidence", "skipped"]].values.tolist() == [
        [at(0), "", "Decision", "add_to_cart", ""]
    ]


def test_a_late_earlier_stage_does_not_move_the_stage_back(store) -> None:
    store.load(log(("p", 0, "add_to_cart"), ("p", 10, "view_item")))
    evidence = stage_evidence(store, "p")
    assert evidence.set_index("stage").loc["Interest", "reached_at"] == at(10)
    c = stage_changes(evidence)
    # the cart at t=0 is evidence of Awareness (any event) and Decision: one change there
    assert c["to_stage"].tolist() == ["Decision"] and c["skipped"].tolist() == ["Interest"]


def test_search_finds_a_person_by_person_customer_or_anonymous_id_or_email(ann) -> None:
    assert find_persons(ann, "u-ann") == [PersonMatch("u-ann", "person id")]
    assert find_persons(ann, "a-laptop") == [PersonMatch("u-ann", "anonymous id")]
    assert find_persons(ann, "ANN@example.com ", by="email") == [PersonMatch("u-ann", "e-mail")]
    assert find_persons(ann, "nobody") == []
    assert find_persons(ann, "nobody@example.com", by="email") == []
    with pytest.raises(ConfigError, match="empty"):
        find_persons(ann, "  ")


def test_contacts_are_there_only_when_asked(ann) -> None:
    assert person_journey(ann, "u-ann").contacts is None
    assert "contacts" not in person_journey(ann, "u-ann").to_dict()
    c = person_journey(ann, "u-ann", contacts=True).contacts
    assert c[["kind", "value"]].values.tolist() == [
        ["email", "Ann@Example.com"],
        ["phone", "+44 20 7946 0000"],
    ]


def test_a_person_the_store_does_not_have_is_refused_with_what_to_do(ann) -> None:
    with pytest.raises(ConfigError, match="no person 'zed'.*--email"):
        person_journey(ann, "zed")


def test_without_the_audience_tables_the_journey_says_so_and_shows_none(ann) -> None:
    j = person_journey(ann, "u-ann")
    assert j.audiences.empty and j.flows.empty
    assert any("audience_members" in n for n in j.notes)


def test_saved_audience_stays_and_flow_messages_are_read_when_the_tables_exist(ann) -> None:
    # the tables as the audiences package creates them (audiences/tables.py)
    ann.db.execute(
        "CREATE TABLE audience_members (entry_id VARCHAR PRIMARY KEY, audience VARCHAR, "
        "person_id VARCHAR, entered_at TIMESTAMP, exited_at TIMESTAMP)"
    )
    ann.db.execute(
        "INSERT INTO audience_members VALUES ('m1', 'carts', 'u-ann', ?, ?), "
        "('m2', 'vip', 'u-ann', ?, NULL), ('m3', 'vip', 'b', ?, NULL)",
        [at(2880), at(2885), at(12965), at(12965)],
    )
    ann.db.execute(
        "CREATE TABLE flow_sends (send_id VARCHAR, flow VARCHAR, person_id VARCHAR, "
        "trigger_event VARCHAR, trigger_at TIMESTAMP, due_at TIMESTAMP, "
        "sent_at TIMESTAMP, held_out BOOLEAN)"
    )
    ann.db.execute(
        "INSERT INTO flow_sends VALUES ('f1', 'cart-reminder', 'u-ann', 'add_to_cart', "
        "?, ?, ?, false)",
        [at(2880), at(3000), at(3001)],
    )
    j = person_journey(ann, "u-ann")
    assert j.audiences[["audience", "member_now"]].values.tolist() == [
        ["carts", False],
        ["vip", True],
    ]
    assert j.flows[["flow", "trigger_event", "held_out"]].values.tolist() == [
        ["cart-reminder", "add_to_cart", False]
    ]
    assert not any("audience_members" in n for n in j.notes)


def test_experiment_exposures_name_the_variant_and_whether_the_person_counts(store) -> None:
    def seen(minutes, experiment, variant, person="p"):
        return (
            person,
            minutes,
            "experiment_exposure",
            {"properties": json.dumps({"experiment": experiment, "variant": variant})},
        )

    store.load(
        log(
            seen(0, "hero", "1"),
            seen(5, "hero", "1"),
            seen(10, "price", "0"),
            seen(20, "price", "1"),
            seen(0, "hero", "0", person="q"),
        )
    )
    x = person_journey(store, "p").experiments.set_index("experiment")
    assert x.loc["hero", ["variant", "exposures", "counted"]].tolist() == ["1", 2, True]
    assert x.loc["price", ["variant", "variants", "counted"]].tolist() == ["0", "0,1", False]


def test_offer_codes_referrals_and_draws_show_from_the_persons_side() -> None:
    with programs_store(":memory:") as store:
        f = person_journey(store, "f")
        assert f.codes[["offer", "code", "status", "order_id"]].values.tolist() == [
            ["spring", "OFF-F", "used", "of"]
        ]
        # g never used the code, and the offer's week is long past
        assert person_journey(store, "g").codes["status"].tolist() == ["expired"]
        assert f.referrals[["role", "referrer_person_id", "status"]].values.tolist() == [
            ["referred", "r", "payable"]
        ]
        r = person_journey(store, "r").referrals
        assert r[["role", "referred_person_id"]].values.tolist() == [["referrer", "f"]]
        draws = {p: person_journey(store, p).draws for p in ("f", "g", "r")}
        assert all(d["draw"].tolist() == ["spring-draw"] for d in draws.values())
        assert sorted(d["winner_rank"].notna().sum() for d in draws.values()) == [0, 0, 1]


def test_the_journey_is_json_ready(ann) -> None:
    data = json.loads(json.dumps(person_journey(ann, "u-ann", contacts=True).to_dict()))
    assert data["summary"]["first_seen"] == "2024-03-01T12:00:00"
    assert [e["event"] for e in data["events"]][:2] == ["page_view", "view_item"]
    assert {
        "identities",
        "contacts",
        "sessions",
        "stage_changes",
        "orders",
        "audiences",
        "flows",
        "experiments",
        "codes",
        "referrals",
        "draws",
        "stages",
    } <= set(data)
