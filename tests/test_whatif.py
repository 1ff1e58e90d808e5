"""What-if on real orders, checked against hand calculation."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from shopfunnel.diagnosis.whatif import Tier, free_shipping, parse_tiers, tiered_discount
from shopfunnel.errors import ConfigError


def orders(values, shipping=None) -> pd.DataFrame:
    rows = []
    for i, v in enumerate(values):
        props = None if shipping is None else json.dumps({"shipping": shipping[i]})
        rows.append(
            {
                "event_id": f"e{i}",
                "ts": pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(hours=i),
                "event": "purchase",
                "anonymous_id": f"p{i}",
                "order_id": f"o{i}",
                "value": v,
                "properties": props,
            }
        )
    return pd.DataFrame(rows)


def test_tiers_parse_from_threshold_and_percent():
    assert parse_tiers("300:10, 100:5") == [Tier(100, 0.05), Tier(300, 0.10)]
    with pytest.raises(ConfigError, match="THRESHOLD:PERCENT"):
        parse_tiers("100-5")
    with pytest.raises(ConfigError):
        parse_tiers("100:150")


def test_tiered_discount_on_past_orders_matches_hand_calculation(store):
    store.load(orders([50, 90, 100, 150, 300, 310]))
    w = tiered_discount(store, parse_tiers("100:5,300:10"), gross_margin=0.4)
    s = w.summary
    # 100 and 150 get 5% (5 + 7.5), 300 and 310 get 10% (30 + 31): cost 73.5 on revenue 1000
    assert s["orders"] == 6 and s["orders_affected"] == 4
    assert s["share_affected"] == pytest.approx(4 / 6)
    assert s["cost"] == pytest.approx(73.5)
    assert s["cost_share_of_revenue"] == pytest.approx(0.0735)
    # profit 0.4·1000 = 400 → 326.5 at the same orders; uplift 73.5 / 326.5
    assert s["breakeven_uplift"] == pytest.approx(73.5 / 326.5)
    assert s["breakeven_extra_orders"] == pytest.approx(6 * 73.5 / 326.5)
    t = w.tiers.set_index("threshold")
    # within 20% below 100: the 90 order (10 short); below 300: none in [240, 300)
    assert t.loc[100, "orders_within_reach"] == 1 and t.loc[100, "mean_top_up"] == pytest.approx(10)
    assert t.loc[300, "orders_within_reach"] == 0 and math.isnan(t.loc[300, "mean_top_up"])


def test_a_discount_larger_than_the_margin_cannot_break_even(store):
    store.load(orders([200, 200]))
    w = tiered_discount(store, [Tier(100, 0.5)], gross_margin=0.3)
    assert math.isnan(w.summary["breakeven_uplift"]) and w.notes


def test_free_shipping_uses_the_shipping_each_order_paid(store):
    store.load(orders([40, 60, 80, 120], shipping=[5.95, 5.95, 5.95, 0]))
    w = free_shipping(store, 75)
    s = w.summary
    # orders of 75 or more: 80 (paid 5.95) and 120 (paid 0): cost 5.95
    assert s["orders_affected"] == 2 and s["cost"] == pytest.approx(5.95)
    assert s["breakeven_uplift"] == pytest.approx(5.95 / (300 - 5.95))
    assert w.tiers.loc[0, "orders_within_reach"] == 1  # the 60 order, within 20% below 75
    assert w.tiers.loc[0, "mean_top_up"] == pytest.approx(15)


def test_free_shipping_without_recorded_shipping_needs_a_fee(store):
    store.load(orders([40, 80]))
    with pytest.raises(ConfigError, match="shipping-fee"):
        free_shipping(store, 75)
    assert free_shipping(store, 75, shipping_fee=4.0).summary["cost"] == pytest.approx(4.0)
