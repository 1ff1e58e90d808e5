"""The timeline: a funnel counted over it equals the same funnel counted by SQL.

The SQL path (DuckDB reads, codes and sorts the rows) is the reference: it is itself
checked against chDB's ``windowFunnel`` and brute forces in ``test_funnel_reference``.
Randomized logs here have many ties (events at the same second, in any order), several
sessions per person, missing sessions and channels, so that the timeline's own row
selection, tie order and session grouping are what is tested.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from conftest import log
from shopfunnel.funnel import timeline_path
from shopfunnel.funnel.api import Step, funnel
from shopfunnel.funnel.engine import FunnelPlan, LocalEngine, timeline_fits
from shopfunnel.store.store import Store
from shopfunnel.store.timeline import DAY_US, is_current
from shopfunnel.store.timeline_select import period_starts

ALPHABET = ["a", "b", "c", "d", "x"]
CHANNELS = ["email", "search", None]
T0 = datetime(2024, 1, 27)  # weeks and months turn within the logs


@st.composite
def logs(draw, max_persons: int = 12, max_events: int = 12):
    rows = []
    shared = draw(st.booleans())  # a session id used by several persons (bad data)
    for p in range(draw(st.integers(1, max_persons))):
        for _ in range(draw(st.integers(1, max_events))):
            minute = draw(st.integers(0, 12)) * draw(st.sampled_from([1, 60, 600]))
            rows.append(
                {
                    "anonymous_id": f"p{p}",
                    "ts": pd.Timestamp(T0) + pd.Timedelta(minutes=minute),
                    "event": draw(st.sampled_from(ALPHABET)),
                    "session_id": draw(
                        st.sampled_from([f"s{p}a", f"s{p}b", f"s{p % 3 if shared else p}c", None])
                    ),
                    # events at one instant share a channel: which of several tied events
                    # gives the breakdown value is not defined (on either path)
                    "channel": CHANNELS[minute % 3],
                }
            )
    return pd.DataFrame(rows).sample(frac=1, random_state=draw(st.integers(0, 9)))


FILTERED = [  # steps with filters on a timeline column, as a marketer writes them
    Step("b", where={"channel": "email"}),
    Step("c", where={"channel": ["email", "search"]}),
    Step("a", where={"channel": None}),
    Step("a", where={"channel": "nowhere"}),
]


@st.composite
def plans(draw):
    order = draw(st.sampled_from(["ordered", "strict", "any"]))
    steps = draw(
        st.sampled_from([["a", "b", "c"], ["a", "b", "a", "c"], ["b", "a"], ["a", "b", "c", "d"]])
    )
    if draw(st.booleans()):  # one step filtered on its row's channel
        steps = list(steps)
        steps[draw(st.integers(0, len(steps) - 1))] = draw(st.sampled_from(FILTERED))
    kw = {
        "order": order,
        "window": draw(st.sampled_from(["5m", "1h", "1d", "30d"])),
        "count_by": draw(st.sampled_from(["person", "session"])),
        "by": draw(st.sampled_from([None, "channel"])),
        "attribution": draw(st.sampled_from(["first", "last", "per_step"])),
        "trend": draw(st.sampled_from([None, "day", "week", "month"])),
        "open_entry": order != "any" and draw(st.booleans()),
    }
    if order != "any":
        if draw(st.booleans()):
            kw["exclusions"] = [
                (
                    draw(st.sampled_from(["x", Step("x", where={"channel": "search"})])),
                    1,
                    len(steps),
                )
            ]
        if len(steps) >= 3 and draw(st.booleans()):
            kw["optional_steps"] = [2]
    return steps, kw


def both(df: pd.DataFrame, steps: list[str], **kw):
    # random logs may lack a step's event: that step counts nobody, on purpose
    sql = funnel(df, steps, engine=LocalEngine(df, timeline=False), allow_unknown=True, **kw)
    fast = funnel(df, steps, engine=LocalEngine(df, timeline=True), allow_unknown=True, **kw)
    return sql, fast


def assert_same(sql, fast) -> None:
    pd.testing.assert_frame_equal(sql.steps, fast.steps)
    pd.testing.assert_frame_equal(sql.total_conversions, fast.total_conversions)
    for name in ("breakdown", "trend"):
        a, b = getattr(sql, name), getattr(fast, name)
        assert (a is None) == (b is None)
        if a is not None:
            pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    pd.testing.assert_frame_equal(sql.time_to_convert(), fast.time_to_convert())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=logs(), plan=plans())
def test_a_funnel_over_the_timeline_equals_the_sql_path(df, plan) -> None:
    steps, kw = plan
    note(f"steps={steps} kw={kw}\n{df.sort_values(['anonymous_id', 'ts']).to_string()}")
    assert_same(*both(df, steps, **kw))


def test_events_at_one_instant_are_taken_in_step_order_whatever_their_names() -> None:
    # "z_view" sorts after "a_cart" by name; the timeline must still take the view first
    df = log(("p", 0, "z_view"), ("p", 0, "a_cart"), ("p", 0, "m_buy"))
    sql, fast = both(df, ["z_view", "a_cart", "m_buy"])
    assert fast.steps["persons"].tolist() == [1, 1, 1]
    assert_same(sql, fast)


def test_in_strict_mode_an_event_failing_its_filter_is_an_interruption() -> None:
    # x on email is not the excluded "x on search": it is any other event, and breaks b → a
    df = log(
        ("p", 0, "x", {"channel": "email"}),
        ("p", 0, "b", {"channel": "email"}),
        ("p", 1, "a", {"channel": "search"}),
    )
    sql, fast = both(
        df, ["b", "a"], order="strict", exclusions=[(Step("x", where={"channel": "search"}), 1, 2)]
    )
    assert fast.steps["persons"].tolist() == sql.steps["persons"].tolist() == [1, 0]
    assert_same(sql, fast)


def test_the_persons_who_dropped_are_named_as_on_the_sql_path() -> None:
    df = log(("p", 0, "a"), ("p", 1, "b"), ("q", 0, "a"), ("r", 5, "a"), ("r", 6, "b"))
    sql, fast = both(df, ["a", "b"])
    assert sorted(fast.dropped(1)["person_id"]) == sorted(sql.dropped(1)["person_id"]) == ["q"]


def test_filters_on_the_timelines_columns_run_on_it_and_others_on_sql() -> None:
    df = log(
        ("p", 0, "a", {"device": "mobile"}),
        ("p", 1, "b", {"device": "mobile"}),
        ("q", 0, "a", {"device": "desktop"}),
        ("q", 1, "b", {"device": "desktop"}),
    )
    steps = [Step("a", where={"device": "mobile"}), "b"]
    assert timeline_fits(FunnelPlan((Step("a", where={"device": "x"}).condition(),), 1))
    sql, fast = both(df, steps, by="device")
    assert fast.steps["persons"].tolist() == [1, 1]
    assert_same(sql, fast)
    held = FunnelPlan((Step("a").condition(),), 1, hold="device")
    assert not timeline_fits(held)
    assert_same(*both(df, ["a", "b"], hold="device"))


def test_week_and_month_periods_start_as_duckdb_truncates_them() -> None:
    import duckdb

    rng = np.random.default_rng(3)
    t = rng.integers(-40 * 365 * DAY_US, 80 * 365 * DAY_US, 2000)
    con = duckdb.connect()
    for trend in ("day", "week", "month"):
        expected = con.execute(
            f"SELECT epoch_us(date_trunc('{trend}', make_timestamp(x))) FROM "
            "(SELECT unnest(?) AS x)",
            [t.tolist()],
        ).fetchall()
        assert period_starts(t, trend).tolist() == [r[0] for r in expected]


# -- a store's timeline ---------------------------------------------------------------------
def test_a_store_keeps_its_timeline_beside_the_file_and_extends_it_after_a_load(tmp_path):
    path = tmp_path / "s.duckdb"
    store = Store(path)
    store.load(log(("p", 0, "a"), ("p", 1, "b"), ("q", 0, "a")))
    assert not is_current(store)
    assert funnel(store, ["a", "b"]).steps["persons"].tolist() == [2, 1]
    folder = tmp_path / "s.duckdb.timeline"
    assert (folder / "meta.json").exists() and is_current(store)
    store.load(log(("q", 3, "b")).assign(event_id="new"))
    # the load wrote a delta beside the timeline: current without a rebuild (ADR 0150)
    assert (tmp_path / "s.duckdb.timeline.delta" / "000000000002.npz").exists()
    assert is_current(store)
    assert funnel(store, ["a", "b"]).steps["persons"].tolist() == [2, 2]
    store.close()
    reopened = Store(path, read_only=True)
    engine = LocalEngine(reopened)
    assert engine.timeline().key.endswith(":2:4")  # read back, not rebuilt
    assert funnel(reopened, ["a", "b"], engine=engine).steps["persons"].tolist() == [2, 2]
    reopened.close()


def test_a_build_killed_halfway_leaves_nothing_behind_after_the_next_build(tmp_path) -> None:
    import os

    path = tmp_path / "s.duckdb"
    left = tmp_path / "s.duckdb.timeline.dead0001.tmp"  # what a killed build leaves
    left.mkdir()
    os.utime(left, (0, 0))
    recent = tmp_path / "s.duckdb.timeline.live0001.tmp"  # another process building now
    recent.mkdir()
    with Store(path) as store:
        store.load(log(("p", 0, "a"), ("p", 1, "b")))
        assert funnel(store, ["a", "b"]).steps["persons"].tolist() == [1, 1]
    assert not left.exists() and recent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "s.duckdb",
        "s.duckdb.timeline",
        "s.duckdb.timeline.live0001.tmp",
    ]


def test_a_stale_timeline_on_disk_is_not_used(tmp_path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        store.load(log(("p", 0, "a"), ("p", 1, "b")))
        funnel(store, ["a", "b"])
    with Store(path) as other:  # a second process adds events
        other.load(log(("q", 0, "a")).assign(event_id="q0"))
    with Store(path, read_only=True) as store:
        assert funnel(store, ["a", "b"]).steps["persons"].tolist() == [2, 1]


def test_chunks_cover_the_timeline_and_never_split_a_person(store: Store) -> None:
    from shopfunnel.store.timeline import chunks

    store.load(log(*[(f"p{i % 7}", i, "a") for i in range(50)]))
    tl = LocalEngine(store).timeline()
    for size in (1, 3, 8, 49, 50, 1000):
        ranges = chunks(tl, size)
        assert ranges[0][0] == 0 and ranges[-1][1] == len(tl) == 50
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        assert all(tl.person[b - 1] != tl.person[b] for _, b in ranges[:-1])


def test_an_empty_store_counts_nobody(store: Store, tmp_path) -> None:
    assert funnel(store, ["a", "b"], allow_unknown=True).steps["persons"].tolist() == [0, 0]
    with Store(tmp_path / "empty.duckdb") as on_disk:
        assert funnel(
            on_disk, ["a", "b"], by="channel", allow_unknown=True, count_by="session"
        ).steps["persons"].tolist() == [0, 0]


def test_a_store_in_memory_keeps_its_timeline_in_memory(store: Store) -> None:
    store.load(log(("p", 0, "a"), ("p", 1, "b")))
    engine = LocalEngine(store)
    first = engine.timeline()
    assert LocalEngine(store).timeline() is first


@pytest.mark.parametrize("count_by", ["person", "session"])
def test_sample_store_funnels_agree_on_both_paths(count_by, monkeypatch, tmp_path) -> None:
    # small chunks read from the saved files: persons are counted across many chunks
    monkeypatch.setattr(timeline_path, "TIMELINE_CHUNK_ROWS", 997)
    from shopfunnel.sample import generate_sample

    store = Store(tmp_path / "s.duckdb")
    store.load(generate_sample(20_000, seed=4))
    steps = ["view_item", "add_to_cart", "begin_checkout", "purchase"]
    for kw in ({}, {"by": "channel"}, {"order": "strict"}, {"trend": "week", "by": "device"}):
        sql = funnel(
            store, steps, count_by=count_by, engine=LocalEngine(store, timeline=False), **kw
        )
        fast = funnel(store, steps, count_by=count_by, **kw)
        assert_same(sql, fast)
