"""Incident detection: planted incidents are found in the right step, segment and days;
stores without incidents give none.

The fast tests use a small simulator written for the tests (tests/_synthetic.py), whose
rates are constants; the slow ones use the product's sample generator with its planted
incidents, as the issue asks.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from _synthetic import Sim, simulate
from shopfunnel.diagnosis.incidents import IncidentSettings, find_incidents
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.store.store import Store


def incidents_of(sim: Sim, settings: IncidentSettings | None = None):
    store = Store(":memory:")
    store.load(simulate(sim))
    with SessionLevels(store) as levels:
        found = find_incidents(levels, settings)
    store.close()
    return found


def within_a_day(found: date, planted: date) -> bool:
    return abs((found - planted).days) <= 1


SMALL = {"days": 56, "sessions_per_day": 700}


def test_checkout_broken_on_mobile_is_found_on_mobile_at_that_step_and_those_days():
    found = incidents_of(Sim(seed=11, broken=[(20, 3, "mobile", "purchase")], **SMALL))
    assert len(found) == 1
    r = found.iloc[0]
    assert (r["kind"], r["event"], r["segment"]) == ("conversion_drop", "purchase", "device=mobile")
    assert within_a_day(r["start"], date(2024, 1, 21)) and within_a_day(r["end"], date(2024, 1, 23))
    assert r["observed"] == 0 and r["expected"] > 20


def test_a_broken_earlier_step_is_found_at_that_step():
    found = incidents_of(Sim(seed=12, broken=[(30, 2, "desktop", "add_shipping_info")], **SMALL))
    (r,) = found.itertuples()
    assert (r.event, r.segment) == ("add_shipping_info", "device=desktop")
    assert within_a_day(r.start, date(2024, 1, 31)) and within_a_day(r.end, date(2024, 2, 1))


def test_a_payment_outage_of_hours_is_found_on_all_traffic_on_its_day():
    found = incidents_of(Sim(seed=13, outages=[(datetime(2024, 2, 5, 9), 8)], **SMALL))
    (r,) = found.itertuples()
    assert (r.event, r.segment, r.grain) == ("purchase", "all traffic", "hour")
    assert r.start == r.end == date(2024, 2, 5)
    # planted 09:00–17:00; the run is exact to the hour, give or take one at each end
    assert abs((r.start_time - datetime(2024, 2, 5, 9)).total_seconds()) <= 3600
    assert abs((r.end_time - datetime(2024, 2, 5, 17)).total_seconds()) <= 3600


def test_a_traffic_spike_that_does_not_convert_is_found_in_its_campaign():
    found = incidents_of(Sim(seed=14, spikes=[(40, 2, "blast", "Paid Social", 1500)], **SMALL))
    (r,) = found.itertuples()
    assert (r.kind, r.segment) == ("traffic_spike", "campaign=blast")
    assert within_a_day(r.start, date(2024, 2, 10)) and within_a_day(r.end, date(2024, 2, 11))
    assert r.extra_conversion_rate < 0.5 * r.baseline_conversion_rate


@pytest.mark.parametrize("seed", [21, 22])
def test_a_store_without_incidents_has_none(seed):
    assert incidents_of(Sim(seed=seed, **SMALL)).empty


@pytest.mark.parametrize("quality", [0.85, 0.5])
def test_weekends_that_convert_worse_at_every_step_are_not_incidents(quality):
    # at 0.5 every weekend step converts half as well; without the weekday factor the
    # all-traffic product-view rate of some weekends was flagged
    assert incidents_of(Sim(seed=32, days=70, sessions_per_day=1500, weekend_quality=quality)).empty


def test_a_small_store_with_a_handful_of_orders_a_day_has_no_incident():
    # about 80 sessions and 4 orders a day, weekends 30% busier
    assert incidents_of(Sim(seed=23, days=70, sessions_per_day=80)).empty


def test_a_traffic_spike_that_converts_normally_is_not_an_incident():
    found = incidents_of(
        Sim(seed=24, spikes=[(40, 2, "blast", "Paid Social", 1500)], spike_conversion=1.0, **SMALL)
    )
    assert found.empty


def test_a_stricter_alpha_keeps_a_strong_incident():
    found = incidents_of(
        Sim(seed=11, broken=[(20, 3, "mobile", "purchase")], **SMALL), IncidentSettings(alpha=1e-6)
    )
    assert list(found["segment"]) == ["device=mobile"]


def test_an_empty_window_has_no_incident_and_does_not_fail(store):
    from conftest import log

    store.load(log(("a", 0, "page_view"), ("a", 1, "view_item")))
    with SessionLevels(store) as levels:
        assert find_incidents(levels).empty


# -- the product's sample generator -----------------------------------------------------------
GEN_EVENTS = 500_000


@pytest.fixture(scope="module")
def planted_diagnosis():
    from shopfunnel.diagnosis.diagnose import diagnose
    from shopfunnel.sample import CheckoutFailure, PaymentOutage, TrafficSpike, generate_sample

    incidents = [
        CheckoutFailure("2024-02-10", 3, "mobile", "add_payment_info"),
        PaymentOutage("2024-03-05T10:00", 12),
        TrafficSpike("2024-03-20", 2, "flash_promo", "paid social", 4.0),
    ]
    store = Store(":memory:")
    store.load(generate_sample(GEN_EVENTS, seed=1, incidents=incidents))
    result = diagnose(store, model={})
    store.close()
    return result


@pytest.mark.slow
def test_generator_checkout_failure_on_mobile_is_found(planted_diagnosis):
    inc = planted_diagnosis.incidents
    r = inc[(inc["kind"] == "conversion_drop") & (inc["segment"] == "device=mobile")].iloc[0]
    assert (
        r["event"] == "purchase"
    )  # stopped after add_payment_info: the payment info → purchase step
    assert within_a_day(r["start"], date(2024, 2, 10)) and within_a_day(r["end"], date(2024, 2, 12))


@pytest.mark.slow
def test_generator_payment_outage_is_found_on_all_traffic(planted_diagnosis):
    inc = planted_diagnosis.incidents
    r = inc[(inc["kind"] == "conversion_drop") & (inc["segment"] == "all traffic")].iloc[0]
    assert r["event"] == "purchase"
    assert within_a_day(r["start"], date(2024, 3, 5)) and within_a_day(r["end"], date(2024, 3, 5))


@pytest.mark.slow
def test_generator_traffic_spike_is_found_in_its_campaign(planted_diagnosis):
    inc = planted_diagnosis.incidents
    r = inc[inc["kind"] == "traffic_spike"].iloc[0]
    assert r["campaign"] == "flash_promo"
    assert within_a_day(r["start"], date(2024, 3, 20)) and within_a_day(r["end"], date(2024, 3, 21))


@pytest.mark.slow
def test_generator_incidents_are_exactly_the_three_planted(planted_diagnosis):
    assert len(planted_diagnosis.incidents) == 3
    kinds = planted_diagnosis.findings["kind"].tolist()
    assert kinds.count("incident") == 2 and kinds.count("traffic_spike") == 1
    incident = planted_diagnosis.findings[planted_diagnosis.findings["kind"] == "incident"].iloc[0]
    assert incident["tactics"][0]["key"] == "fix_incident"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_generator_store_without_incidents_has_none(seed):
    from shopfunnel.sample import generate_sample

    store = Store(":memory:")
    store.load(generate_sample(300_000, seed=seed))
    with SessionLevels(store) as levels:
        assert find_incidents(levels).empty
    store.close()


# -- the small pure pieces --------------------------------------------------------------------
def test_windowed_sums_leave_out_the_guard_days():
    import numpy as np

    from shopfunnel.diagnosis.incidents import _windowed

    x = np.arange(1.0, 11.0)[None, :]  # days 0..9 hold 1..10
    w = _windowed(x, 2, 0)
    # day 0: days 0..2 minus day 0 = 2 + 3; day 5: days 3..7 minus day 5 = 4+5+7+8
    assert w[0, 0] == 5 and w[0, 5] == 24 and w[0, 9] == 8 + 9
    assert _windowed(x, 2, 1)[0, 5] == 4 + 8


def test_dispersion_is_one_for_poisson_noise_and_grows_with_extra_noise():
    import numpy as np

    from shopfunnel.diagnosis.incidents import _robust_dispersion

    rng = np.random.default_rng(0)
    mu = np.full((1, 400), 50.0)
    poisson = rng.poisson(mu)
    assert _robust_dispersion(poisson, mu, mu)[0] == pytest.approx(1.0, abs=0.2)
    # counts whose variance is 4× the mean: each day's mean itself varies
    noisy = rng.poisson(rng.gamma(50 / 3, 3, size=(1, 400)))
    assert _robust_dispersion(noisy, mu, mu)[0] == pytest.approx(4.0, rel=0.3)


def test_segments_are_nested_when_one_contains_the_other():
    from shopfunnel.diagnosis.incidents import _nested

    assert _nested(("mobile", None, None), ("mobile", "email", None))
    assert _nested((None, None, None), ("desktop", None, "x"))
    assert not _nested(("mobile", None, None), ("desktop", None, None))
    assert not _nested(("mobile", "email", None), ("mobile", "direct", None))
