"""The whole diagnosis dates incidents of any length, on one device or on all, at 10 and at
1,000 sessions a day, on stores shopfunnel did not generate (tests/_foreign_store.py: GA4
names, no order values, 180 days from 2024-01-01).

Both scans run: the run scan (hours to 14 days, ADR 0060) and the lasting scan (the whole
series, ADR 0064/0067). Each planted incident must be reported once, on its step and
segment, with its dates (±3 days at 10 sessions a day, tighter at 1,000), and nothing else.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from _foreign_store import ForeignStore, Planted
from shopfunnel.diagnosis.diagnose import diagnose
from shopfunnel.store.store import Store


def incidents(spec: ForeignStore):
    with Store(":memory:") as store:
        store.load(spec.events())
        found = diagnose(store).incidents
    return found[found["kind"] == "conversion_drop"].reset_index(drop=True)


def one_for(found, planted: Planted):
    rows = found[found["event"] == planted.into]
    rows = (
        rows[rows["device"].isna()]
        if planted.device is None
        else rows[rows["device"] == planted.device]
    )
    rows = rows[(rows["start"] <= planted.finish.date()) & (rows["end"] >= planted.start)]
    assert len(rows) == 1, found[["event", "segment", "start", "end", "grain"]]
    return rows.iloc[0]


def assert_dated(found, planted: Planted, days: int) -> None:
    row = one_for(found, planted)
    last_day = (planted.finish - timedelta(seconds=1)).date()
    assert abs((row["start"] - planted.start).days) <= days, row
    assert abs((row["end"] - last_day).days) <= days, row
    assert not row["ongoing"]


# -- 10 sessions a day: about two sessions a day reach payment, one of them on mobile -----------
TEN_DAY_OUTAGE = Planted("purchase", date(2024, 5, 6), 10, 0.0)
MOBILE_MONTH = Planted("purchase", date(2024, 4, 1), 30, 0.1, "mobile")


@pytest.mark.parametrize("seed", [1, 2])  # a week is found in 7 stores of 10 (docs/diagnosis.md)
def test_at_ten_sessions_a_day_ten_days_without_payments_on_every_device_are_dated(seed) -> None:
    found = incidents(ForeignStore(sessions_per_day=10, seed=seed, planted=[TEN_DAY_OUTAGE]))
    assert_dated(found, TEN_DAY_OUTAGE, days=3)
    assert len(found) == 1


def test_at_ten_sessions_a_day_a_month_of_failing_mobile_payments_is_dated_on_mobile() -> None:
    found = incidents(ForeignStore(sessions_per_day=10, seed=3, planted=[MOBILE_MONTH]))
    assert_dated(found, MOBILE_MONTH, days=3)
    assert len(found) == 1  # on mobile only, not again on all traffic or a country


def test_at_ten_sessions_a_day_a_quiet_store_has_no_incident() -> None:
    assert incidents(ForeignStore(sessions_per_day=10, seed=7)).empty


@pytest.mark.slow
def test_at_ten_sessions_a_day_four_days_of_failing_mobile_payments_are_too_few_to_report() -> None:
    # About one mobile session a day reaches payment: four lost purchases are within chance
    # once every step, segment and day is scanned (docs/diagnosis.md, "What cannot be
    # seen"). What must not happen is a wrong incident instead.
    planted = Planted("purchase", date(2024, 5, 6), 4, 0.0, "mobile")
    for seed in (1, 2):
        assert incidents(ForeignStore(sessions_per_day=10, seed=seed, planted=[planted])).empty


# -- 1,000 sessions a day: long and short, device-only and all-device, in one store -----------
LONG_MOBILE = Planted("add_payment_info", date(2024, 3, 1), 30, 0.65, "mobile")
LONG_OUTAGE = Planted("purchase", date(2024, 5, 1), 20, 0.3)
SIX_HOURS = Planted("purchase", date(2024, 6, 10), 0.25, 0.0, hour=10)
TWO_DAYS_MOBILE = Planted("add_payment_info", date(2024, 6, 18), 2, 0.0, "mobile")


@pytest.fixture(scope="module")
def busy_store_incidents():
    spec = ForeignStore(
        sessions_per_day=1000,
        seed=1,
        planted=[LONG_MOBILE, LONG_OUTAGE, SIX_HOURS, TWO_DAYS_MOBILE],
    )
    return incidents(spec)


@pytest.mark.slow
def test_at_a_thousand_sessions_a_day_each_planted_incident_is_reported_once(
    busy_store_incidents,
) -> None:
    assert len(busy_store_incidents) == 4, busy_store_incidents[
        ["event", "segment", "start", "end"]
    ]


@pytest.mark.slow
def test_at_a_thousand_sessions_a_day_the_month_on_mobile_and_the_twenty_days_on_all_are_dated_to_the_day(
    busy_store_incidents,
) -> None:
    assert_dated(busy_store_incidents, LONG_MOBILE, days=1)
    assert_dated(busy_store_incidents, LONG_OUTAGE, days=1)
    outage = one_for(busy_store_incidents, LONG_OUTAGE)
    assert outage["rate"] == pytest.approx(0.3, abs=0.03)


@pytest.mark.slow
def test_at_a_thousand_sessions_a_day_a_six_hour_outage_after_a_long_one_is_dated_to_the_hour(
    busy_store_incidents,
) -> None:
    row = one_for(busy_store_incidents, SIX_HOURS)
    assert row["grain"] == "hour" and row["segment"] == "all traffic"
    assert abs((row["start_time"] - datetime(2024, 6, 10, 10)).total_seconds()) <= 3600
    assert abs((row["end_time"] - datetime(2024, 6, 10, 16)).total_seconds()) <= 3600


@pytest.mark.slow
def test_at_a_thousand_sessions_a_day_two_days_of_failing_mobile_checkout_are_dated_on_mobile(
    busy_store_incidents,
) -> None:
    assert_dated(busy_store_incidents, TWO_DAYS_MOBILE, days=1)
    assert one_for(busy_store_incidents, TWO_DAYS_MOBILE)["rate"] < 0.1
