"""Period over period and segment gaps, checked by hand."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from shopfunnel.diagnosis.baselines import period_over_period, segment_gaps
from shopfunnel.diagnosis.session_levels import SessionLevels


def block(prefix: str, start: str, n: int, viewers: int, device: str = "desktop") -> list[dict]:
    rows = []
    t0 = pd.Timestamp(start, tz="UTC")
    for i in range(n):
        ts = t0 + pd.Timedelta(minutes=10 * i)
        base = {"anonymous_id": f"{prefix}{i}", "session_id": f"{prefix}s{i}", "device": device}
        rows.append({"ts": ts, "event": "page_view", **base})
        if i < viewers:
            rows.append({"ts": ts + pd.Timedelta(seconds=5), "event": "view_item", **base})
    return rows


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["event_id"] = [f"e{i}" for i in range(len(df))]
    return df


def test_period_over_period_matches_the_hand_computed_z_test(store):
    # previous 28 days: 100 of 200 sessions view a product; last 28 days: 50 of 200
    store.load(frame(block("p", "2024-01-10", 200, 100) + block("c", "2024-02-10", 200, 50)))
    with SessionLevels(store) as levels:
        table, findings = period_over_period(levels, datetime(2024, 3, 2), 28)
    row = next(r for r in table if r["step"] == "product view")
    # pooled p = 150/400 = .375, se = sqrt(.375·.625·(1/200+1/200)) = .0484123, z = -.25/.0484123 = -5.16398
    assert row["value"] == 0.25 and row["reference"] == 0.5
    assert row["p_value"] == pytest.approx(2.417e-7, rel=1e-3)
    (f,) = [f for f in findings if f["kind"] == "period_change"]
    assert f["units_lost"] == pytest.approx(200 * 0.25)
    assert f["ci_low"] < -0.25 < f["ci_high"] < 0


def test_equal_periods_give_no_finding(store):
    store.load(frame(block("p", "2024-01-10", 200, 100) + block("c", "2024-02-10", 200, 98)))
    with SessionLevels(store) as levels:
        _, findings = period_over_period(levels, datetime(2024, 3, 2), 28)
    assert findings == []


def test_traffic_halving_is_a_traffic_change_finding(store):
    store.load(frame(block("p", "2024-01-10", 200, 100) + block("c", "2024-02-10", 100, 50)))
    with SessionLevels(store) as levels:
        table, findings = period_over_period(levels, datetime(2024, 3, 2), 28)
    assert [f["kind"] for f in findings] == ["traffic_change"]
    # exact conditional test: 100 of 300 sessions in the current period under Binomial(300, 1/2)
    from scipy.stats import binomtest

    assert table[0]["p_value"] == pytest.approx(binomtest(100, 300, 0.5).pvalue)


def test_a_device_that_converts_worse_than_the_rest_is_a_segment_gap(store):
    store.load(
        frame(
            block("m", "2024-02-01", 300, 90, "mobile")
            + block("d", "2024-02-01", 300, 150, "desktop")
            + block("t", "2024-02-01", 100, 50, "tablet")
        )
    )
    with SessionLevels(store) as levels:
        rows, findings = segment_gaps(levels, None, None, dims=("device",))
    (f,) = findings
    assert f["segment"] == "device=mobile"
    assert f["value"] == pytest.approx(0.3) and f["reference"] == pytest.approx(200 / 400)
    # 300 mobile sessions × (50% − 30%) = 60 product viewers lost
    assert f["units_lost"] == pytest.approx(60)
    assert f["audience"] == {"stage": "awareness", "status": "stalled", "device": "mobile"}
    # q-values are Benjamini–Hochberg over the three devices' tests
    from shopfunnel.diagnosis.stats import benjamini_hochberg

    assert [r["q_value"] for r in rows] == pytest.approx(
        list(benjamini_hochberg([r["p_value"] for r in rows]))
    )


def test_small_segments_are_not_tested(store):
    store.load(
        frame(
            block("m", "2024-02-01", 10, 0, "mobile")
            + block("d", "2024-02-01", 300, 150, "desktop")
        )
    )
    with SessionLevels(store) as levels:
        rows, findings = segment_gaps(levels, None, None, dims=("device",), min_sessions=30)
    assert rows == [] and findings == []


def orders_log(specs) -> pd.DataFrame:
    """specs: (person, day as 'YYYY-MM-DD')."""
    rows = [
        {
            "ts": pd.Timestamp(day, tz="UTC") + pd.Timedelta(minutes=i),
            "event": "purchase",
            "anonymous_id": p,
            "order_id": f"o{i}",
            "value": 10.0,
        }
        for i, (p, day) in enumerate(specs)
    ]
    return frame(rows)


def test_repeat_order_share_falling_is_a_retention_finding(store):
    from shopfunnel.diagnosis.baselines import repeat_purchases

    specs = [(f"old{i}", "2023-12-01") for i in range(60)]  # earlier customers
    specs += [(f"old{i}", "2024-01-20") for i in range(40)] + [
        (f"new{i}", "2024-01-20") for i in range(20)
    ]  # previous: 40/60
    specs += [(f"old{i}", "2024-02-20") for i in range(40, 50)] + [
        (f"n2{i}", "2024-02-20") for i in range(50)
    ]  # current: 10/60
    store.load(orders_log(specs))
    table, findings = repeat_purchases(store, datetime(2024, 3, 1), 28)
    assert (
        table[0]["current"],
        table[0]["orders"],
        table[0]["previous"],
        table[0]["orders_previous"],
    ) == (10, 60, 40, 60)
    (f,) = findings
    assert f["kind"] == "retention" and f["units_lost"] == pytest.approx(60 * (40 / 60 - 10 / 60))


def test_repeat_order_share_without_a_previous_period_says_why(store):
    from shopfunnel.diagnosis.baselines import repeat_purchases

    store.load(orders_log([("a", "2024-02-20")]))
    table, findings = repeat_purchases(store, datetime(2024, 3, 1), 28)
    assert findings == [] and "needs orders" in table[0]["reason"]
