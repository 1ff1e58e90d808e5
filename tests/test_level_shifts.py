"""Long incidents are found on stores shopfunnel did not generate: planted falls of weeks
to a month, on one device or on all, at a few sessions a day and at a thousand, with their
dates; stationary stores give none. Stores from tests/_foreign_store.py (GA4 names, no
order values)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pytest

from _daily_counts import STEPS, Change, DailyCounts
from _foreign_store import ForeignStore, Planted
from shopfunnel.diagnosis import level_shifts
from shopfunnel.diagnosis.diagnose import DiagnoseSettings, diagnose
from shopfunnel.diagnosis.level_shifts import (
    LevelShiftSettings,
    _loglik,
    find_level_shifts,
    refine_boundary,
    segment,
    series_dispersion,
    shifts_from_counts,
)
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.store.store import Store

MOBILE = Planted("add_payment_info", date(2024, 3, 1), 30, 0.65, "mobile")
OUTAGE = Planted("purchase", date(2024, 5, 1), 20, 0.3)


def shifts(spec: ForeignStore):
    with Store(":memory:") as store:
        store.load(spec.events())
        return find_level_shifts(SessionLevels(store))


def assert_found(out, planted: Planted, *, tolerance_days: int = 3) -> None:
    end = planted.start + timedelta(days=planted.days - 1)
    rows = out[(out["event"] == planted.into)]
    rows = (
        rows[rows["device"].isna()]
        if planted.device is None
        else rows[rows["device"] == planted.device]
    )
    assert len(rows) == 1, out
    row = rows.iloc[0]
    assert abs((row["start"] - planted.start).days) <= tolerance_days, row
    assert abs((row["end"] - end).days) <= tolerance_days, row
    assert row["kind"] == "conversion_drop" and not row["ongoing"]
    assert row["rate"] == pytest.approx(planted.rate, abs=0.12)


def brute_force(entering, reached, penalty, min_days):
    n = len(entering)
    best, best_runs = np.inf, None
    for k in range(n):
        for cuts in itertools.combinations(range(min_days, n - min_days + 1), k):
            bounds = [0, *cuts, n]
            runs = list(itertools.pairwise(bounds))
            if any(b - a < min_days for a, b in runs):
                continue
            cost = sum(
                -2 * _loglik(np.array([entering[a:b].sum()]), np.array([reached[a:b].sum()]))[0]
                for a, b in runs
            ) + penalty * (len(runs) - 1)
            if cost < best - 1e-9:
                best, best_runs = cost, runs
    return best_runs


def test_the_segmentation_is_the_optimal_partition() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(6, 12))
        entering = rng.integers(0, 8, n).astype(float)
        rate = np.where(np.arange(n) < n // 2, 0.8, rng.choice([0.2, 0.8]))
        reached = rng.binomial(entering.astype(int), rate).astype(float)
        penalty = float(rng.choice([2.0, 6.0, 12.0]))
        assert segment(entering, reached, penalty=penalty, min_days=2) == brute_force(
            entering, reached, penalty, 2
        )


def test_a_three_week_outage_is_found_at_ten_sessions_a_day() -> None:
    out = shifts(ForeignStore(sessions_per_day=10, seed=1, planted=[OUTAGE]))
    assert_found(out, OUTAGE)
    assert len(out) == 1


def test_nothing_planted_nothing_found_at_ten_sessions_a_day() -> None:
    for seed in (2, 3):
        assert shifts(ForeignStore(sessions_per_day=10, seed=seed)).empty


def test_a_mobile_only_month_and_an_all_device_outage_at_a_hundred_sessions_a_day() -> None:
    out = shifts(ForeignStore(sessions_per_day=100, seed=1, planted=[MOBILE, OUTAGE]))
    assert_found(out, MOBILE)
    assert_found(out, OUTAGE)
    assert len(out) == 2  # not again as a shadow on all traffic or on a country


def test_a_fall_that_has_not_ended_is_ongoing() -> None:
    start = date(2024, 1, 1) + timedelta(days=160)
    out = shifts(
        ForeignStore(sessions_per_day=100, seed=4, planted=[Planted("purchase", start, 40, 0.4)])
    )
    assert len(out) == 1 and bool(out.iloc[0]["ongoing"])
    assert abs((out.iloc[0]["start"] - start).days) <= 3


@pytest.mark.slow
def test_at_a_thousand_sessions_a_day_both_are_found_and_a_quiet_store_gives_none() -> None:
    out = shifts(ForeignStore(sessions_per_day=1000, seed=1, planted=[MOBILE, OUTAGE]))
    assert_found(out, MOBILE, tolerance_days=1)
    assert_found(out, OUTAGE, tolerance_days=1)
    assert len(out) == 2
    assert shifts(ForeignStore(sessions_per_day=1000, seed=5)).empty


def test_the_diagnosis_reports_both_as_incidents_with_their_dates() -> None:
    spec = ForeignStore(sessions_per_day=100, seed=1, planted=[MOBILE, OUTAGE])
    with Store(":memory:") as store:
        store.load(spec.events())
        result = diagnose(store)
    incidents = result.findings[result.findings["kind"] == "incident"]
    titles = " | ".join(incidents["title"])
    assert "Payment info → purchase fell, 2024-05-01 to 2024-05-20" in titles
    assert "Shipping info → payment info fell on device=mobile" in titles


# -- any traffic: daily counts drawn directly (tests/_daily_counts.py) ---------------------------
def counts_shifts(dc: DailyCounts, **settings):
    return shifts_from_counts(
        dc.cells(), STEPS, dc.first_day, dc.last_day, LevelShiftSettings(**settings)
    )


def test_at_a_hundred_thousand_sessions_a_day_both_are_found_to_the_day() -> None:
    dc = DailyCounts(
        100_000,
        seed=2,
        changes=[Change(5, 100, 30, 0.65, {"device": "mobile"}), Change(6, 200, 20, 0.3)],
    )
    out = counts_shifts(dc)
    assert len(out) == 2
    mobile = out[out["device"] == "mobile"].iloc[0]
    outage = out[out["segment"] == "all traffic"].iloc[0]
    assert (mobile["event"], mobile["start"], mobile["end"]) == (
        "add_payment_info",
        date(2024, 4, 10),
        date(2024, 5, 9),
    )
    assert (outage["event"], outage["start"], outage["end"]) == (
        "purchase",
        date(2024, 7, 19),
        date(2024, 8, 7),
    )
    assert outage["rate"] == pytest.approx(0.3, abs=0.01) and outage[
        "baseline_rate"
    ] == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("sessions_per_day", [10, 1_000, 100_000])
def test_weekend_habits_and_day_to_day_noise_are_not_incidents(sessions_per_day) -> None:
    # weekends convert 15% worse at every step, and every day's log-odds scatter by 0.1
    dc = DailyCounts(sessions_per_day, seed=1, weekend_factor=0.85, daily_noise=0.1)
    assert counts_shifts(dc).empty


def test_without_the_dispersion_day_to_day_noise_would_be_reported(monkeypatch) -> None:
    # the same store read as if its days were binomial (φ = 1): the guard above is φ
    dc = DailyCounts(1_000, seed=1, weekend_factor=0.85, daily_noise=0.1)
    monkeypatch.setattr(level_shifts, "series_dispersion", lambda *args, **kwargs: 1.0)
    assert not counts_shifts(dc).empty


def test_the_dispersion_is_one_for_binomial_days_and_grows_with_day_to_day_noise() -> None:
    rng = np.random.default_rng(5)
    n = np.full(365, 2_000)
    binomial = rng.binomial(n, 0.8)
    noisy = rng.binomial(n, 1 / (1 + np.exp(-(np.log(4) + rng.normal(0, 0.1, 365)))))
    assert series_dispersion(n, binomial) == pytest.approx(1.0, abs=0.15)
    # the log-odds sd 0.1 adds (0.1·p(1−p))² · n² / (n·p(1−p)) = 0.01 · 0.16 · 2000 = 3.2 to φ
    assert series_dispersion(n, noisy) == pytest.approx(4.2, rel=0.3)
    assert (
        series_dispersion(np.full(365, 2), rng.binomial(2, 0.8, 365)) == 1.0
    )  # too few a day to tell


def test_a_boundary_is_placed_at_the_hour_the_rate_changed() -> None:
    rng = np.random.default_rng(6)
    n = rng.poisson(40, 48)
    rate = np.where(np.arange(48) < 31, 0.8, 0.3)  # changes at 07:00 of the second day
    assert abs(refine_boundary(n, rng.binomial(n, rate), 0.8, 0.3) - 31) <= 1
    assert (
        refine_boundary(n, rng.binomial(n, np.full(48, 0.3)), 0.8, 0.3) == 0
    )  # changed before the window
    assert refine_boundary(n, rng.binomial(n, np.full(48, 0.8)), 0.8, 0.3) == 48  # not yet


def test_an_incident_starting_in_the_afternoon_is_dated_to_the_hour_at_a_thousand_sessions_a_day() -> (
    None
):
    planted = Planted("purchase", date(2024, 3, 1), 20, 0.3, hour=15)
    out = shifts(ForeignStore(sessions_per_day=1000, days=120, seed=3, planted=[planted]))
    row = out[out["event"] == "purchase"].iloc[0]
    assert abs((row["start_time"] - planted.begin).total_seconds()) <= 2 * 3600
    assert abs((row["end_time"] - planted.finish).total_seconds()) <= 2 * 3600


def test_a_fall_on_one_browser_is_found_when_the_store_names_the_property() -> None:
    planted = Planted("add_payment_info", date(2024, 3, 1), 30, 0.4, browser="Safari")
    spec = ForeignStore(
        sessions_per_day=200,
        days=120,
        seed=7,
        planted=[planted],
        browsers={"Chrome": 0.6, "Safari": 0.3, "Firefox": 0.1},
    )
    with Store(":memory:") as store:
        store.load(spec.events())
        plain = find_level_shifts(SessionLevels(store))
        named = find_level_shifts(
            SessionLevels(store, properties=["browser"]), properties=["browser"]
        )
    row = named[named["event"] == "add_payment_info"].iloc[0]
    assert (row["segment"], row["browser"]) == ("browser=Safari", "Safari")
    assert abs((row["start"] - planted.start).days) <= 3
    assert (
        plain[plain["event"] == "add_payment_info"]["device"].isna().all()
    )  # without it, only all traffic can show it


def test_a_rise_that_lasts_is_reported_as_a_rise() -> None:
    dc = DailyCounts(
        2_000, days=200, seed=8, changes=[Change(3, 120, 80, 0.9)]
    )  # checkout 0.7 → 0.9, to the end
    (row,) = counts_shifts(dc).itertuples()
    assert (row.kind, row.event, row.ongoing) == ("conversion_rise", "begin_checkout", True)
    assert row.lost < 0 and row.start == date(2024, 4, 30)


def test_the_adjusted_p_value_is_the_bonferroni_factor_over_series_steps_and_days() -> None:
    dc = DailyCounts(1_000, days=100, seed=9, changes=[Change(6, 40, 20, 0.3)])
    cells = dc.cells()
    out = shifts_from_counts(cells, STEPS, dc.first_day, dc.last_day)
    (row,) = out.itertuples()
    series = 1 + sum(
        1
        for dim in ("device", "channel", "country")
        for v, n in cells.groupby(dim)["n0"].sum().items()
        if n >= 0.02 * cells["n0"].sum()
    )
    assert row.p_adjusted == pytest.approx(min(1.0, row.p_value * series * 6 * 100))


def test_the_diagnosis_says_what_each_incident_cost_and_why_revenue_is_missing() -> None:
    spec = ForeignStore(sessions_per_day=100, seed=1, planted=[OUTAGE])
    with Store(":memory:") as store:
        store.load(spec.events())
        result = diagnose(store)
        priced = diagnose(store, settings=DiagnoseSettings(average_order_value=50.0))
    row = result.incidents[result.incidents["event"] == "purchase"].iloc[0]
    assert row["grain"] == "days" and not row["ongoing"]
    assert row["orders_lost"] == pytest.approx(row["lost"])  # purchases are the orders
    # persons: five sessions per person in this store, so fewer persons than sessions were lost
    assert 0 < row["persons_lost"] <= row["lost"]
    assert np.isnan(row["revenue_lost"])
    assert any("revenue lost in incidents is not known" in n for n in result.notes)
    priced_row = priced.incidents[priced.incidents["event"] == "purchase"].iloc[0]
    assert priced_row["revenue_lost"] == pytest.approx(50.0 * priced_row["orders_lost"])
    assert row["p_adjusted"] < 0.01


def test_the_incident_table_and_the_report_say_ongoing_and_leave_out_unknown_revenue() -> None:
    from shopfunnel.report.sections.diagnosis import diagnosis_section

    start = date(2024, 1, 1) + timedelta(days=150)
    spec = ForeignStore(sessions_per_day=100, seed=4, planted=[Planted("purchase", start, 40, 0.4)])
    with Store(":memory:") as store:
        store.load(spec.events())
        result = diagnose(store)
    table = result.incident_table()
    (row,) = table.itertuples()
    assert (row.kind, row.step, row.segment, row.end) == (
        "conversion drop",
        "purchase",
        "all traffic",
        "ongoing",
    )
    assert abs((row.start - start).days) <= 3
    assert row.rate_during == pytest.approx(0.4, abs=0.06) and row.rate_before == pytest.approx(
        0.8, abs=0.05
    )
    section = diagnosis_section(result.findings, incidents=table, priced=False)
    (listing,) = [b for b in section.blocks if getattr(b, "caption", "").startswith("Incidents")]
    assert "revenue lost" not in listing.frame.columns  # no order values: not a column of dashes
    assert list(listing.frame["end"]) == ["ongoing"]
