"""The stage model's per-person facts: the timeline pass gives what the SQL reference gives.

:mod:`shopfunnel.stages.evidence` reads the facts placement is built on either from one
compiled pass over the store's sorted timeline or by SQL over the events. The SQL path is
the reference: on random logs (persons, instants shared by several events, channels missing
or tied at a person's first instant, events before the lookback and after ``as_of``) both
must give the same persons, times, first channels and visits, and ``placement`` the same
frame, at every date and with the timeline read in chunks of any size.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import T0, log
from shopfunnel.model import Model, model_from_dict
from shopfunnel.stages import evidence, evidence_sql, person_facts
from shopfunnel.stages.placement import placement, placements
from shopfunnel.stages.status import STATUSES
from shopfunnel.stages.summary import stage_flow, stage_summary, stage_transitions
from shopfunnel.store import cache, person_index, summary
from shopfunnel.store.store import Store

DAY = 24 * 60  # minutes
EVENTS = ["page_view", "view_item", "add_to_cart", "begin_checkout", "purchase", "scroll"]
CHANNELS = [None, "direct", "email", "paid search"]
MODEL = model_from_dict(
    {"placement": {"min_returns": 2, "min_gaps": 2, "stalled_after": "1d", "gone_after": "2d"}},
    source="test.toml",
)


@st.composite
def logs(draw) -> list[tuple]:
    """Up to 40 events of five persons over six days, often several at one minute."""
    n = draw(st.integers(min_value=1, max_value=40))
    rows = []
    for _ in range(n):
        person = draw(st.sampled_from(["a", "b", "c", "d", "e"]))
        minute = draw(
            st.one_of(
                st.sampled_from([0, 1, 45, 2 * DAY, 2 * DAY + 31]),  # shared instants, visit gaps
                st.integers(min_value=0, max_value=6 * DAY),
            )
        )
        event = draw(st.sampled_from(EVENTS))
        extra = {"channel": draw(st.sampled_from(CHANNELS))}
        if event == "purchase":
            extra |= {"order_id": f"{person}-{draw(st.integers(0, 2))}", "value": 5}
        rows.append((person, minute, event, extra))
    return rows


_SHARED: list[Store] = []


def fresh(rows: list[tuple]) -> Store:
    """One in-memory store refilled for each example (events written straight in, event ids
    shuffled so ties at an instant are broken by ids in no particular row order)."""
    if not _SHARED:
        _SHARED.append(Store(":memory:"))
    s = _SHARED[0]
    frame = log(*rows)
    for col in ("order_id", "value", "channel"):
        if col not in frame:
            frame[col] = None
    frame["ts"] = frame["ts"].dt.tz_localize(None)
    frame["event_id"] = [f"x{(i * 7919) % 1009:04d}" for i in range(len(frame))]
    s.db.execute("DELETE FROM events")
    s.db.register("__rows", frame)
    try:
        s.db.execute(
            "INSERT INTO events (event_id, ts, event, anonymous_id, person_id, channel, order_id, "
            "value) SELECT event_id, ts, event, anonymous_id, anonymous_id, channel, order_id, "
            "CAST(value AS DECIMAL(18,2)) FROM __rows"
        )
    finally:
        s.db.unregister("__rows")
    s._bump_generation()
    return s


def periods_of(ends_min: list[int], lookback_min: int) -> list[tuple]:
    ends = sorted({(T0 + timedelta(minutes=m)).replace(tzinfo=None) for m in ends_min})
    return [(e - timedelta(minutes=lookback_min), e) for e in ends]


def by_person(f: person_facts.PersonFacts) -> dict[str, tuple]:
    """Each person's facts, and their visits in time order."""
    rows = np.arange(len(f))
    ids = list(f.in_order(rows, "person_id"))
    channels = [None if pd.isna(c) else c for c in f.in_order(rows, "first_channel")]
    visits: dict[str, list[tuple]] = {}
    for r, start, gap in zip(f.visit_rows, f.visit_starts, f.visit_gaps, strict=True):
        visits.setdefault(ids[r], []).append((int(start), int(gap)))
    return {
        pid: (
            int(f.first_us[i]),
            int(f.last_us[i]),
            f.stage_first[i].tolist(),
            channels[i],
            visits.get(pid, []),
        )
        for i, pid in enumerate(ids)
    }


def assert_same(fast: person_facts.PersonFacts, ref: person_facts.PersonFacts) -> None:
    assert by_person(fast) == by_person(ref)
    # the rows sorted by id_rank are sorted by person_id; visits by row, then time
    ids = np.array(list(fast.in_order(np.arange(len(fast)), "person_id")), dtype=object)
    assert list(ids[np.argsort(fast.id_rank)]) == sorted(ids)
    assert list(zip(fast.visit_rows, fast.visit_starts, strict=True)) == sorted(
        zip(fast.visit_rows, fast.visit_starts, strict=True)
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=logs(),
    ends=st.lists(st.integers(0, 7 * DAY), min_size=1, max_size=3),
    lookback=st.sampled_from([60, 2 * DAY, 30 * DAY]),
    chunk_rows=st.sampled_from([1, 3, 1_000]),
)
def test_the_timeline_pass_gives_the_sql_facts_at_every_date(
    rows, ends, lookback, chunk_rows
) -> None:
    s = fresh(rows)
    periods = periods_of(ends, lookback)
    fast = evidence.from_timeline(s, MODEL, periods, 1800, chunk_rows=chunk_rows)
    assert fast is not None
    for (start, end), got in zip(periods, fast, strict=True):
        assert_same(got, evidence_sql.from_sql(s, MODEL, start, end, 1800))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=logs(), end=st.integers(0, 7 * DAY), lookback=st.sampled_from([None, "1d"]))
