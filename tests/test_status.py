"""Statuses from the store's own return behaviour (shopfunnel.stages.status), on tiny logs built here.

Every threshold below is worked out by hand from the return gaps the test plants (or with
``np.quantile`` over gaps the test generated itself), never read back from the code under
test. Stores with very different return habits check that the thresholds follow the data.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from conftest import T0, log
from shopfunnel.errors import ConfigError
from shopfunnel.model import Placement, model_from_dict
from shopfunnel.stages import persons, place_persons, placement, stage_summary
from shopfunnel.stages.status import (
    NEVER,
    STATUSES,
    classify,
    last_at_or_before,
    return_gaps,
    stage_thresholds,
)
from shopfunnel.store import Store

DAY = 24 * 60  # minutes
MINUTE = 1 / DAY  # in days
END = 1000  # as_of of the synthetic stores, in days: after every planted return
US = 60 * 1_000_000  # microseconds per minute


def at(days: float):
    return T0 + timedelta(days=days)


def model(**rules):
    return model_from_dict({"placement": rules}, source="test.toml")


def returners(gaps_days, prefix: str = "m") -> list[tuple]:
    """One person per gap: viewed an item, stayed away ``gap`` days, came back and added it
    to the cart (a return gap of exactly ``gap`` at Interest)."""
    rows = []
    for i, gap in enumerate(gaps_days):
        rows += [
            (f"{prefix}{i:04d}", 0, "view_item"),
            (f"{prefix}{i:04d}", gap * DAY, "add_to_cart"),
        ]
    return rows


def placed(store: Store, *rows: tuple, **kwargs) -> pd.DataFrame:
    store.load(log(*rows))
    return place_persons(store, **kwargs).set_index("person_id")


def interest_thresholds(store: Store, **kwargs) -> pd.Series:
    return placement(store, **kwargs).thresholds.set_index("stage").loc["Interest"]


# -- the pieces, on hand-made arrays -----------------------------------------------------------
def test_last_at_or_before_finds_the_latest_entry_of_the_same_person() -> None:
    rows = np.array([1, 0, 1, 0, 2])
    times = np.array([50, 10, 20, 30, 5])
    got = last_at_or_before(
        rows, times, np.array([0, 0, 0, 1, 1, 1, 2, 3]), np.array([9, 10, 29, 19, 20, 99, 4, 100])
    )
    # person 0: nothing before 10; 10 at index 1 (at or before counts); 29 → 10.
    # person 1: nothing at 19 (20 is later); 20 → index 2; 99 → 50 (index 0).
    # person 2: its only entry (5) is after 4; person 3 has none (person 2's is not theirs).
    assert list(got) == [-1, 1, 1, -1, 2, 0, -1, -1]


def test_return_gaps_count_only_visits_that_began_after_the_person_entered_the_stage() -> None:
    # Two stages. Person 0 entered stage 0 at 0 and stage 1 at 100; the visit holding 100
    # began at 90 after a gap of 40: a return gap of 40 at stage 0. Person 1 entered stage 0
    # at 50 and moved on at 60 inside a visit that began at 20 (before 50): no return.
    # Person 2 never moved on.
    first = np.array([[0, 100], [50, 60], [0, NEVER]], dtype=np.int64)
    gaps = return_gaps(
        first, np.array([0, 1, 2]), np.array([90, 20, 30]), np.array([40.0, 10.0, 30.0]) * 86_400e6
    )
    assert gaps[0, 0] == 40.0
    assert math.isnan(gaps[1, 0]) and math.isnan(gaps[2, 0])
    assert np.isnan(gaps[:, 1]).all()  # the last stage has no next stage


def test_classify_judges_customers_by_orders_and_prospects_by_visits_strictly() -> None:
    customer = np.array([False, False, False, False, True, True, True, True])
    idle = np.array([1.0, 1.5, 3.0, 3.5, 100, 100, 100, 100])
    since_order = np.array([np.nan] * 4 + [5.0, 5.5, 9.0, 9.5])
    got = classify(
        customer,
        idle,
        np.full(8, 1.0),
        np.full(8, 3.0),
        since_order,
        np.full(8, 5.0),
        np.full(8, 9.0),
    )
    assert list(got) == [
        "active",
        "stalled",
        "stalled",
        "gone",
        "active",
        "lapsed",
        "lapsed",
        "gone",
    ]


def test_stage_thresholds_fall_back_from_the_stage_to_every_stage_pooled_to_the_defaults() -> None:
    rules = Placement(min_returns=3, stalled_quantile=0.5, gone_quantile=0.9)
    nan = math.nan
    # stage 0 has 3 return gaps (its own), stage 1 has 1 (pooled: 4 gaps), stage 2 is last.
    gaps = np.array([[1.0, 8.0, nan], [2.0, nan, nan], [3.0, nan, nan]])
    t = stage_thresholds(["A", "B", "C"], np.array([3, 1, 0]), gaps, rules).set_index("stage")
    assert t.loc["A", "stalled_after_days"] == 2.0  # median of 1, 2, 3
    assert t.loc["A", "gone_after_days"] == pytest.approx(2.8)  # 2 + 0.8 * (3 - 2)
    assert t.loc["A", "source"] == "data: 50th and 90th percentiles of 3 return gaps"
    # pooled 1, 2, 3, 8: median 2.5; 90th at rank 2.7: 3 + 0.7 * 5 = 6.5
    assert t.loc["B", "stalled_after_days"] == 2.5
    assert t.loc["B", "gone_after_days"] == pytest.approx(6.5)
    assert t.loc["B", "source"].startswith("pooled (1 return gaps here, fewer than 3)")
    assert t.loc["C", "source"].startswith("pooled (last stage)")
    assert list(t["returning"]) == [3, 1, 0]
    few = stage_thresholds(["A", "B"], np.array([1, 0]), np.array([[1.0, nan], [nan, nan]]), rules)
    assert list(few["stalled_after_days"]) == [7.0, 7.0]
    assert list(few["gone_after_days"]) == [28.0, 28.0]
    assert few["source"].iloc[0] == (
        "default stalled_after and gone_after (1 return gaps here, fewer than 3; 1 in the "
        "store, fewer than 3)"
    )


# -- prospects: active, stalled, gone at the edges --------------------------------------------
def test_a_prospect_is_active_to_the_80th_percentile_return_gap_stalled_to_the_95th_and_gone_past(
    store,
) -> None:
    # 21 persons came back after 1, 2, ..., 21 days to move on from Interest. Linear
    # percentiles: 80th at rank 0.8 * 20 = 16 → 17 days; 95th at rank 19 → 20 days.
    as_of = 40
    p = placed(
        store,
        *returners(range(1, 22)),
        ("at_17d", (as_of - 17) * DAY, "view_item"),
        ("past_17d", (as_of - 17 - MINUTE) * DAY, "view_item"),
        ("at_20d", (as_of - 20) * DAY, "view_item"),
        ("past_20d", (as_of - 20 - MINUTE) * DAY, "view_item"),
        ("now", as_of * DAY, "view_item"),
        as_of=at(as_of),
    )
    assert p.loc["at_17d", "stalled_after_days"] == 17.0
    assert p.loc["at_17d", "gone_after_days"] == 20.0
    assert p.loc["at_17d", "days_since_last_event"] == 17.0
    assert [p.loc[x, "status"] for x in ("now", "at_17d", "past_17d", "at_20d", "past_20d")] == [
        "active",
        "active",
        "stalled",
        "stalled",
        "gone",
    ]
    t = interest_thresholds(store, as_of=at(as_of))
    assert (t["movers"], t["returning"]) == (21, 21)
    assert t["source"] == "data: 80th and 95th percentiles of 21 return gaps"


def test_the_time_since_the_last_visit_counts_not_the_time_at_the_stage(store) -> None:
    # "old" entered Interest 30 days ago but browsed again yesterday: active, not gone.
    p = placed(
        store,
        *returners(range(1, 22)),
        ("old", 10 * DAY, "view_item"),
        ("old", 39 * DAY, "view_item_list"),
        as_of=at(40),
    )
    assert p.loc["old", "days_in_stage"] == 30.0
    assert p.loc["old", "days_since_last_event"] == 1.0
    assert p.loc["old", "status"] == "active"


def test_the_return_gap_is_the_time_away_before_the_visit_that_moved_them_on(store) -> None:
    # Entered Interest at 0, visited again on day 5 without moving on, came back on day 8 and
    # added to the cart 10 minutes into that visit: the return gap is 3 days, not 8.
    rows = [
        ("a", 0, "view_item"),
        ("a", 5 * DAY, "view_item"),
        ("a", 8 * DAY, "page_view"),
        ("a", 8 * DAY + 10, "add_to_cart"),
    ]
    store.load(log(*rows))
    t = interest_thresholds(store, model=model(min_returns=1))
    assert t["returning"] == 1
    assert t["stalled_after_days"] == 3.0 and t["gone_after_days"] == 3.0


def test_moving_on_within_one_visit_is_not_a_return(store) -> None:
    # 25 persons added to the cart minutes after viewing, with pauses of up to 30 minutes
    # (the visit gap, not more): no return gaps anywhere, so the defaults apply.
    rows = []
    for i in range(25):
        rows += [
            (f"q{i}", 0, "view_item"),
            (f"q{i}", 30, "page_view"),
            (f"q{i}", 60, "add_to_cart"),
        ]
    store.load(log(*rows))
    t = interest_thresholds(store)
    assert (t["movers"], t["returning"]) == (25, 0)
    assert (t["stalled_after_days"], t["gone_after_days"]) == (7.0, 28.0)
    assert t["source"].startswith("default stalled_after and gone_after")


def test_a_pause_longer_than_the_visit_gap_starts_a_new_visit(store) -> None:
    # 30 minutes and one second away: a return, with a gap of 30m 1s.
    store.load(log(("a", 0, "view_item"), ("a", 30 + 1 / 60, "add_to_cart")))
    t = interest_thresholds(store, model=model(min_returns=1))
    assert t["returning"] == 1
    assert t["stalled_after_days"] == pytest.approx((30 + 1 / 60) / DAY)
    # With a 1-hour visit gap the same pause is inside one visit.
    t = interest_thresholds(store, model=model(min_returns=1, visit_gap="1h"))
    assert t["returning"] == 0


def test_a_visit_that_began_before_the_person_entered_the_stage_is_no_return_to_it(store) -> None:
    # Awareness at 0; back on day 3, viewed an item 5 minutes in and added it 10 minutes
    # later: a 3-day return at Awareness, but Interest was entered and left in one visit.
    store.load(
        log(
            ("a", 0, "page_view"),
            ("a", 3 * DAY, "page_view"),
            ("a", 3 * DAY + 5, "view_item"),
            ("a", 3 * DAY + 15, "add_to_cart"),
        )
    )
    t = placement(store, model=model(min_returns=1)).thresholds.set_index("stage")
    assert t.loc["Awareness", "returning"] == 1
    assert t.loc["Awareness", "stalled_after_days"] == 3.0
    assert t.loc["Interest", "movers"] == 1 and t.loc["Interest", "returning"] == 0


def test_a_stage_with_too_few_returns_takes_every_stages_returns_pooled(store) -> None:
    # 21 returns at Interest (1..21 days); one at Awareness (2 days): Awareness takes the 22
    # pooled gaps 1, 2, 2, 3, ..., 21: 80th at rank 16.8 → 16 + 0.8 = 16.8 days;
    # 95th at rank 19.95 → 19 + 0.95 = 19.95 days.
    store.load(
        log(
            *returners(range(1, 22)),
            ("b", 0, "page_view"),
            ("b", 2 * DAY, "view_item"),
            ("late", 0, "page_view"),
        )
    )
    t = placement(store, as_of=at(40)).thresholds.set_index("stage")
    assert t.loc["Awareness", "returning"] == 1
    assert t.loc["Awareness", "stalled_after_days"] == pytest.approx(16.8)
    assert t.loc["Awareness", "gone_after_days"] == pytest.approx(19.95)
    assert t.loc["Awareness", "source"] == (
        "pooled (1 return gaps here, fewer than 20): 80th and 95th percentiles of 22 return "
        "gaps at every stage"
    )


def test_a_small_store_falls_back_to_the_model_files_stalled_after_and_gone_after(store) -> None:
    rules = model(stalled_after="2d", gone_after="5d")
    p = placed(
        store,
        *returners([1, 3]),
        ("two", 8 * DAY, "view_item"),
        ("three", 7 * DAY - 1, "view_item"),
        ("six", 4 * DAY - 1, "view_item"),
        model=rules,
        as_of=at(10),
    )
    assert p.loc["two", "stalled_after_days"] == 2.0 and p.loc["two", "gone_after_days"] == 5.0
    assert [p.loc[x, "status"] for x in ("two", "three", "six")] == ["active", "stalled", "gone"]


def test_nobody_at_the_last_stage_has_a_next_stage_so_it_takes_the_pooled_returns(store) -> None:
    p = placed(
        store, *returners(range(1, 22)), ("ref", 21 * DAY, "referral_purchase"), as_of=at(40)
    )
    assert p.loc["ref", "stage"] == "Retention" and p.loc["ref", "orders"] == 0
    assert p.loc["ref", "stalled_after_days"] == 17.0  # the 21 Interest returns, pooled
    assert p.loc["ref", "status"] == "stalled"  # 19 days away: past 17, not past 20


def test_min_stalled_after_puts_a_floor_under_stalled_and_gone_follows_it(store) -> None:
    # Returns after 1..21 hours: stalled after 17 hours, gone after 20; a 1-day floor lifts
    # both to a day.
    hours = [h / 24 for h in range(1, 22)]
    p = placed(store, *returners(hours), ("x", 40 * DAY - 18 * 60, "view_item"), as_of=at(40))
    assert p.loc["x", "stalled_after_days"] == pytest.approx(17 / 24)
    assert p.loc["x", "status"] == "stalled"
    store2 = Store(":memory:")
    try:
        q = placed(
            store2,
            *returners(hours),
            ("x", 40 * DAY - 18 * 60, "view_item"),
            model=model(min_stalled_after="1d"),
            as_of=at(40),
        )
    finally:
        store2.close()
    assert q.loc["x", "stalled_after_days"] == 1.0 and q.loc["x", "gone_after_days"] == 1.0
    assert q.loc["x", "status"] == "active"


# -- customers: active, lapsed, gone ----------------------------------------------------------
def repeat_buyers(gaps_days) -> list[tuple]:
    rows = []
    for i, gap in enumerate(gaps_days):
        rows += [
            (f"c{i:02d}", 0, "purchase", {"order_id": f"c{i}a", "value": 10}),
            (f"c{i:02d}", gap * DAY, "purchase", {"order_id": f"c{i}b", "value": 10}),
        ]
    return rows


def buy(person: str, minutes: float, order: str) -> tuple:
    return (person, minutes, "purchase", {"order_id": order, "value": 10})


def test_a_customer_is_lapsed_past_the_80th_percentile_gap_and_gone_past_the_95th(store) -> None:
    # 21 gaps between orders of 1..21 days: 80th percentile 17 days, 95th 20 days.
    as_of = 40
    p = placed(
        store,
        *repeat_buyers(range(1, 22)),
        buy("at_17d", (as_of - 17) * DAY, "x1"),
        buy("past_17d", (as_of - 17 - MINUTE) * DAY, "x2"),
        buy("at_20d", (as_of - 20) * DAY, "x3"),
        buy("past_20d", (as_of - 20 - MINUTE) * DAY, "x4"),
        ("past_20d", as_of * DAY, "view_item"),  # browsing today does not undo a lapse in orders
        as_of=at(as_of),
    )
    assert p.loc["at_17d", "lapsed_after_days"] == 17.0
    assert p.loc["at_17d", "gone_after_days"] == 20.0
    assert math.isnan(p.loc["at_17d", "stalled_after_days"])
    assert [p.loc[x, "status"] for x in ("at_17d", "past_17d", "at_20d", "past_20d")] == [
        "active",
        "lapsed",
        "lapsed",
        "gone",
    ]
    whole = placement(store, as_of=at(as_of))
    assert (whole.lapsed_after_days, whole.customer_gone_after_days) == (17.0, 20.0)


def test_a_customer_with_three_orders_is_gone_past_their_own_95th_percentile_gap(store) -> None:
    # Orders every 2 days: lapsed after 2 ln 5 = 3.22 days, gone after 2 ln 20 = 5.99 days.
    as_of = 20
    rows = []
    for person, last in (("steady", as_of - 3.2), ("lapsed", as_of - 3.3), ("gone", as_of - 6.0)):
        rows += [
            buy(person, (last - 4) * DAY, f"{person}1"),
            buy(person, (last - 2) * DAY, f"{person}2"),
            buy(person, last * DAY, f"{person}3"),
        ]
    p = placed(store, *rows, as_of=at(as_of))
    assert p.loc["steady", "lapsed_after_days"] == pytest.approx(2 * math.log(5))
    assert p.loc["steady", "gone_after_days"] == pytest.approx(2 * math.log(20))
    assert [p.loc[x, "status"] for x in ("steady", "lapsed", "gone")] == [
        "active",
        "lapsed",
        "gone",
    ]


def test_customers_of_a_store_with_few_repeat_orders_use_lapsed_after_and_customer_gone_after(
    store,
) -> None:
    rules = model(lapsed_after="10d", customer_gone_after="30d")
    p = placed(
        store,
        buy("a", 0, "o1"),
        buy("b", 25 * DAY, "o2"),
        buy("c", 35 * DAY, "o3"),
        model=rules,
        as_of=at(40),
    )
    assert [p.loc[x, "status"] for x in ("c", "b", "a")] == ["active", "lapsed", "gone"]
    assert placement(store, model=rules, as_of=at(40)).lapsed_source == (
        "default lapsed_after and customer_gone_after: 0 gaps, fewer than 20"
    )


# -- the thresholds follow the data: stores with very different return habits -----------------
def synthetic_store(
    rng: np.random.Generator, mean_days: float, n: int = 600
) -> tuple[Store, np.ndarray]:
    """``n`` returning movers whose time away is 1 hour plus an exponential with the given
    mean, and as many who move on in one visit; returns the store and the planted gaps."""
    gaps = 1 / 24 + rng.exponential(mean_days, n)
    rows = returners(gaps, prefix="r")
    for i in range(n):
        rows += [(f"s{i}", 0, "view_item"), (f"s{i}", 5, "add_to_cart")]
    rows += [("three_days", END * DAY - 3 * DAY, "view_item")]
    s = Store(":memory:")
    s.load(log(*rows))
    return s, gaps


@pytest.mark.parametrize("mean_days", [0.25, 3.0, 30.0])
def test_thresholds_are_the_quantiles_of_the_return_gaps_the_store_actually_has(mean_days) -> None:
    s, gaps = synthetic_store(np.random.default_rng(7), mean_days)
    try:
        t = interest_thresholds(s, as_of=at(END), lookback="3650d")
    finally:
        s.close()
    assert t["returning"] == len(gaps)
    assert t["stalled_after_days"] == pytest.approx(np.quantile(gaps, 0.8), rel=1e-9)
    assert t["gone_after_days"] == pytest.approx(np.quantile(gaps, 0.95), rel=1e-9)
    # and close to the planted distribution's own percentiles: 1h + mean * -ln(1 - q)
    assert t["stalled_after_days"] == pytest.approx(1 / 24 + mean_days * math.log(5), rel=0.15)
    assert t["gone_after_days"] == pytest.approx(1 / 24 + mean_days * math.log(20), rel=0.2)


def test_the_same_three_days_away_is_gone_at_a_fast_store_and_active_at_a_slow_one() -> None:
    rng = np.random.default_rng(11)
    statuses = {}
    for name, mean_days in (("fast", 0.25), ("slow", 20.0)):
        s, _ = synthetic_store(rng, mean_days)
        try:
            statuses[name] = (
                place_persons(s, as_of=at(END), lookback="3650d")
                .set_index("person_id")
                .loc["three_days", "status"]
            )
        finally:
            s.close()
    assert statuses == {"fast": "gone", "slow": "active"}


# -- selection and settings -------------------------------------------------------------------
def test_persons_selects_each_status_and_the_summary_counts_them(store) -> None:
    store.load(
        log(
            *returners(range(1, 22)),
            ("fresh", 40 * DAY, "view_item"),
            ("stalled", 22 * DAY, "view_item"),
            ("gone", 0, "view_item"),
            buy("old_buyer", 0, "o1"),
            buy("buyer", 25 * DAY, "o2"),
            buy("recent", 39 * DAY, "o3"),
        )
    )
    rules = model(lapsed_after="10d", customer_gone_after="20d")  # the store has no repeat orders
    got = {
        s: set(persons(store, "interest", s, model=rules, as_of=at(40))["person_id"])
        for s in STATUSES
    }
    assert got == {"active": {"fresh"}, "stalled": {"stalled"}, "lapsed": set(), "gone": {"gone"}}
    buyers = {
        s: set(persons(store, "purchase", s, model=rules, as_of=at(40))["person_id"])
        for s in STATUSES
    }
    assert buyers == {
        "active": {"recent"},
        "stalled": set(),
        "lapsed": {"buyer"},
        "gone": {"old_buyer"},
    }
    summary = stage_summary(store, model=rules, as_of=at(40)).set_index("stage")
    assert summary.loc["Interest", ["active", "stalled", "lapsed", "gone"]].tolist() == [1, 1, 0, 1]
    assert summary.loc["Purchase", ["active", "stalled", "lapsed", "gone"]].tolist() == [1, 0, 1, 1]
    assert (summary[list(STATUSES)].sum(axis=1) == summary["at_stage"]).all()


def test_persons_rejects_an_unknown_status_listing_every_status(store) -> None:
    with pytest.raises(ConfigError, match="use one of active, stalled, lapsed, gone"):
        persons(store, status="asleep")


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"gone_quantile": 0.8}, "gone_quantile (0.8) must be greater than stalled_quantile"),
        ({"gone_quantile": 0.9, "lapsed_quantile": 0.9}, "must be greater than lapsed_quantile"),
        ({"stalled_after": "30d"}, "gone_after ('28d') must be longer than stalled_after ('30d')"),
        (
            {"customer_gone_after": "60d"},
            "customer_gone_after ('60d') must be longer than lapsed_after",
        ),
        ({"visit_gap": "soon"}, "'soon' is not a duration"),
    ],
)
def test_the_model_file_refuses_thresholds_in_the_wrong_order(rules, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model(**rules)
