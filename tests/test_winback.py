"""Lapsed customers: past their own usual gap, or unlikely to be alive."""

from __future__ import annotations

import pandas as pd
import pytest

from shopfunnel.datasets import cdnow_orders
from shopfunnel.errors import ConfigError
from shopfunnel.winback import lapsed_customers


def book(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame([
        {"person_id": p, "order_id": f"o{i}", "ts": pd.Timestamp(day), "value": v}
        for i, (p, day, v) in enumerate(rows)
    ])


BOOK = book(
    ("a", "2024-01-01", 10.0), ("a", "2024-02-01", 10.0), ("a", "2024-03-02", 10.0),
    ("b", "2024-06-01", 50.0), ("b", "2024-06-21", 50.0),
    ("c", "2024-06-29", 5.0),
    ("d", "2024-04-01", 80.0),
    ("e", "2024-05-01", 1.0), ("e", "2024-05-01", 2.0),
)


def test_customers_past_one_and_a_half_times_their_usual_gap_are_lapsed():
    lapsed = lapsed_customers(BOOK, as_of="2024-06-30").set_index("person_id")
    # a: own gap (Mar 2 − Jan 1) / 2 = 30.5 d, silent 120 d → lapsed.
    # b: own gap 20 d, silent 9 d → not. Store median gap of [31, 30, 20] = 30 d:
    # c silent 1 d → not; d silent 90 d > 45 → lapsed; e (two orders on one day = one
    # purchase day) silent 60 d > 45 → lapsed.
    assert list(lapsed.index) == ["d", "a", "e"]  # by revenue: 80, 30, 3
    assert lapsed.loc["a", "expected_gap_days"] == pytest.approx(30.5)
    assert lapsed.loc["a", "days_since_last_order"] == pytest.approx(120.0)
    assert lapsed.loc["a", "overdue_ratio"] == pytest.approx(120 / 30.5)
    assert lapsed.loc["a", "gap_source"] == "own"
    assert lapsed.loc["d", "gap_source"] == "store_median"
    assert lapsed.loc["d", "expected_gap_days"] == pytest.approx(30.0)
    assert (lapsed.loc["e", "orders"], lapsed.loc["e", "revenue"]) == (2, 3.0)


def test_a_larger_multiplier_forgives_more():
    lapsed = lapsed_customers(BOOK, as_of="2024-06-30", gap_multiplier=2.5)
    assert set(lapsed["person_id"]) == {"a", "d"}  # e: 60 d < 2.5 × 30 = 75 d


def test_one_time_buyers_cannot_be_judged_when_nobody_bought_twice():
    lapsed = lapsed_customers(book(("x", "2024-01-01", 1.0), ("y", "2024-02-01", 1.0)),
                              as_of="2024-12-31")
    assert lapsed.empty


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
