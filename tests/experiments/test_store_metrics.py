"""Experiment metrics read from a tiny hand-made store, checked against hand counts."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from conftest import log
from shopfunnel.errors import ConfigError
from shopfunnel.experiments import metrics as mx
from shopfunnel.experiments.analysis import analyze_experiment
from shopfunnel.experiments.exposures import (
    UNITS_SQL,
    exposure_counts,
    list_experiments,
    units_params,
)
from shopfunnel.experiments.statistics import Adjusted, Mean, Proportion, Ratio

DAY = 24 * 60  # minutes


def exposure(person: str, minutes: float, variant: str, experiment: str = "checkout-v2"):
    props = json.dumps({"experiment": experiment, "variant": variant})
    return (person, minutes, "experiment_exposure", {"properties": props})


def order(person: str, minutes: float, order_id: str, value: float, event: str = "purchase"):
    return (person, minutes, event, {"order_id": order_id, "value": value})


@pytest.fixture
def shop(store):
    store.load(
        log(
            exposure("p1", 0, "0"),
            ("p1", 10, "begin_checkout"),
            order("p1", 20, "o1", 100.0),
            order("p1", 10 * DAY, "o2", 50.0),  # after the 7-day window
            exposure("p2", 0, "1"),
            ("p2", 5, "begin_checkout"),  # never buys
            exposure("p3", 0, "1"),
            order("p3", 30, "o3", 80.0),
            order("p3", 2 * DAY, "o3", 80.0, "refund"),
            exposure("p4", 0, "0"),
            exposure("p4", 60, "1"),
            order("p4", 70, "o4", 500.0),
            order("p5", -DAY, "o5", 40.0),
            exposure("p5", 0, "0"),  # bought only before exposure
            order("p6", 30, "o6", 999.0),  # never exposed
            exposure("q1", 0, "B", experiment="banner"),
        )
    )
    return store


def stats(store, metric, **kw):
    return mx.variant_statistics(store, UNITS_SQL, units_params("checkout-v2"), metric, **kw)


def test_units_are_persons_with_one_variant_from_their_first_exposure(shop) -> None:
    counts, multiple = exposure_counts(shop, "checkout-v2")
    assert dict(zip(counts["variant"], counts["persons"], strict=True)) == {"0": 2, "1": 2}
    assert multiple == 1  # p4 saw both


def test_list_experiments_names_each_with_its_variants(shop) -> None:
    listed = list_experiments(shop).set_index("experiment")
    assert listed.loc["checkout-v2", "variants"] == "0,1"
    assert listed.loc["checkout-v2", "persons"] == 5  # p4 too: exposed, if to both variants
    assert listed.loc["banner", "variants"] == "B"


def test_conversion_counts_events_after_exposure_within_the_window(shop) -> None:
    assert stats(shop, mx.conversion("purchase")) == {"0": Proportion(2, 1), "1": Proportion(2, 1)}


def test_conversion_between_two_steps_counts_persons_who_reached_the_first(shop) -> None:
    got = stats(shop, mx.conversion("purchase", from_event="begin_checkout"))
    assert got == {"0": Proportion(1, 1), "1": Proportion(1, 0)}


def test_revenue_per_visitor_counts_zero_for_non_buyers_and_respects_the_window(shop) -> None:
    assert stats(shop, mx.revenue_per_visitor()) == {
        "0": Mean(2, 100.0, 10_000.0),
        "1": Mean(2, 80.0, 6_400.0),
    }
    unlimited = stats(shop, mx.revenue_per_visitor(), window=None)
    assert unlimited["0"] == Mean(2, 150.0, 150.0**2)


def test_cuped_reads_the_same_metric_before_exposure(shop) -> None:
    got = stats(shop, mx.revenue_per_visitor(), cuped_days=28)
    assert got["0"] == Adjusted(Mean(2, 100.0, 10_000.0), Mean(2, 40.0, 1_600.0), 0.0)
    assert got["1"] == Adjusted(Mean(2, 80.0, 6_400.0), Mean(2, 0.0, 0.0), 0.0)
    short = stats(shop, mx.revenue_per_visitor(), cuped_days=0.5)  # p5's order is 1 day before
    assert short["0"].pre == Mean(2, 0.0, 0.0)


def test_average_order_value_is_a_ratio_of_revenue_to_orders(shop) -> None:
    got = stats(shop, mx.average_order_value())
    assert got["0"] == Ratio(2, Mean(2, 100.0, 10_000.0), Mean(2, 1.0, 1.0), 100.0)
    assert got["0"].mean == 100.0


def test_refund_rate_is_refunded_orders_over_orders(shop) -> None:
    got = stats(shop, mx.refund_rate())
    assert got["1"] == Ratio(2, Mean(2, 1.0, 1.0), Mean(2, 1.0, 1.0), 1.0)
    assert got["0"].mean == 0.0


def test_retention_is_ordering_again_within_n_days_of_the_first_order(shop) -> None:
    assert stats(shop, mx.retention(30)) == {"0": Proportion(1, 1), "1": Proportion(1, 0)}
    assert stats(shop, mx.retention(5)) == {"0": Proportion(1, 0), "1": Proportion(1, 0)}


def test_analyze_experiment_compares_each_metric_and_refuses_thin_data(shop) -> None:
    report = analyze_experiment(shop, "checkout-v2", min_units=2)
    assert report.control == "0" and report.multiple_exposures == 1
    assert not report.srm.mismatch
    rows = report.results.set_index("metric")
    assert set(rows.index) == {
        "purchase",
        "begin_checkout → purchase",
        "revenue_per_visitor",
        "average_order_value",
        "refund_rate",
    }
    rpv = rows.loc["revenue_per_visitor"]
    assert rpv["expected"] == pytest.approx(-0.2) and pd.isna(rpv["error"])
    # one person in control reached checkout: no result, but the reason
    assert rows.loc["begin_checkout → purchase", "error"].startswith(
        "minimum sample: control has 1 units"
    )
    assert math.isnan(rows.loc["begin_checkout → purchase", "p_value"])


def test_unknown_experiment_and_control_are_refused_with_what_exists(shop) -> None:
    with pytest.raises(ConfigError, match="experiment list"):
        analyze_experiment(shop, "nope")
    with pytest.raises(ConfigError, match="'0', '1'"):
        analyze_experiment(shop, "checkout-v2", control="A")


def test_cuped_on_a_metric_that_cannot_take_it_is_refused(shop) -> None:
    with pytest.raises(ConfigError, match="CUPED"):
        stats(shop, mx.average_order_value(), cuped_days=28)
