"""The store's counts from one pass over the timeline equal the SQL that defines them.

:mod:`shopfunnel.store.counts` answers ``Store.info`` and ``summary.daily_activity`` from
the timeline; on random logs (persons whose sessions interleave, span midnight or are
missing, channels missing or literally called "unassigned", events without a name,
purchases with and without order ids) both must equal their SQL reference
(:meth:`Store.info_sql`, :func:`summary.daily_activity_sql`), and a store the timeline
cannot serve (a session shared by two persons) must fall back to SQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.store import counts, summary
from shopfunnel.store import timeline as timeline_store
from shopfunnel.store.store import Store

T0 = datetime(2024, 3, 30, 20, 0)
_SHARED: list[Store] = []

row = st.tuples(
    st.sampled_from(["p1", "p2", "p3", "p4"]),  # person
    st.integers(0, 4 * 24 * 60),  # minutes after T0 (several midnights)
    st.sampled_from(["page_view", "view_item", "purchase", None]),
    st.sampled_from(["s1", "s2", "s3", None]),  # session (within the person: see below)
    st.sampled_from(["email", "direct", "unassigned", None]),
    st.sampled_from(["o1", "o2", None]),
    st.sampled_from([None, 10.5, 3.25]),
)


def fresh(rows: list[tuple], *, share_sessions: bool = False) -> Store:
    """A store holding ``rows``, with its timeline built. Session ids are made per person
    (every session belongs to one person) unless ``share_sessions``."""
    if not _SHARED:
        _SHARED.append(Store(":memory:"))
    s = _SHARED[0]
    frame = pd.DataFrame(
        [
            {
                "event_id": f"e{i}",
                "ts": T0 + timedelta(minutes=m),
                "event": ev,
                "anonymous_id": p,
                "person_id": p,
                "session_id": None if sess is None else (sess if share_sessions else f"{p}-{sess}"),
                "channel": ch,
                "order_id": oid,
                "value": val,
            }
            for i, (p, m, ev, sess, ch, oid, val) in enumerate(rows)
        ]
    )
    s.db.execute("DELETE FROM events")
    s.db.register("__rows", frame)
    try:
        s.db.execute(
            "INSERT INTO events (event_id, ts, event, anonymous_id, person_id, session_id, "
            "channel, order_id, value) SELECT event_id, ts, event, anonymous_id, person_id, "
            "session_id, channel, order_id, value FROM __rows"
        )
    finally:
        s.db.unregister("__rows")
    s._bump_generation()
    timeline_store.of_store(s)  # the funnel would build it
    return s


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, min_size=1, max_size=40))
def test_info_and_daily_activity_from_the_timeline_equal_the_sql(rows) -> None:
    s = fresh(rows)
    assert counts.of_store(s) is not None  # the timeline path is the one under test
    assert s.info(timeline_pass=True) == s.info_sql()
    pd.testing.assert_frame_equal(summary.daily_activity(s), summary.daily_activity_sql(s))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, min_size=2, max_size=20))
def test_a_session_of_two_persons_is_counted_by_sql(rows) -> None:
    rows = [
        ("p1", 0, "page_view", "s1", None, None, None),
        ("p2", 5, "page_view", "s1", None, None, None),
        *rows,
    ]
    s = fresh(rows, share_sessions=True)
    assert counts.of_store(s) is None
    assert s.info(timeline_pass=True) == s.info_sql()
    pd.testing.assert_frame_equal(summary.daily_activity(s), summary.daily_activity_sql(s))


def test_counts_by_hand() -> None:
    """Two persons over two days: p1 has session a (two events, across midnight) and an
    event without a session; p2 has sessions b and c interleaved on day one."""
    rows = [
        ("p1", 0, "page_view", "a", "email", None, None),  # 20:00 day 1
        ("p1", 300, "purchase", "a", "email", "o1", 10.5),  # 01:00 day 2
        ("p1", 310, "page_view", None, None, None, None),  # 01:10 day 2
        ("p2", 10, "page_view", "b", "direct", None, None),
        ("p2", 20, "page_view", "c", "email", None, None),
        ("p2", 30, "view_item", "b", "direct", None, None),
    ]
    s = fresh(rows)
    found = counts.of_store(s)
    assert found is not None
    assert found.events == 6
    assert found.sessions == 3  # p1-a, p2-b, p2-c
    assert list(found.events_per_day) == [4, 2]
    assert list(found.sessions_per_day) == [3, 1]  # day 2: p1-a again; the bare event is none
    assert list(found.persons_per_day) == [2, 1]
    assert found.sessions_by_channel == {"email": 2, "direct": 1, "unassigned": 0}
    assert found.events_by_name == {"page_view": 4, "purchase": 1, "view_item": 1}
    daily = summary.daily_activity(s)
    assert list(daily["orders"]) == [0, 1] and list(daily["revenue"]) == [0.0, 10.5]


def test_counts_are_kept_beside_the_timeline_for_the_next_process_until_a_load(
    tmp_path, monkeypatch
) -> None:
    from conftest import log

    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        s.load(log(("a", 0, "view"), ("a", 60, "buy"), ("b", 90_000, "view")))
        timeline_store.of_store(s)  # the funnel would build it
        made = counts.of_store(s)
    assert made is not None
    assert (timeline_store.folder_for(str(db)) / "counts.arrow").is_file()

    def no_pass(*args, **kwargs):
        raise AssertionError("counted the timeline again")

    with Store(db, read_only=True) as s, monkeypatch.context() as m:
        m.setattr(counts, "count_timeline", no_pass)
        read = counts.of_store(s)  # another process: the saved counts
    assert read is not None
    for field in ("key", "events", "sessions", "first_us", "last_us", "first_day"):
        assert getattr(read, field) == getattr(made, field)
    for field in ("events_per_day", "sessions_per_day", "persons_per_day"):
        assert list(getattr(read, field)) == list(getattr(made, field))
    assert read.events_by_name == made.events_by_name
    assert read.sessions_by_channel == made.sessions_by_channel

    with Store(db) as s:
        s.load(log(("c", 100, "view", {"event_id": "e-new"})))
        timeline_store.of_store(s)
        again = counts.of_store(s)  # a load makes the saved counts stale
    assert again is not None and again.events == made.events + 1
