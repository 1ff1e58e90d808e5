"""Checkout journey and correlation analysis on logs whose counts are known."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from shopfunnel.diagnosis.checkout import checkout_counts, checkout_findings
from shopfunnel.diagnosis.correlation import correlation_findings
from shopfunnel.diagnosis.session_levels import SessionLevels

CHAIN = [
    "page_view",
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "add_shipping_info",
    "add_payment_info",
]


def checkout_log(groups) -> pd.DataFrame:
    """groups: (count, buys, payment_failed, checkout_type, shipping_cost, extra_event)."""
    rows, i = [], 0
    for count, buys, failed, ctype, cost, extra in groups:
        for j in range(count):
            t0 = pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(minutes=5 * i)
            base = {"anonymous_id": f"p{i}", "session_id": f"s{i}"}
            for k, ev in enumerate(CHAIN):
                props = None
                if ev == "begin_checkout":
                    props = {"checkout_type": ctype}
                elif ev == "add_shipping_info":
                    props = {"shipping_cost": cost}
                elif ev == "add_payment_info":
                    props = {"payment_failed": failed}
                rows.append(
                    {
                        "ts": t0 + pd.Timedelta(seconds=k),
                        "event": ev,
                        "properties": json.dumps(props) if props else None,
                        **base,
                    }
                )
            if extra:
                rows.append({"ts": t0 + pd.Timedelta(seconds=10), "event": extra, **base})
            if j < buys:
                rows.append(
                    {
                        "ts": t0 + pd.Timedelta(seconds=20),
                        "event": "purchase",
                        "order_id": f"o{i}",
                        "value": 50.0,
                        **base,
                    }
                )
            i += 1
    df = pd.DataFrame(rows)
    df["event_id"] = [f"e{k}" for k in range(len(df))]
    return df


GROUPS = [  # 200 sessions reach payment info; failed payments buy far less
    (40, 10, True, "guest", 0.0, None),
    (160, 140, False, "guest", 0.0, None),
]


def test_checkout_journey_counts_every_step_from_begin_checkout(store):
    store.load(checkout_log(GROUPS))
    with SessionLevels(store) as levels:
        journey, findings, notes = checkout_findings(store, levels)
    allj = journey[journey["device"] == "all"].set_index("step")
    assert allj.loc["checkout", "sessions"] == 200 and allj.loc["purchase", "sessions"] == 150
    assert allj.loc["purchase", "share_of_checkouts"] == pytest.approx(0.75)


def test_a_sessions_checkout_type_is_its_earliest_and_the_counts_group_sessions(store):
    log = checkout_log([(30, 10, False, "guest", 4.5, None), (20, 5, False, "account", 0.0, None)])
    # the guest sessions begin checkout again, later, as account holders
    again = log[(log["event"] == "begin_checkout") & log["properties"].str.contains("guest")].copy()
    again["ts"] += pd.Timedelta(seconds=30)
    again["properties"] = json.dumps({"checkout_type": "account"})
    again["event_id"] = [f"again{k}" for k in range(len(again))]
    store.load(pd.concat([again, log], ignore_index=True))  # the later rows first
    with SessionLevels(store) as levels:
        counts = checkout_counts(store, levels)
    by_type = counts.groupby(["checkout_type", "purchase", "shown_cost"])["sessions"].sum()
    assert by_type.to_dict() == {
        ("account", False, False): 15,
        ("account", True, False): 5,
        ("guest", False, True): 20,
        ("guest", True, True): 10,
    }


def test_failed_payments_that_do_not_buy_are_a_checkout_finding(store):
    store.load(checkout_log(GROUPS))
    with SessionLevels(store) as levels:
        _, findings, _ = checkout_findings(store, levels)
    (f,) = [f for f in findings if f["metric"] == "payment_failed"]
    assert f["value"] == pytest.approx(10 / 40) and f["reference"] == pytest.approx(140 / 160)
    # 40 failed sessions × (87.5% − 25%) = 25 purchases lost
    assert f["units_lost"] == pytest.approx(25)


def test_shipping_cost_and_checkout_type_are_compared_when_the_data_has_them(store):
    store.load(
        checkout_log(
            [(100, 80, False, "guest", 0.0, None), (100, 40, False, "create_account", 5.95, None)]
        )
    )
    with SessionLevels(store) as levels:
        _, findings, notes = checkout_findings(store, levels)
    metrics = {f["metric"]: f for f in findings}
    assert metrics["shipping_cost"]["value"] == pytest.approx(0.4)
    assert metrics["checkout_type"]["segment"] == "checkout_type=create_account"
    assert not [n for n in notes if "not" in n]


def test_without_checkout_properties_the_notes_say_what_is_missing(store):
    df = checkout_log(GROUPS)
    df["properties"] = None
    store.load(df)
    with SessionLevels(store) as levels:
        _, findings, notes = checkout_findings(store, levels)
    assert findings == [] and len(notes) == 3


def test_correlation_odds_ratio_of_a_property_matches_hand_calculation(store):
    store.load(checkout_log(GROUPS))
    with SessionLevels(store) as levels:
        table, findings = correlation_findings(store, levels)
    row = table[(table["step"] == "purchase") & (table["feature"] == "payment_failed=true")].iloc[0]
    # converted with 10, dropped with 30, converted without 140, dropped without 20
    assert (
        row["with_converted"],
        row["with_dropped"],
        row["without_converted"],
        row["without_dropped"],
    ) == (10, 30, 140, 20)
    assert row["odds_ratio"] == pytest.approx(10 * 20 / (30 * 140))
    assert row["method"] == "woolf"
    assert any(f["metric"] == "payment_failed" for f in findings)


def test_correlation_finds_an_event_over_represented_among_droppers(store):
    store.load(
        checkout_log(
            [
                (60, 10, False, "guest", 0.0, "remove_from_cart"),
                (140, 120, False, "guest", 0.0, None),
            ]
        )
    )
    with SessionLevels(store) as levels:
        table, findings = correlation_findings(store, levels)
    (f,) = [f for f in findings if f["metric"] == "remove_from_cart"]
    assert f["step"] == "purchase" and f["value"] == pytest.approx(10 / 60)


def test_properties_of_the_step_itself_never_explain_it(store):
    store.load(
        checkout_log([(100, 80, False, "guest", 0.0, None), (100, 40, False, "guest", 5.95, None)])
    )
    with SessionLevels(store) as levels:
        table, _ = correlation_findings(store, levels)
    # shipping_cost is on add_shipping_info: it may explain payment info and purchase, never shipping info itself
    assert ((table["step"] == "purchase") & (table["key"] == "shipping_cost")).any()
    assert not ((table["step"] == "shipping info") & (table["key"] == "shipping_cost")).any()


def test_checkout_keys_are_left_to_the_checkout_analysis_when_asked(store):
    store.load(checkout_log(GROUPS))
    with SessionLevels(store) as levels:
        _, findings = correlation_findings(store, levels, skip_keys={"payment_failed"})
    assert not [f for f in findings if f["metric"] == "payment_failed"]
