"""Long incidents are found on stores shopfunnel did not generate: planted falls of weeks
to a month, on one device or on all, at a few sessions a day and at a thousand, with their
dates; stationary stores give none. Stores from tests/_foreign_store.py (GA4 names, no
order values)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pytest

from _foreign_store import ForeignStore, Planted
from shopfunnel.diagnosis.diagnose import diagnose
from shopfunnel.diagnosis.level_shifts import _loglik, find_level_shifts, segment
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
    rows = rows[rows["device"].isna()] if planted.device is None else rows[rows["device"] == planted.device]
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
            cost = sum(-2 * _loglik(np.array([entering[a:b].sum()]), np.array([reached[a:b].sum()]))[0]
                       for a, b in runs) + penalty * (len(runs) - 1)
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
            entering, reached, penalty, 2)


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
    out = shifts(ForeignStore(sessions_per_day=100, seed=4,
                              planted=[Planted("purchase", start, 40, 0.4)]))
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