def test_placement_is_the_same_frame_on_either_path(rows, end, lookback) -> None:
    s = fresh(rows)
    as_of = (T0 + timedelta(minutes=end)).replace(tzinfo=None)
    fast = placement(s, model=MODEL, as_of=as_of, lookback=lookback)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evidence, "from_timeline", lambda *a, **k: None)
        ref = placement(s, model=MODEL, as_of=as_of, lookback=lookback)
    pd.testing.assert_frame_equal(fast.persons, ref.persons)
    pd.testing.assert_frame_equal(fast.thresholds, ref.thresholds)
    # the counts by stage and status from the codes are those of the persons table
    table_only = dataclasses.replace(fast, codes=None, make_persons=lambda: fast.persons)
    pd.testing.assert_frame_equal(
        stage_summary(s, placed=fast), stage_summary(s, placed=table_only)
    )
    # the codes are the persons table's rows, in the timeline's order (no sort)
    codes = fast.codes
    by_id = dict(
        zip(
            codes.ids.take(pa.array(codes.id_rank)).to_pylist(),
            zip(
                codes.stage_index.tolist(),
                codes.status.tolist(),
                codes.customer.tolist(),
                strict=True,
            ),
            strict=True,
        )
    )
    p = fast.persons
    assert len(by_id) == len(codes) == len(p)
    assert by_id == {
        pid: (stage, STATUSES.index(status), orders > 0)
        for pid, stage, status, orders in zip(
            p["person_id"], p["stage_index"], p["status"], p["orders"], strict=True
        )
    }


def test_a_tie_of_channels_at_the_first_instant_is_broken_by_event_id() -> None:
    s = fresh(
        [
            ("a", 0, "page_view", {"channel": "email"}),
            ("a", 0, "view_item", {"channel": "direct"}),
            ("a", 5, "page_view", {"channel": "paid search"}),
            ("n", 0, "page_view", {"channel": None}),
            ("n", 3, "page_view", {"channel": "email"}),
        ]
    )
    ids = dict(
        s.db.rows(
            "SELECT event, event_id FROM events WHERE person_id = 'a' AND "
            "ts = (SELECT min(ts) FROM events)"
        )
    )
    want = "email" if ids["page_view"] < ids["view_item"] else "direct"
    p = placement(s, model=Model()).persons.set_index("person_id")
    assert p.loc["a", "first_channel"] == want  # the smaller event id of the two
    assert p.loc["n", "first_channel"] == "email"  # the first event that has a channel


def test_placements_at_two_dates_are_each_the_placement_at_that_date(store) -> None:
    store.load(
        log(
            ("a", 0, "page_view"),
            ("a", 2 * DAY, "add_to_cart"),
            ("b", DAY, "view_item"),
            ("b", 3 * DAY, "purchase", {"order_id": "o"}),
        )
    )
    dates = [T0 + timedelta(days=1.5), T0 + timedelta(days=3)]
    both = placements(store, dates, model=Model())
    for date, got in zip(dates, both, strict=True):
        alone = placement(store, model=Model(), as_of=date)
        pd.testing.assert_frame_equal(got.persons, alone.persons)
    flow = stage_flow(store, dates[0], dates[1], model=Model(), placed=(both[0], both[1]))
    assert flow.loc["Awareness", "Decision"] == 1  # a: page view, then a cart
    assert flow.loc["Interest", "Purchase"] == 1  # b: a product, then an order


def test_the_person_index_is_saved_beside_the_timeline_and_rebuilt_after_a_load(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "s.duckdb")
    with Store(db) as s:
        s.load(log(("a", 0, "page_view"), ("b", 1, "view_item")))
        placement(s, model=Model())
        saved = tmp_path / "s.duckdb.timeline" / person_index.FILE
        assert saved.exists()
    with Store(db) as s:
        index = person_index.of_store(s)
        assert index is not None and index.ids.to_pylist() == ["a", "b"]
        s.load(log(("c", 2, "page_view", {"event_id": "new"})))
        assert s.info()["persons"] == 3  # the index is stale: counted by SQL
        p = placement(s, model=Model()).persons
        assert sorted(p["person_id"]) == ["a", "b", "c"]
        assert s.info()["persons"] == 3  # from the index written again
        assert sorted(summary.person_ids(s)["person_id"]) == ["a", "b", "c"]


