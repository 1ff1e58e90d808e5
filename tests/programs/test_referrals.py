"""Referral programme: attribution by the earliest touch, the ledger's decisions (self-
referral, new customers, minimum spend, cap) and payouts that never pay twice."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.conftest import log

from shopfunnel.errors import ConfigError
from shopfunnel.programs.referrals import (
    ReferralRule,
    import_referral_codes,
    issue_referral_codes,
    pay_referrals,
    record_payouts,
    referral_ledger,
    referral_summary,
)


def ev(
    person, minutes, event="page_view", *, order=None, value=None, page=None, device=None, **props
):
    extra = {"properties": json.dumps(props) if props else None}
    if person.startswith("u:"):
        extra["user_id"] = person[2:]
        person = device or f"dev-{person[2:]}"
    elif device:
        raise ValueError("a device needs a user id")
    if order:
        extra.update(order_id=order, value=value, currency="USD")
    if page:
        extra["page"] = page
    return (person, minutes, event, extra)


def buy(person, minutes, order, value, **props):
    return ev(person, minutes, "purchase", order=order, value=value, **props)


REFERRERS = [buy("u:r1", 0, "or1", 50.0, email="r1@example.com"), buy("u:r2", 0, "or2", 50.0)]


def programme(store, *rows):
    store.load(log(*REFERRERS, *rows))
    import_referral_codes(
        store, pd.DataFrame({"person_id": ["r1", "r2"], "code": ["REF-R1", "REF-R2"]})
    )
    return store


def statuses(store, rule=None) -> dict[str, tuple[str, str]]:
    led = referral_ledger(store, rule)
    return {r.referred_person_id: (r.status, r.reason) for r in led.itertuples()}


def test_a_new_customer_is_attributed_to_the_code_of_their_earliest_touch(store):
    programme(
        store,
        ev("a", 10, referral_code="ref-r1"),  # property, any case
        ev("a", 20, referral_code="REF-R2"),  # later: ignored
        buy("a", 30, "oa", 40.0),
        ev("b", 10, page="https://shop.example/?utm_source=x&referral_code=REF-R2#top"),
        buy("b", 11, "ob", 60.0),
        buy("c", 10, "oc", 70.0, coupon="SPRING10, ref-r1"),
    )  # a referral code as coupon
    led = referral_ledger(store).set_index("referred_person_id")
    assert led["referrer_person_id"].to_dict() == {"a": "r1", "b": "r2", "c": "r1"}
    assert set(led["status"]) == {"payable"} and led.loc["a", "first_order_id"] == "oa"


def test_an_ordinary_coupon_is_not_a_referral_but_an_unknown_referral_code_is_refused(store):
    programme(store, buy("a", 10, "oa", 40.0, coupon="SPRING10"), ev("b", 10, referral_code="NOPE"))
    assert statuses(store) == {"b": ("refused", "unknown code")}


@pytest.mark.parametrize(
    ("rows", "who", "same"),
    [
        # the referrer clicks their own link
        ([ev("u:r1", 10, referral_code="REF-R1")], "r1", "person"),
        # a new account with the referrer's e-mail (compared trimmed, lower-cased)
        (
            [
                ev("x", 10, referral_code="REF-R1", email=" R1@Example.com "),
                buy("x", 20, "ox", 99.0),
            ],
            "x",
            "email",
        ),
        # a new account signed in on the referrer's device
        (
            [ev("u:x", 10, device="dev-r2", referral_code="REF-R2"), buy("u:x", 20, "ox", 99.0)],
            "x",
            "device",
        ),
    ],
)
def test_self_referral_is_refused(store, rows, who, same):
    programme(store, *rows)
    assert statuses(store)[who] == ("refused", f"self-referral (same {same})")


def test_self_referral_by_phone_or_address_is_refused_where_known(store):
    programme(
        store,
        ev("u:r2", 1, phone="+44 20 7946 0000", address="1 High  Street, Leeds"),
        ev("p", 10, referral_code="REF-R2", phone="+44 (20) 7946-0000"),
        ev("q", 10, referral_code="REF-R2", address="1 high street, LEEDS"),
        ev("s", 10, referral_code="REF-R2", phone="12"),
    )  # too short to compare
    s = statuses(store)
    assert s["p"] == ("refused", "self-referral (same phone)")
    assert s["q"] == ("refused", "self-referral (same address)")
    assert s["s"] == ("pending", "no order yet")


def test_only_new_customers_count_pending_until_they_order_and_minimum_spend(store):
    programme(
        store,
        buy("old", 5, "o0", 80.0),
        ev("old", 10, referral_code="REF-R1"),
        buy("old", 20, "o1", 80.0),
        ev("p", 10, referral_code="REF-R1"),
        ev("m", 10, referral_code="REF-R1"),
        buy("m", 20, "om", 24.99),
        ev("n", 10, referral_code="REF-R1"),
        buy("n", 20, "on", 25.0),
    )
    s = statuses(store, ReferralRule(reward=10, min_spend=25))
    assert s["old"] == ("refused", "not a new customer (ordered before the referral)")
    assert s["p"] == ("pending", "no order yet")
    assert s["m"] == ("refused", "below the minimum spend (25)")
    assert s["n"] == ("payable", "")


def test_the_cap_per_referrer_keeps_the_earliest_first_orders(store):
    programme(
        store,
        *[
            row
            for i, at in enumerate([30, 10, 20])
            for row in (ev(f"f{i}", 1, referral_code="REF-R1"), buy(f"f{i}", at, f"of{i}", 30.0))
        ],
    )
    s = statuses(store, ReferralRule(cap_per_referrer=2))
    assert [s[f"f{i}"][0] for i in range(3)] == ["refused", "payable", "payable"]
    assert s["f0"][1] == "cap reached (2 per referrer)"


def test_payouts_pay_each_referral_once_only_for_the_first_order(store):
    programme(
        store,
        ev("a", 1, referral_code="REF-R1"),
        buy("a", 10, "oa1", 40.0),
        buy("a", 20, "oa2", 90.0, referral_code="REF-R1"),
    )
    rule = ReferralRule(reward=7.5, cap_per_referrer=1)
    first = pay_referrals(store, rule)
    assert first[["referred_person_id", "order_id", "reward"]].values.tolist() == [
        ["a", "oa1", 7.5]
    ]
    assert pay_referrals(store, rule).empty  # run again: nothing new
    led = referral_ledger(store, rule).set_index("referred_person_id")
    assert led.loc["a", "status"] == "paid" and led.loc["a", "payout_id"] == first["payout_id"][0]
    with pytest.raises(ConfigError, match="already paid"):
        record_payouts(store, first.assign(payout_id="again"))  # forced: the table refuses it
    assert store.db.scalar("SELECT count(*) FROM program_referral_payouts") == 1
    # a paid referral still counts against the cap after more referrals arrive
    store.load(
        log(ev("b", 30, referral_code="REF-R1"), buy("b", 40, "ob", 99.0)).assign(
            event_id=lambda d: "late" + d["event_id"]
        )
    )
    assert statuses(store, rule)["b"][1] == "cap reached (1 per referrer)"
    summary = referral_summary(store, rule).set_index("referrer_person_id")
    assert summary.loc["r1", ["referrals", "paid", "refused", "rewards_paid"]].tolist() == [
        2,
        1,
        1,
        7.5,
    ]


def test_referral_codes_go_to_customers_once(store):
    store.load(log(buy("u:c1", 0, "o1", 10.0), ev("v", 1)))
    codes = issue_referral_codes(store)
    assert codes["person_id"].tolist() == ["c1"] and codes["code"][0].startswith("REF-")
    assert issue_referral_codes(store)["code"].tolist() == codes["code"].tolist()


def test_the_stored_rule_decides_when_none_is_given_and_the_last_one_set_wins(store):
    from datetime import datetime

    from shopfunnel.programs.referrals import current_referral_rule, set_referral_rule

    programme(store, ev("m", 10, referral_code="REF-R1"), buy("m", 20, "om", 24.99))
    assert current_referral_rule(store) == ReferralRule()  # the default before any is set
    assert statuses(store)["m"] == ("payable", "")
    set_referral_rule(store, ReferralRule(reward=5, min_spend=10), at=datetime(2024, 1, 1))
    set_referral_rule(store, ReferralRule(reward=15, min_spend=25), at=datetime(2024, 2, 1))
    assert current_referral_rule(store) == ReferralRule(reward=15, min_spend=25)
    assert statuses(store)["m"] == ("refused", "below the minimum spend (25)")
    assert statuses(store, ReferralRule(min_spend=0))["m"] == ("payable", "")  # given: it wins


def test_the_rule_command_shows_and_sets_the_rule_and_payouts_use_it(tmp_path):
    from typer.testing import CliRunner

    from shopfunnel.cli import app
    from shopfunnel.store.store import Store

    db = str(tmp_path / "s.duckdb")
    with Store(db) as s:
        programme(s, ev("n", 10, referral_code="REF-R1"), buy("n", 20, "on", 30.0))
    run = CliRunner().invoke
    shown = run(app, ["referral", "rule", "--db", db])
    assert shown.exit_code == 0 and "10 per referred" in shown.output
    set_ = run(app, ["referral", "rule", "--db", db, "--reward", "12.5", "--cap", "3"])
    assert set_.exit_code == 0 and "set: 12.5" in set_.output and "at most 3" in set_.output
    paid = run(app, ["referral", "payouts", "--db", db, "--format", "json"])
    assert paid.exit_code == 0, paid.output
    assert [r["reward"] for r in json.loads(paid.stdout)] == [12.5]
    both = run(app, ["referral", "rule", "--db", db, "--cap", "2", "--no-cap"])
    assert both.exit_code != 0 and "not both" in both.output
