"""Benchmarks: defaults with sources, overrides, and the comparison rule."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from shopfunnel.diagnosis.benchmarks import compare_with_benchmarks, load_benchmarks
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.diagnosis.stats import wilson_interval
from shopfunnel.errors import ConfigError


def sessions(n: int, buyers: int, viewers: int | None = None) -> pd.DataFrame:
    rows = []
    viewers = n if viewers is None else viewers
    for i in range(n):
        ts = pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(minutes=i)
        rows.append(
            {"ts": ts, "event": "page_view", "anonymous_id": f"p{i}", "session_id": f"s{i}"}
        )
        if i < viewers:
            rows.append(
                {
                    "ts": ts + pd.Timedelta(seconds=1),
                    "event": "view_item",
                    "anonymous_id": f"p{i}",
                    "session_id": f"s{i}",
                }
            )
        if i < buyers:
            rows.append(
                {
                    "ts": ts + pd.Timedelta(seconds=2),
                    "event": "add_to_cart",
                    "anonymous_id": f"p{i}",
                    "session_id": f"s{i}",
                }
            )
            rows.append(
                {
                    "ts": ts + pd.Timedelta(seconds=3),
                    "event": "purchase",
                    "anonymous_id": f"p{i}",
                    "session_id": f"s{i}",
                    "order_id": f"o{i}",
                    "value": 80.0,
                }
            )
    df = pd.DataFrame(rows)
    df["event_id"] = [f"e{i}" for i in range(len(df))]
    return df


def test_defaults_carry_the_published_values_and_their_sources():
    b = {x.key: x for x in load_benchmarks({})}
    assert b["product_view_rate"].value == 0.48 and "SaleCycle" in b["product_view_rate"].source
    assert b["add_to_cart_rate"].value == 0.145
    assert b["purchase_rate"].value == 0.033
    assert b["cart_abandonment"].value == 0.7019 and b["cart_abandonment"].direction == "lower"
    assert (
        b["cart_abandonment_mobile"].value == 0.8565
        and b["cart_abandonment_mobile"].device == "mobile"
    )
    assert "Kissmetrics" in b["view_to_cart_rate"].source


def test_a_number_in_the_model_file_replaces_a_value_and_a_table_adds_a_benchmark():
    b = {
        x.key: x
        for x in load_benchmarks(
            {
                "benchmarks": {
                    "purchase_rate": 0.02,
                    "checkout_rate": {
                        "numerator": "checkout",
                        "denominator": "visit",
                        "value": 0.05,
                    },
                }
            }
        )
    }
    assert b["purchase_rate"].value == 0.02 and b["purchase_rate"].source == "shopfunnel.toml"
    assert b["checkout_rate"].value == 0.05


@pytest.mark.parametrize(
    "section", [{"no_such_rate": 0.1}, {"purchase_rate": 3.3}, {"purchase_rate": {"valeu": 0.1}}]
)
def test_a_bad_override_is_a_config_error(section):
    with pytest.raises(ConfigError):
        load_benchmarks({"benchmarks": section})


def test_a_store_clearly_under_the_benchmark_gets_a_finding_with_its_wilson_interval(store):
    store.load(sessions(1000, buyers=10))  # 1.0% buy against 3.3%
    with SessionLevels(store) as levels:
        table, findings = compare_with_benchmarks(levels, load_benchmarks({}))
    row = next(r for r in table if r["key"] == "purchase_rate")
    lo, hi = wilson_interval(10, 1000)
    assert row["value"] == pytest.approx(0.01)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
    assert row["status"] == "worse"
    f = next(f for f in findings if f["metric"] == "purchase_rate")
    # 1000 sessions × (3.3% − 1.0%) = 23 purchases lost; the step is the purchase, downstream 1
    assert f["units_lost"] == pytest.approx(23.0)
    assert f["downstream_rate"] == 1.0


def test_a_store_at_the_benchmark_is_in_line_and_gives_no_finding(store):
    store.load(sessions(1000, buyers=33))
    with SessionLevels(store) as levels:
        table, findings = compare_with_benchmarks(levels, load_benchmarks({}))
    assert next(r for r in table if r["key"] == "purchase_rate")["status"] == "in line"
    assert not [f for f in findings if f["metric"] == "purchase_rate"]


def test_a_small_store_under_the_benchmark_is_not_a_finding_when_the_interval_covers_it(store):
    store.load(sessions(40, buyers=1))  # 2.5%, interval 0.4%–12.9% covers 3.3%
    with SessionLevels(store) as levels:
        _, findings = compare_with_benchmarks(levels, load_benchmarks({}))
    assert not [f for f in findings if f["metric"] == "purchase_rate"]


def test_a_benchmark_on_a_step_the_store_does_not_record_is_not_measurable(store):
    df = sessions(50, buyers=0)
    store.load(df[df["event"] != "view_item"])
    with SessionLevels(store) as levels:
        table, _ = compare_with_benchmarks(levels, load_benchmarks({}))
    row = next(r for r in table if r["key"] == "product_view_rate")
    assert row["status"] == "not measurable" and "product view" in row["reason"]
    assert math.isnan(row["value"])
