"""The diagnosis's sessions from one pass over the timeline equal the SQL that defines them.

:class:`SessionLevels` takes its table from the timeline (:mod:`shopfunnel.store.session_facts`)
when the timeline can serve. On random logs (persons whose sessions interleave, span the
window's edges, carry device/channel/campaign/country on some events only, purchases with
repeated or missing order ids) the table, the persons per session, the correlation's feature
counts and the checkout rows must equal those of the SQL path (``from_timeline=False``);
a store the timeline cannot serve (an event without a session) falls back to SQL.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.diagnosis.checkout import checkout_sessions
from shopfunnel.diagnosis.correlation import feature_counts
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.diagnosis.steps import DEFAULT_STEPS
from shopfunnel.errors import ShopfunnelError
from shopfunnel.store import session_facts
from shopfunnel.store import timeline as timeline_store
from shopfunnel.store.store import Store

T0 = datetime(2024, 3, 30, 20, 0)
START, END = T0 + timedelta(hours=6), T0 + timedelta(days=3)
# the diagnosis's steps, the page views, and one event that is a feature
EVENTS = ["page_view", *(s.event for s in DEFAULT_STEPS), "search"]
_SHARED: list[Store] = []

row = st.tuples(
    st.sampled_from(["p1", "p2", "p3", "p4"]),  # person
    st.integers(0, 4 * 24 * 60),  # minutes after T0 (before, inside and after the window)
    st.sampled_from(EVENTS),
    st.sampled_from(["s1", "s2", "s3"]),  # session, within the person
    st.sampled_from(["mobile", "desktop", None]),
    st.sampled_from(["email", "direct", None]),
    st.sampled_from(["spring", None]),
    st.sampled_from(["DE", "(none)", None]),
    st.sampled_from(["o1", "o2", None]),
    st.sampled_from([None, 10.5, 3.25]),
    st.sampled_from([None, {"payment_failed": "true"}, {"coupon": "x"}]),
)


def fresh(rows: list[tuple], *, missing_session: bool = False) -> Store:
    """A store holding ``rows`` (each at its own instant), with its timeline built."""
    if not _SHARED:
        _SHARED.append(Store(":memory:"))
    s = _SHARED[0]
    frame = pd.DataFrame(
        [
            {
                "event_id": f"e{i}",
                "ts": T0 + timedelta(minutes=m, seconds=i),
                "event": ev,
                "anonymous_id": p,
                "person_id": p,
                "session_id": None if missing_session and i == 0 else f"{p}-{sess}",
                "device": dev,
                "channel": ch,
                "utm_campaign": camp,
                "country": cty,
                "order_id": oid if ev == "purchase" else None,
                "value": val,
                "properties": None if props is None else json.dumps(props),
            }
            for i, (p, m, ev, sess, dev, ch, camp, cty, oid, val, props) in enumerate(rows)
        ]
    )
    s.db.execute("DELETE FROM events")
    s.db.register("__rows", frame)
    try:
        names = ", ".join(frame.columns)
        s.db.execute(
            f"INSERT INTO events ({names}) SELECT {names.replace('properties', 'properties::JSON')} FROM __rows"
        )
    finally:
        s.db.unregister("__rows")
    s._bump_generation()
    timeline_store.of_store(s)  # the funnel would build it
    return s


def table(levels: SessionLevels) -> pd.DataFrame:
    text = ", ".join(
        f"CAST({c} AS VARCHAR) AS {c}" for c in ("device", "channel", "campaign", "country")
    )
    cols = f"started_at, hour, day, {text}, level, orders, revenue, excluded"
    return levels.db.df(f"SELECT {cols} FROM {levels.table} ORDER BY ALL")


def sorted_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(df.columns), ignore_index=True)


@pytest.mark.parametrize("window", [(START, END), (None, None)])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, min_size=1, max_size=40))
def test_sessions_from_the_timeline_equal_the_sql(window, rows) -> None:
    s = fresh(rows)
    start, end = window
    with (
        SessionLevels(s, start=start, end=end, from_timeline=True) as fast,
        SessionLevels(s, start=start, end=end, from_timeline=False) as sql,
    ):
        assert fast.session_column == "session" and sql.session_column == "session_id"
        pd.testing.assert_frame_equal(table(fast), table(sql))
        assert (fast.first_day, fast.last_day, fast.sessions) == (
            sql.first_day,
            sql.last_day,
            sql.sessions,
        )
        for level in (0, 2):
            a = fast.persons_per_session(T0, T0 + timedelta(days=5), level)
            b = sql.persons_per_session(T0, T0 + timedelta(days=5), level)
            assert a == b or (a != a and b != b)  # equal, or both NaN
        for by, grain, top in [
            ((), None, None),
            (("device",), "day", None),
            (("channel", "campaign"), "hour", None),
            (("country", "device"), None, {"country": 1}),
        ]:
            pd.testing.assert_frame_equal(
                fast.counts(by=by, grain=grain, top=top), sql.counts(by=by, grain=grain, top=top)
            )
        for col in ("device", "campaign", "country"):
            assert fast.top_values(col, 1) == sql.top_values(col, 1)
        for levels in (fast, sql):
            levels.exclude(T0, T0 + timedelta(days=2), device="mobile")
        pd.testing.assert_frame_equal(fast.counts(by=["channel"]), sql.counts(by=["channel"]))
        # the analyses that join the events to the table meet the same sessions
        pd.testing.assert_frame_equal(
            sorted_frame(feature_counts(s, fast)), sorted_frame(feature_counts(s, sql))
        )
        a = checkout_sessions(s, fast).drop(columns="session_id")
        b = checkout_sessions(s, sql).drop(columns="session_id")
        pd.testing.assert_frame_equal(sorted_frame(a), sorted_frame(b))


def test_a_session_takes_the_first_value_seen_and_its_furthest_step_by_hand() -> None:
    rows = [
        ("p1", 400, "page_view", "s1", None, "email", None, None, None, None, None),
        ("p1", 401, "view_item", "s1", "mobile", "direct", None, "DE", None, None, None),
        ("p1", 402, "purchase", "s1", "desktop", None, "spring", None, "o1", 10.5, None),
        ("p1", 403, "purchase", "s1", None, None, None, None, "o1", 3.25, None),
        ("p1", 404, "page_view", "s2", None, None, None, None, None, None, None),
    ]
    s = fresh(rows)
    with SessionLevels(s, from_timeline=True) as levels:
        got = table(levels)
    assert got[["device", "channel", "campaign", "country", "level"]].values.tolist() == [
        ["mobile", "email", "spring", "DE", 2],  # steps: view_item, purchase
        ["(none)", "(none)", "(none)", "(none)", 0],
    ]
    assert got["orders"].tolist() == [1, 0] and got["revenue"].tolist() == [13.75, 0.0]


def test_an_event_without_a_session_sends_the_table_to_sql() -> None:
    rows = [
        ("p1", 400, "page_view", "s1", None, None, None, None, None, None, None),
        ("p1", 401, "view_item", "s1", None, None, None, None, None, None, None),
    ]
    s = fresh(rows, missing_session=True)
    assert session_facts.sessions(s, ["view_item"], None, None) is None
    with SessionLevels(s) as levels:
        assert levels.session_column == "session_id" and levels.sessions == 2
    with pytest.raises(ShopfunnelError, match="timeline cannot give the sessions"):
        SessionLevels(s, from_timeline=True)


def test_sessions_are_kept_beside_the_timeline_for_the_next_process_until_a_load(
    tmp_path, monkeypatch
) -> None:
    from conftest import log

    db = tmp_path / "s.duckdb"
    rows = (
        ("a", 0, "page_view", {"session_id": "s1", "device": "mobile"}),
        ("a", 60, "view_item", {"session_id": "s1"}),
        ("b", 90, "add_to_cart", {"session_id": "s2", "channel": "email"}),
    )
    with Store(db) as s:
        s.load(log(*rows))
        timeline_store.of_store(s)  # the funnel would build it
        with SessionLevels(s, from_timeline=True) as levels:
            made = table(levels)
    assert (timeline_store.folder_for(str(db)) / "sessions.arrow").is_file()

    def no_pass(*args, **kwargs):
        raise AssertionError("passed over the timeline again")

    with Store(db, read_only=True) as s, monkeypatch.context() as m:
        m.setattr(session_facts, "facts", no_pass)
        with SessionLevels(s, from_timeline=True) as levels:  # another process: the saved rows
            pd.testing.assert_frame_equal(table(levels), made)

    with Store(db) as s:
        s.load(log(("c", 100, "view_item", {"session_id": "s3", "event_id": "e-new"})))
        timeline_store.of_store(s)
        with SessionLevels(s, from_timeline=True) as levels:  # new events: a new pass
            assert levels.sessions == 3
