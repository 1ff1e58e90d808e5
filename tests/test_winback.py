"""Lapsed customers: past their own usual gap, or unlikely to be alive."""

from __future__ import annotations

import pandas as pd
import pytest

from shopfunnel.customers.winback import lapsed_customers
from shopfunnel.errors import ConfigError
from shopfunnel.ingest.datasets import cdnow_orders


def book(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"person_id": p, "order_id": f"o{i}", "ts": pd.Timestamp(day), "value": v}
            for i, (p, day, v) in enumerate(rows)
        ]
    )


BOOK = book(
    ("a", "2024-01-01", 10.0),
    ("a", "2024-02-01", 10.0),
    ("a", "2024-03-02", 10.0),
    ("b", "2024-06-01", 50.0),
    ("b", "2024-06-21", 50.0),
    ("c", "2024-06-29", 5.0),
    ("d", "2024-04-01", 80.0),
    ("e", "2024-05-01", 1.0),
    ("e", "2024-05-01", 2.0),
)


def test_customers_past_their_usual_gap_are_lapsed():
    lapsed = lapsed_customers(BOOK, as_of="2024-06-30").set_index("person_id")
    # Gaps between orders: a 31, 30; b 20; e 0 -> 4 gaps, fewer than 20, so the store's
    # usual gap is the 90-day default. a has 3 orders: own gap 61/2 = 30.5 d x -ln(0.2)
    # = 49.09 d, silent 120 d -> lapsed. b silent 9 d, c 1 d, e 60 d -> not; d silent
    # exactly 90 d -> not (strictly more is needed).
    assert list(lapsed.index) == ["a"]
    assert lapsed.loc["a", "expected_gap_days"] == pytest.approx(30.5 * 1.6094379)
    assert lapsed.loc["a", "days_since_last_order"] == pytest.approx(120.0)
    assert lapsed.loc["a", "overdue_ratio"] == pytest.approx(120 / (30.5 * 1.6094379))
    assert lapsed.loc["a", "gap_source"] == "own"


def test_a_smaller_multiplier_is_stricter_and_a_larger_one_forgives_more():
    strict = lapsed_customers(BOOK, as_of="2024-06-30", gap_multiplier=0.5).set_index("person_id")
    # thresholds: a 24.5 d, others 45 d: d (90 d) and e (60 d) join; by revenue 80, 30, 3
    assert list(strict.index) == ["d", "a", "e"]
    assert strict.loc["d", "gap_source"] == "store"
    assert strict.loc["d", "expected_gap_days"] == pytest.approx(90.0)
    assert (strict.loc["e", "orders"], strict.loc["e", "revenue"]) == (2, 3.0)
    assert lapsed_customers(BOOK, as_of="2024-06-30", gap_multiplier=2.5).empty


def test_the_win_back_list_is_the_stage_models_lapsed_customers():
    from conftest import log
    from shopfunnel.stages.placement import place_persons
    from shopfunnel.store.store import Store

    rows = []
    for i in range(30):  # 30 customers, gaps of 1..30 days, silent for 14..44 days
        rows.append((f"p{i}", 0, "purchase", {"order_id": f"a{i}", "value": 10.0 + i}))
        rows.append((f"p{i}", (i + 1) * 1440, "purchase", {"order_id": f"b{i}", "value": 5.0}))
    rows.append(("late", 45 * 1440, "page_view"))
    with Store(":memory:") as store:
        store.load(log(*rows))
        placed = place_persons(store)
        as_of = store.db.scalar("SELECT max(ts) FROM events")
        winback = lapsed_customers(store.table("orders"), as_of=as_of)
    customers = placed[placed["orders"] > 0].set_index("person_id")["status"]
    slipped = customers[customers.isin(["lapsed", "gone"])]
    assert set(slipped) == {"lapsed", "gone"}  # both kinds are in this store
    assert dict(zip(winback["person_id"], winback["status"], strict=True)) == slipped.to_dict()


def test_one_time_buyers_are_judged_against_the_default_gap_when_few_customers_repeat():
    lapsed = lapsed_customers(
        book(("x", "2024-01-01", 1.0), ("y", "2024-10-15", 1.0)), as_of="2024-12-31"
    )
    assert lapsed["person_id"].tolist() == ["x"]  # x silent 365 d > 90 d; y 77 d
    assert lapsed["expected_gap_days"].tolist() == [90.0]


def test_p_alive_rule_lists_repeat_buyers_below_the_threshold():
    lapsed = lapsed_customers(cdnow_orders("sample"), rule="p_alive", p_alive_below=0.3)
    assert len(lapsed) > 0
    assert (lapsed["p_alive"] < 0.3).all()
    assert (lapsed["orders"] >= 2).all()
    assert lapsed["revenue"].is_monotonic_decreasing
    looser = lapsed_customers(cdnow_orders("sample"), rule="p_alive", p_alive_below=0.6)
    assert set(lapsed["person_id"]) < set(looser["person_id"])


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="rule"):
        lapsed_customers(BOOK, rule="churn")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="gap_multiplier"):
        lapsed_customers(BOOK, gap_multiplier=0)
    with pytest.raises(ConfigError, match="p_alive_below"):
        lapsed_customers(BOOK, rule="p_alive", p_alive_below=1.5)