def test_the_saved_person_index_is_one_piece_with_its_hashes_sorted_and_old_files_are_resaved(
    tmp_path: Path,
) -> None:
    """Saved in one piece per column with the sorted hashes, the index is read back mapped
    (no copy); a file saved before (in pieces, no sorted hashes) is saved again, once, and
    both give the same rows."""
    db = str(tmp_path / "s.duckdb")
    ids = [f"p{i}" for i in range(50)]
    with Store(db) as s:
        s.load(log(*[(p, i, "page_view") for i, p in enumerate(ids)]))
        placement(s, model=Model())
        saved = tmp_path / "s.duckdb.timeline" / person_index.FILE
        key = person_index.store_key(s.db)
        table = cache.read_keyed(saved, key)
        assert table is not None
        assert table.column_names == ["h", "person_id", "by_hash", "h_sorted"]
        assert all(c.num_chunks == 1 for c in table.columns)
        hashes = table.column("h").to_numpy()
        assert table.column("h_sorted").to_numpy().tolist() == sorted(hashes.tolist())
        want = person_index.of_store(s).rows_of(hashes[::-1].copy())
        assert want.tolist() == list(range(49, -1, -1))
        # the layout of earlier versions: two pieces, no sorted hashes
        old = table.select(["h", "person_id", "by_hash"])
        cache.write_keyed(saved, key, pa.concat_tables([old.slice(0, 20), old.slice(20)]))
    with Store(db) as s:
        index = person_index.of_store(s)
        assert index is not None and index.ids.to_pylist() == sorted(ids)
        assert index.rows_of(hashes[::-1].copy()).tolist() == want.tolist()
        again = cache.read_keyed(saved, key)
        assert again is not None and "h_sorted" in again.column_names


def test_two_ids_with_one_hash_make_the_index_unusable_so_sql_counts() -> None:
    table = pa.table({"h": pa.array([5, 5], pa.uint64()), "person_id": ["x", "y"]})
    assert person_index._make("k", table) is None
    ok = person_index._make(
        "k", pa.table({"h": pa.array([9, 5], pa.uint64()), "person_id": ["x", "y"]})
    )
    assert ok is not None
    assert ok.rows_of(np.array([5, 9, 7], dtype=np.uint64)).tolist() == [1, 0, -1]


def pandas_transitions(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The flow as first written: states by person aligned by a pandas index."""

    def states(p: pd.DataFrame) -> pd.Series:
        slipped = p["status"].isin(["lapsed", "gone"]) & (p["orders"] > 0)
        return pd.Series(
            p["stage"].where(~slipped, "lapsed").to_numpy(), index=p["person_id"].to_numpy()
        )

    both = pd.concat([states(a).rename("from"), states(b).rename("to")], axis=1)
    both = both.fillna("not seen")
    both.index.name = "person_id"
    return both.reset_index().sort_values("person_id", kind="stable").reset_index(drop=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=logs(),
    first=st.integers(0, 3 * DAY),
    later=st.integers(1, 4 * DAY),
    lookback=st.sampled_from(["1d", "3650d"]),
)
def test_transitions_and_flow_match_the_pandas_alignment(rows, first, later, lookback) -> None:
    s = fresh(rows)
    t0 = (T0 + timedelta(minutes=first)).replace(tzinfo=None)
    t1 = t0 + timedelta(minutes=later)
    a, b = placements(s, [t0, t1], model=MODEL, lookback=lookback)
    assert a.codes.ids is b.codes.ids  # matched by rank in the person index
    want = pandas_transitions(a.persons, b.persons)
    got = stage_transitions(s, t0, t1, model=MODEL, lookback=lookback)
    assert got.astype(object).values.tolist() == want.astype(object).values.tolist()
    states = ["not seen", *MODEL.stage_names, "lapsed"]
    matrix = pd.crosstab(want["from"], want["to"]).reindex(
        index=states, columns=states, fill_value=0
    )
    flow = stage_flow(s, t0, t1, model=MODEL, lookback=lookback)
    assert flow.to_numpy().tolist() == matrix.to_numpy().tolist()
    assert list(flow.index) == list(flow.columns) == states


def test_the_persons_listed_by_sql_and_by_the_index_are_the_same_ids_in_the_same_order(
    tmp_path: Path,
) -> None:
    """RFM lists prospects in this order: it must not change with the path that gave it."""
    db = str(tmp_path / "s.duckdb")
    with Store(db) as s:
        rows = [(f"p{(i * 7919) % 61}", i, "page_view") for i in range(120)]
        s.load(log(*rows, ("Zed", 200, "view_item"), ("ä-1", 201, "view_item")))
        by_sql = summary.person_ids(s)["person_id"].tolist()  # no index yet
        assert person_index.of_store(s, build=False) is None
        placement(s, model=Model())  # builds the index
        assert person_index.of_store(s, build=False) is not None
        assert summary.person_ids(s)["person_id"].tolist() == by_sql
        assert by_sql == sorted(by_sql, key=lambda x: x.encode())  # bytewise, as DuckDB sorts
