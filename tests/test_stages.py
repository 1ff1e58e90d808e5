"""The five-stage model: stage, status, summary, flow and the CLI, on tiny logs built here.

Every expected number is worked out by hand in the test (or by a brute-force reference
written below, for random logs), never read back from the code under test.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import T0, log
from shopfunnel.cli import app
from shopfunnel.errors import ConfigError
from shopfunnel.model import Model, load_model, model_from_dict
from shopfunnel.stages.placement import persons, place_persons, placement
from shopfunnel.stages.summary import stage_flow, stage_summary, stage_transitions
from shopfunnel.store.store import Store

DAY = 24 * 60  # minutes


def at(days: float):
    """T0 plus a number of days (as_of values in the tests)."""
    return T0 + timedelta(days=days)


def buy(order_id: str, value: float = 10.0) -> dict:
    return {"order_id": order_id, "value": value}


def place(store: Store, *rows: tuple, **kwargs) -> pd.DataFrame:
    store.load(log(*rows))
    return place_persons(store, **kwargs).set_index("person_id")


def small_model(**placement_rules) -> Model:
    return model_from_dict({"placement": placement_rules}, source="test.toml")


# -- stage: furthest stage reached ----------------------------------------------------------
def test_stage_is_the_furthest_reached_and_a_later_visit_does_not_move_it_back(store) -> None:
    p = place(
        store,
        ("a", 0, "page_view"),
        ("a", 1, "view_item"),
        ("a", 2, "add_to_cart"),
        ("a", 3, "page_view"),
    )
    assert p.loc["a", "stage"] == "Decision"
    assert p.loc["a", "stage_index"] == 2
    assert p.loc["a", "entered_stage_at"] == pd.Timestamp(at(0) + timedelta(minutes=2)).tz_localize(
        None
    )
    assert p.loc["a", "last_event_at"] == pd.Timestamp(at(0) + timedelta(minutes=3)).tz_localize(
        None
    )


def test_a_purchase_straight_away_is_at_purchase_and_has_reached_every_earlier_stage(store) -> None:
    store.load(log(("b", 0, "purchase", buy("o1")), ("v", 0, "page_view")))
    p = place_persons(store).set_index("person_id")
    assert p.loc["b", "stage"] == "Purchase"
    summary = stage_summary(store).set_index("stage")
    assert summary.loc["Decision", "reached"] == 1 and summary.loc["Decision", "at_stage"] == 0
    assert summary.loc["Awareness", "reached"] == 2


def test_an_event_in_no_stage_counts_as_a_visit(store) -> None:
    p = place(store, ("c", 0, "scroll"), ("c", 5, "remove_from_cart"))
    assert p.loc["c", "stage"] == "Awareness"
    assert p.loc["c", "entered_stage_at"] == pd.Timestamp(at(0)).tz_localize(None)


def test_a_second_order_reaches_retention_but_a_repeated_purchase_event_of_one_order_does_not(
    store,
) -> None:
    p = place(
        store,
        ("r", 0, "purchase", buy("o1", 10)),
        ("r", 10, "purchase", buy("o2", 5)),
        ("d", 0, "purchase", buy("o3", 10)),
        ("d", 5, "purchase", buy("o3", 10)),
        ("n", 0, "purchase", {"value": 3}),
        ("n", 1, "purchase", {"value": 4}),
        ("f", 0, "referral_purchase"),
    )
    assert p.loc["r", "stage"] == "Retention" and p.loc["r", "orders"] == 2
    assert p.loc["r", "revenue"] == 15
    assert p.loc["r", "entered_stage_at"] == pd.Timestamp(
        at(0) + timedelta(minutes=10)
    ).tz_localize(None)
    assert p.loc["d", "stage"] == "Purchase" and p.loc["d", "orders"] == 1
    assert p.loc["d", "revenue"] == 10
    # a purchase without an order id is an order of its own
    assert p.loc["n", "stage"] == "Retention" and p.loc["n", "orders"] == 2
    # a referral reaches Retention without orders
    assert p.loc["f", "stage"] == "Retention" and p.loc["f", "orders"] == 0


# -- lookback and as_of ----------------------------------------------------------------------
def test_only_events_in_the_lookback_period_count(store) -> None:
    store.load(
        log(
            ("old", 0, "purchase", buy("o1")),
            ("old", 399 * DAY, "view_item"),
            ("gone", 0, "page_view"),
            ("edge", 35 * DAY, "page_view"),  # exactly as_of - 365 days: outside
            ("inside", 35 * DAY + 1, "page_view"),
            ("last", 400 * DAY, "page_view"),  # exactly as_of: inside
        )
    )
    p = place_persons(store, as_of=at(400)).set_index("person_id")
    assert set(p.index) == {"old", "inside", "last"}
    assert p.loc["old", "stage"] == "Interest" and p.loc["old", "orders"] == 0
    short = place_persons(store, as_of=at(400), lookback="2d").set_index("person_id")
    assert set(short.index) == {"old", "last"}


def test_events_after_as_of_are_ignored(store) -> None:
    store.load(log(("a", 0, "view_item"), ("a", 2 * DAY, "purchase", buy("o1"))))
    p = place_persons(store, as_of=at(1)).set_index("person_id")
    assert p.loc["a", "stage"] == "Interest" and p.loc["a", "orders"] == 0
    assert p.loc["a", "days_in_stage"] == pytest.approx(1.0)


def test_a_date_alone_means_the_end_of_that_day(store) -> None:
    store.load(log(("a", 0, "view_item"), ("a", 11 * 60, "add_to_cart")))  # T0 is 12:00 UTC
    p = place_persons(store, as_of=T0.date().isoformat()).set_index("person_id")
    assert p.loc["a", "stage"] == "Decision"


def test_first_channel_is_the_first_touch_even_before_the_lookback(store) -> None:
    p = place(
        store,
        ("a", 0, "page_view", {"channel": "email"}),
        ("a", 0, "page_view", {"channel": "paid search"}),  # same instant: event_id decides
        ("a", 100 * DAY, "view_item", {"channel": "direct"}),
        as_of=at(100),
        lookback="10d",
    )
    assert p.loc["a", "first_channel"] == "email"
    assert p.loc["a", "last_event_at"] == pd.Timestamp(at(100)).tz_localize(None)


# -- status (the edges of each threshold are in test_status.py) ---------------------------------
def movers(n: int, stage_from: str = "view_item", stage_to: str = "add_to_cart") -> list[tuple]:
    """n persons who came back to move from one stage to the next after 1, 2, ..., n days."""
    rows = []
    for i in range(1, n + 1):
        rows += [(f"m{i:02d}", 0, stage_from), (f"m{i:02d}", i * DAY, stage_to)]
    return rows


def test_a_person_who_skipped_a_stage_is_not_a_mover_for_it(store) -> None:
    # add_to_cart and view_item at the same instant: Interest was skipped, not left after 0 s.
    model = small_model(min_returns=1)
    store.load(
        log(
            ("a", 0, "add_to_cart"),
            ("a", 0, "view_item"),
            ("b", 0, "view_item"),
            ("b", 2 * DAY, "add_to_cart"),
        )
    )
    thresholds = placement(store, model=model).thresholds.set_index("stage")
    assert thresholds.loc["Interest", "movers"] == 1
    assert thresholds.loc["Interest", "stalled_after_days"] == pytest.approx(2.0)


def test_a_visitor_who_never_ordered_is_never_lapsed_and_a_customer_never_stalled(store) -> None:
    p = place(
        store,
        *movers(20),
        ("browser", 0, "view_item"),
        ("buyer", 0, "purchase", buy("o1")),
        as_of=at(400),
        lookback="3650d",
    )
    assert p.loc["browser", "status"] == "gone"
    assert math.isnan(p.loc["browser", "lapsed_after_days"])
    assert p.loc["buyer", "status"] == "gone"  # 400 days > customer_gone_after (180 days)
    assert math.isnan(p.loc["buyer", "stalled_after_days"])


# -- summary -----------------------------------------------------------------------------------
def test_stage_summary_counts_reached_and_current_persons_and_conversion(store) -> None:
    store.load(
        log(
            ("A", 0, "page_view"),
            ("B", 0, "view_item"),
            ("C", 0, "begin_checkout"),
            ("D", 0, "purchase", buy("d1")),
            ("E", 0, "view_item"),
            ("E", 1, "purchase", buy("e1")),
            ("F", 0, "purchase", buy("f1")),
            ("F", 2, "purchase", buy("f2")),
        )
    )
    s = stage_summary(store).set_index("stage")
    assert list(s.index) == ["Awareness", "Interest", "Decision", "Purchase", "Retention"]
    assert list(s["reached"]) == [6, 5, 4, 3, 1]
    assert list(s["at_stage"]) == [1, 1, 1, 2, 1]
    assert math.isnan(s.loc["Awareness", "conversion_from_previous"])
    assert list(s["conversion_from_previous"].iloc[1:]) == pytest.approx(
        [5 / 6, 4 / 5, 3 / 4, 1 / 3]
    )
    assert list(s["conversion_from_start"]) == pytest.approx([1, 5 / 6, 4 / 6, 3 / 6, 1 / 6])
    assert list(s[["active", "stalled", "lapsed"]].sum(axis=1)) == list(s["at_stage"])


def test_an_empty_store_gives_zero_counts_not_an_error(store) -> None:
    s = stage_summary(store)
    assert list(s["reached"]) == [0] * 5
    assert s["conversion_from_previous"].isna().all()
    assert place_persons(store).empty


# -- flow -------------------------------------------------------------------------------------
def test_stage_flow_counts_moves_between_two_dates(store) -> None:
    store.load(
        log(
            ("p1", 0, "view_item"),
            ("p1", 5 * DAY, "add_to_cart"),  # Interest → Decision
            ("p2", 50 * DAY, "page_view"),  # not seen → Awareness
            ("p3", 1 * DAY, "purchase", buy("o3")),  # Purchase → lapsed
            ("p4", 0, "purchase", buy("o4")),
            ("p4", DAY, "purchase", buy("o5")),  # Retention → lapsed
        )
    )
    matrix = stage_flow(store, at(2), at(100))
    states = ["not seen", "Awareness", "Interest", "Decision", "Purchase", "Retention", "lapsed"]
    assert list(matrix.index) == states and list(matrix.columns) == states
    expected = pd.DataFrame(0, index=states, columns=states)
    expected.loc["Interest", "Decision"] = 1
    expected.loc["not seen", "Awareness"] = 1
    expected.loc["Purchase", "lapsed"] = 1
    expected.loc["Retention", "lapsed"] = 1
    assert (matrix.to_numpy() == expected.to_numpy()).all()
    moves = stage_transitions(store, at(2), at(100)).set_index("person_id")
    assert moves.loc["p1", "from"] == "Interest" and moves.loc["p1", "to"] == "Decision"


def test_a_person_whose_events_leave_the_lookback_is_not_seen_at_the_end(store) -> None:
    store.load(log(("a", 0, "page_view"), ("b", 19 * DAY, "page_view")))
    moves = stage_transitions(store, at(1), at(20), lookback="10d").set_index("person_id")
    assert moves.loc["a", "from"] == "Awareness" and moves.loc["a", "to"] == "not seen"
    assert moves.loc["b", "from"] == "not seen" and moves.loc["b", "to"] == "Awareness"


def test_stage_flow_refuses_an_end_before_the_start(store) -> None:
    store.load(log(("a", 0, "page_view")))
    with pytest.raises(ConfigError, match="must be after the start"):
        stage_flow(store, "2024-03-05", "2024-03-01")


# -- persons (audiences) ----------------------------------------------------------------------
def test_persons_filters_by_stage_in_any_case_and_by_status(store) -> None:
    # 20 came back after 1..20 days: stalled after 16.2 days, gone after 19.05.
    store.load(
        log(
            *movers(20),
            ("slow", 12 * DAY, "view_item"),
            ("fast", 29 * DAY, "view_item"),
            ("away", 0, "view_item"),
        )
    )
    stalled = persons(store, "interest", "stalled", as_of=at(30))
    assert list(stalled["person_id"]) == ["slow"]
    assert list(persons(store, "INTEREST", "gone", as_of=at(30))["person_id"]) == ["away"]
    assert set(persons(store, "Interest", as_of=at(30))["person_id"]) == {"slow", "fast", "away"}
    everyone = place_persons(store, as_of=at(30))
    for status in ("active", "stalled", "gone"):
        assert (
            len(persons(store, status=status, as_of=at(30))) == (everyone["status"] == status).sum()
        )


def test_persons_rejects_an_unknown_stage_or_status(store) -> None:
    with pytest.raises(ConfigError, match="no stage 'checkout'.*Awareness, Interest"):
        persons(store, "checkout")
    with pytest.raises(ConfigError, match="use one of active, stalled, lapsed"):
        persons(store, status="asleep")


# -- custom stages ---------------------------------------------------------------------------
def test_custom_stages_from_a_toml_file_place_persons(store, tmp_path: Path) -> None:
    path = tmp_path / "shopfunnel.toml"
    path.write_text(
        '[[stages]]\nname = "Browse"\nevents = ["page_view", "view_item", "view_cart"]\n'
        '[[stages]]\nname = "Buy"\nevents = ["purchase"]\n'
        '[[stages]]\nname = "Loyal"\nmin_orders = 3\n'
    )
    model = load_model(path)
    p = place(
        store,
        ("cart", 0, "view_cart"),
        ("two", 0, "purchase", buy("a")),
        ("two", 1, "purchase", buy("b")),
        ("three", 0, "purchase", buy("c")),
        ("three", 1, "purchase", buy("d")),
        ("three", 2, "purchase", buy("e")),
        model=model,
    )
    assert p.loc["cart", "stage"] == "Browse"
    assert p.loc["two", "stage"] == "Buy"
    assert p.loc["three", "stage"] == "Loyal"
    assert p.loc["three", "entered_stage_at"] == pd.Timestamp(
        at(0) + timedelta(minutes=2)
    ).tz_localize(None)
    assert list(stage_summary(store, model=model)["stage"]) == ["Browse", "Buy", "Loyal"]


# -- random logs: a brute-force reference and invariants ---------------------------------------
EVENTS = [
    "page_view",
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "purchase",
    "scroll",
    "referral_purchase",
]
RULES = {
    "min_returns": 2,
    "stalled_after": "1d",
    "gone_after": "2d",
    "min_gaps": 2,
    "lapsed_after": "1d",
    "customer_gone_after": "2d",
    "own_gap_min_orders": 3,
    "min_stalled_after": "2h",
}
VISIT_GAP = 30  # minutes, the default visit_gap


def reference(rows: list[tuple], model: Model, lookback_minutes: float | None) -> pd.DataFrame:
    """Stage and status per person, computed the slow way from the log rows, straight from
    the definitions in docs/stages.md (one person, one stage, one visit at a time)."""
    rules = model.placement
    mapping = model.event_stage()
    minutes_of = [r[1] for r in rows]
    as_of = max(minutes_of)
    start = -math.inf if lookback_minutes is None else as_of - lookback_minutes
    rows = [(i, *r) for i, r in enumerate(rows) if start < r[1] <= as_of]
    n = len(model.stages)
    people = sorted({r[1] for r in rows})
    first: dict[str, list[float]] = {p: [math.inf] * n for p in people}
    times_of: dict[str, list[float]] = {p: [] for p in people}
    orders: dict[str, tuple] = {}
    for i, person, minute, event, *extra in rows:
        times_of[person].append(minute)
        first[person][0] = min(first[person][0], minute)
        if event in mapping:
            k = mapping[event]
            first[person][k] = min(first[person][k], minute)
        if event == "purchase":
            oid = extra[0]["order_id"]
            key = (minute, f"e{i}")
            if oid not in orders or key < orders[oid][0]:
                orders[oid] = (key, person, extra[0]["value"])
    by_person: dict[str, list[tuple]] = {p: [] for p in people}
    for oid, (key, person, value) in orders.items():
        by_person[person].append((key[0], oid, value))
    gaps = []
    for person, own in by_person.items():
        own.sort()
        times = [t for t, _, _ in own]
        gaps += [(b - a) / DAY for a, b in zip(times, times[1:], strict=False)]
        for k, stage in enumerate(model.stages):
            if stage.min_orders is not None and len(times) >= stage.min_orders:
                first[person][k] = min(first[person][k], times[stage.min_orders - 1])
    # Return gaps: the visit that holds the first evidence of a later stage began after the
    # person entered the stage; its gap is the time since the person's previous event.
    returns: list[list[float]] = [[] for _ in range(n)]
    for person in people:
        times = sorted(times_of[person])
        starts = [(b, b - a) for a, b in zip(times, times[1:], strict=False) if b - a > VISIT_GAP]
        for k in range(n - 1):
            later = min(first[person][k + 1 :])
            if not first[person][k] < later < math.inf:
                continue
            began = [(t, g) for t, g in starts if t <= later]
            if began and began[-1][0] > first[person][k]:
                returns[k].append(began[-1][1] / DAY)
    pooled = [g for r in returns for g in r]
    quantiles = [rules.stalled_quantile, rules.gone_quantile]
    stalled_at, gone_at = [], []
    for k in range(n):
        if k < n - 1 and len(returns[k]) >= rules.min_returns:
            stalled, gone = np.quantile(returns[k], quantiles)
        elif len(pooled) >= rules.min_returns:
            stalled, gone = np.quantile(pooled, quantiles)
        else:
            stalled, gone = rules.stalled_after_seconds / 86400, rules.gone_after_seconds / 86400
        stalled = max(stalled, rules.min_stalled_after_seconds / 86400)
        stalled_at.append(stalled)
        gone_at.append(max(gone, stalled))
    enough = len(gaps) >= rules.min_gaps
    store_lapsed = (
        float(np.quantile(gaps, rules.lapsed_quantile))
        if enough
        else rules.lapsed_after_seconds / 86400
    )
    store_gone = (
        float(np.quantile(gaps, rules.gone_quantile))
        if enough
        else rules.customer_gone_after_seconds / 86400
    )
    out = []
    for person in people:
        stage = max(k for k in range(n) if first[person][k] < math.inf)
        own = by_person[person]
        if own:
            times = [t for t, _, _ in own]
            lapsed_after, gone_after = store_lapsed, store_gone
            if len(own) >= rules.own_gap_min_orders:
                mean = (times[-1] - times[0]) / (len(own) - 1) / DAY
                lapsed_after = mean * -math.log(1 - rules.lapsed_quantile)
                gone_after = mean * -math.log(1 - rules.gone_quantile)
            since = (as_of - times[-1]) / DAY
            status = (
                "gone" if since > gone_after else "lapsed" if since > lapsed_after else "active"
            )
        else:
            idle = (as_of - max(times_of[person])) / DAY
            status = (
                "gone"
                if idle > gone_at[stage]
                else "stalled"
                if idle > stalled_at[stage]
                else "active"
            )
        out.append(
            {
                "person_id": person,
                "stage_index": stage,
                "status": status,
                "entered_min": first[person][stage],
                "orders": len(own),
                "revenue": float(sum(v for _, _, v in own)),
            }
        )
    return pd.DataFrame(out).set_index("person_id")


@st.composite
def random_logs(draw) -> list[tuple]:
    n = draw(st.integers(min_value=1, max_value=30))
    rows = []
    for _ in range(n):
        person = draw(st.sampled_from(["a", "b", "c", "d", "e"]))
        # spread over six days, or bunched into visits (gaps around the 30-minute visit gap)
        minute = draw(
            st.one_of(
                st.integers(min_value=0, max_value=6 * DAY),
                st.builds(
                    lambda a, b: a + b,
                    st.sampled_from([0, 90, 2 * DAY, 5 * DAY]),
                    st.integers(min_value=0, max_value=70),
                ),
            )
        )
        event = draw(st.sampled_from(EVENTS))
        if event == "purchase":
            order = f"{person}-{draw(st.integers(min_value=0, max_value=3))}"
            rows.append(
                (person, minute, event, {"order_id": order, "value": draw(st.integers(1, 50))})
            )
        else:
            rows.append((person, minute, event))
    return rows


_SHARED: list[Store] = []


def fresh(rows: list[tuple]) -> Store:
    """One shared in-memory store, emptied and refilled with ``rows`` for each example.

    Rows are written straight into ``events`` (person_id = anonymous_id, no stitching) to
    keep hundreds of hypothesis examples fast; the loading path is covered above. The
    generation moves on, so caches of the events (the timeline) see the new rows.
    """
    if not _SHARED:
        _SHARED.append(Store(":memory:"))
    s = _SHARED[0]
    frame = log(*rows)
    for col in ("order_id", "value"):
        if col not in frame:
            frame[col] = None
    frame["ts"] = frame["ts"].dt.tz_localize(None)
    s.db.execute("DELETE FROM events")
    s.db.register("__rows", frame)
    try:
        s.db.execute(
            "INSERT INTO events (event_id, ts, event, anonymous_id, person_id, channel, order_id, "
            "value) SELECT event_id, ts, event, anonymous_id, anonymous_id, 'direct', order_id, "
            "CAST(value AS DECIMAL(18,2)) FROM __rows"
        )
    finally:
        s.db.unregister("__rows")
    s._bump_generation()  # a write behind the store's back must say so, as erase does
    return s


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=random_logs(), lookback_days=st.sampled_from([None, 1, 3]))
def test_placement_matches_a_brute_force_reference_on_random_logs(rows, lookback_days) -> None:
    model = small_model(**RULES)
    s = fresh(rows)
    lookback = "3650d" if lookback_days is None else f"{lookback_days}d"
    placed = placement(s, model=model, lookback=lookback)
    got = placed.persons.set_index("person_id")
    summary = stage_summary(s, placed=placed)
    want = reference(rows, model, None if lookback_days is None else lookback_days * DAY)
    assert sorted(got.index) == sorted(want.index)
    got = got.loc[want.index]
    assert list(got["stage_index"]) == list(want["stage_index"])
    assert list(got["status"]) == list(want["status"])
    assert list(got["orders"]) == list(want["orders"])
    assert list(got["revenue"]) == pytest.approx(list(want["revenue"]))
    entered = [
        pd.Timestamp(T0 + timedelta(minutes=m)).tz_localize(None) for m in want["entered_min"]
    ]
    assert list(got["entered_stage_at"]) == entered
    # Invariants: reached never grows along the stages; statuses partition each stage.
    assert (np.diff(summary["reached"].to_numpy()) <= 0).all()
    assert (
        summary[["active", "stalled", "lapsed", "gone"]].sum(axis=1) == summary["at_stage"]
    ).all()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=random_logs())
def test_everyone_at_a_stage_has_evidence_of_it_and_buyers_bought(rows) -> None:
    model = Model()
    got = place_persons(fresh(rows), model=model).set_index("person_id")
    events_of: dict[str, set[str]] = {}
    orders_of: dict[str, set[str]] = {}
    for person, _, event, *extra in rows:
        events_of.setdefault(person, set()).add(event)
        if event == "purchase":
            orders_of.setdefault(person, set()).add(extra[0]["order_id"])
    purchase, retention = model.stage_index("purchase"), model.stage_index("retention")
    decision = model.stage_index("decision")
    later_events = {e for s in model.stages[decision:] for e in s.events}
    for person, row in got.iterrows():
        stage = model.stages[row["stage_index"]]
        has = events_of[person]
        assert (
            has & set(stage.events)
            or row["stage_index"] == 0
            or (stage.min_orders and len(orders_of.get(person, ())) >= stage.min_orders)
        )
        if row["stage_index"] >= decision:
            assert has & later_events
        if row["stage_index"] == purchase:
            assert "purchase" in has
        if row["stage_index"] == retention:
            assert len(orders_of.get(person, ())) >= 2 or "referral_purchase" in has
        if row["status"] == "lapsed":
            assert row["orders"] >= 1
        if row["status"] == "stalled":
            assert row["orders"] == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=random_logs(), cut=st.integers(min_value=0, max_value=6 * DAY))
def test_with_a_long_lookback_nobody_moves_back_a_stage_in_the_flow(rows, cut) -> None:
    model = small_model(**RULES)
    s = fresh(rows)
    end = max(r[1] for r in rows)
    start = T0 + timedelta(minutes=min(cut, end - 1) if end > 0 else -1)
    moves = stage_transitions(s, start, T0 + timedelta(minutes=end), model=model, lookback="3650d")
    rank = {name: i for i, name in enumerate(model.stage_names)}
    purchase = rank["Purchase"]
    for a, b in zip(moves["from"], moves["to"], strict=True):
        assert b != "not seen"  # nothing leaves a ten-year lookback
        if a in rank and b in rank:
            assert rank[b] >= rank[a]
        if a == "lapsed" and b in rank:
            assert rank[b] >= purchase
    matrix = stage_flow(s, start, T0 + timedelta(minutes=end), model=model, lookback="3650d")
    assert matrix.to_numpy().sum() == len(moves) == len({r[0] for r in rows})
    for (a, b), count in moves.groupby(["from", "to"]).size().items():
        assert matrix.loc[a, b] == count


# -- CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def db_file(tmp_path: Path) -> str:
    path = str(tmp_path / "shop.duckdb")
    with Store(path) as s:
        s.load(
            log(
                *movers(20),
                ("slow", 0, "view_item"),
                ("D", 0, "purchase", buy("d1", 12.5)),
                ("D", DAY, "purchase", buy("d2", 7.5)),
            )
        )
    return path


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result


def test_cli_stages_json_holds_a_row_per_stage(db_file: str) -> None:
    result = run("stages", "--db", db_file, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [s["stage"] for s in data["stages"]] == [
        "Awareness",
        "Interest",
        "Decision",
        "Purchase",
        "Retention",
    ]
    by = {s["stage"]: s for s in data["stages"]}
    assert by["Awareness"]["reached"] == 22 and by["Awareness"]["conversion_from_previous"] is None
    assert by["Decision"]["at_stage"] == 20 and by["Retention"]["at_stage"] == 1
    assert data["persons"] == 22


def test_cli_stages_table_shows_every_stage(db_file: str) -> None:
    result = run("stages", "--db", db_file)
    assert result.exit_code == 0, result.output
    for name in (
        "Awareness",
        "Interest",
        "Decision",
        "Purchase",
        "Retention",
        "gone",
        "Prospects (no order)",
        "Customers: lapsed",
    ):
        assert name in result.output


def test_cli_persons_writes_the_audience_as_csv(db_file: str, tmp_path: Path) -> None:
    out = tmp_path / "gone.csv"
    result = run(
        "persons",
        "--db",
        db_file,
        "--stage",
        "interest",
        "--status",
        "gone",
        "--format",
        "csv",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame["person_id"]) == ["slow"]
    assert {"stage", "status", "days_in_stage", "first_channel", "orders", "revenue"} <= set(
        frame.columns
    )


def test_cli_flow_json_is_a_square_matrix(db_file: str) -> None:
    result = run(
        "flow", "--db", db_file, "--from", "2024-03-05", "--to", "2024-03-25", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["rows"]) == len(data["states"]) == 7
    total = sum(row[s] for row in data["rows"] for s in data["states"])
    assert total == 22


def test_cli_reports_a_bad_stage_and_a_bad_model_file_cleanly(db_file: str, tmp_path: Path) -> None:
    result = run("persons", "--db", db_file, "--stage", "checkout")
    assert result.exit_code == 1 and "no stage 'checkout'" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[[stages]]\nname = "A"\nevnts = ["x"]\n')
    result = run("stages", "--db", db_file, "--model", str(bad))
    assert result.exit_code == 1 and "stages[0].evnts: unknown key" in result.output


def test_bad_dates_and_lookbacks_are_config_errors(store) -> None:
    store.load(log(("a", 0, "page_view")))
    with pytest.raises(ConfigError, match="as_of 'someday' is not a date"):
        place_persons(store, as_of="someday")
    with pytest.raises(ConfigError, match="duration '5x' is not valid"):
        place_persons(store, lookback="5x")


def test_a_time_zone_in_as_of_is_converted_to_utc(store) -> None:
    store.load(log(("a", 0, "view_item"), ("a", 60, "add_to_cart")))  # 12:00 and 13:00 UTC
    p = place_persons(store, as_of="2024-03-01T14:30+02:00").set_index("person_id")
    assert p.loc["a", "stage"] == "Interest"  # 12:30 UTC: before the add_to_cart


def test_cli_notes_sections_it_does_not_use(db_file: str, tmp_path: Path) -> None:
    path = tmp_path / "shopfunnel.toml"
    path.write_text("[playbook]\nenabled = true\n")
    result = run("stages", "--db", db_file, "--model", str(path), "--format", "json")
    assert result.exit_code == 0
    assert "section [playbook] is not used" in result.stderr
    assert json.loads(result.stdout)["model"] == str(path)


def test_cli_persons_table_shows_the_first_rows_and_says_how_many(db_file: str) -> None:
    result = run("persons", "--db", db_file)
    assert result.exit_code == 0, result.output
    assert "22 persons" in result.output


# -- consistency with the events (the funnel's view) on a larger store -------------------------
def generated_log(n_events: int, seed: int) -> pd.DataFrame:
    """A random log with funnel-like event frequencies over 60 days; each purchase is its own
    order, and persons with several purchases are repeat customers."""
    rng = np.random.default_rng(seed)
    names = np.array(
        ["page_view", "view_item", "search", "add_to_cart", "begin_checkout", "purchase", "scroll"]
    )
    event = names[rng.choice(len(names), n_events, p=[0.4, 0.25, 0.05, 0.12, 0.06, 0.07, 0.05])]
    person = rng.integers(0, n_events // 8, n_events).astype(str)
    minutes = rng.integers(0, 60 * DAY, n_events)
    order = np.char.add("o", np.arange(n_events).astype(str))
    return pd.DataFrame(
        {
            "event_id": np.char.add("e", np.arange(n_events).astype(str)),
            "ts": pd.to_datetime(T0) + pd.to_timedelta(minutes, unit="m"),
            "event": event,
            "anonymous_id": np.char.add("p", person),
            "order_id": np.where(event == "purchase", order, None),
            "value": np.where(event == "purchase", 20.0, np.nan),
        }
    )


def assert_counts_agree_with_sql(store: Store, as_of, lookback_days: int) -> None:
    """Persons who reached each default stage, counted straight from the events in SQL."""
    summary = stage_summary(store, as_of=as_of, lookback=f"{lookback_days}d").set_index("stage")
    model = Model()
    window = [_naive(as_of) - timedelta(days=lookback_days), _naive(as_of)]

    def persons_with(events: list[str]) -> int:
        marks = ", ".join("?" * len(events))
        return store.db.scalar(
            f"SELECT count(DISTINCT person_id) FROM events WHERE ts > ? AND ts <= ? "
            f"AND event IN ({marks})",
            [*window, *events],
        )

    everyone = store.db.scalar(
        "SELECT count(DISTINCT person_id) FROM events WHERE ts > ? AND ts <= ?", window
    )
    repeaters = store.db.scalar(
        "SELECT count(*) FROM (SELECT person_id FROM orders WHERE ts > ? AND ts <= ? "
        "GROUP BY person_id HAVING count(*) >= 2)",
        window,
    )
    referrers = persons_with(["referral_purchase"])
    assert referrers == 0, "these checks assume a log without referral events"
    later = lambda k: [e for s in model.stages[k:] for e in s.events]  # noqa: E731
    assert summary.loc["Awareness", "reached"] == everyone
    assert summary.loc["Interest", "reached"] == persons_with(later(1))
    assert summary.loc["Decision", "reached"] == persons_with(later(2))
    # everyone at Purchase or beyond bought
    assert summary.loc["Purchase", "reached"] == persons_with(["purchase"])
    assert summary.loc["Retention", "reached"] == repeaters


def _naive(value):
    """The time as a naive UTC datetime, like the store's ``ts``."""
    ts = pd.Timestamp(value)
    return (ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts).to_pydatetime()


def test_stage_counts_agree_with_plain_sql_over_the_events(store) -> None:
    store.load(generated_log(20_000, seed=3))
    assert_counts_agree_with_sql(store, at(45), 30)


@pytest.mark.slow
def test_stage_counts_agree_with_plain_sql_on_the_sample_store(tmp_path: Path) -> None:
    sample = pytest.importorskip("shopfunnel.sample")
    path = sample.write_sample(tmp_path / "sample.parquet", 200_000, seed=11)
    with Store(":memory:") as s:
        s.load(path)
        last = pd.Timestamp(s.db.scalar("SELECT max(ts) FROM events"))
        assert_counts_agree_with_sql(s, last, 365)
        assert_counts_agree_with_sql(s, last - pd.Timedelta(days=20), 30)


def test_stage_counts_are_consistent_with_the_funnel(store) -> None:
    from shopfunnel.funnel.api import funnel

    store.load(generated_log(20_000, seed=5))
    summary = stage_summary(store, lookback="3650d").set_index("stage")
    bought = funnel(store, ["purchase"], window="3650d").steps["persons"].iloc[0]
    assert summary.loc["Purchase", "reached"] == bought
    steps = funnel(store, list(Model().funnel.steps), window="3650d").steps
    persons_at = dict(zip(steps["event"], steps["persons"], strict=True))
    assert persons_at["view_item"] <= summary.loc["Interest", "reached"]
    assert persons_at["add_to_cart"] <= summary.loc["Decision", "reached"]
    assert persons_at["purchase"] <= summary.loc["Purchase", "reached"]
