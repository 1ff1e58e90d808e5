"""Staged files loaded together (ADR 0198): ``together`` puts files one after another, and a
store loaded with files in time order, after what it holds, holds the same together as one
by one: the same events, sessions, channels, persons and identities."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from shopfunnel.store.staged import LINE, Staged, joinable, same_columns, together
from shopfunnel.store.store import Store


def staged(source: str, rows: list[dict], first_line: int = 2) -> Staged:
    table = (
        pa.Table.from_pylist(rows) if rows else pa.table({"event_id": pa.array([], pa.string())})
    )
    lines = pa.array(range(first_line, first_line + table.num_rows), pa.int64())
    return Staged(source=source, table=table.append_column(LINE, lines))


def test_together_puts_the_files_one_after_another_with_lines_past_the_earlier_files() -> None:
    a = staged("a.csv", [{"event_id": "a1"}, {"event_id": "a2"}])  # lines 2, 3
    b = staged("b.csv", [{"event_id": "b1"}])  # line 2
    c = staged("c.csv", [{"event_id": "c1"}, {"event_id": "c2"}])
    joined = together([a, b, c])
    assert joined.table.column("event_id").to_pylist() == ["a1", "a2", "b1", "c1", "c2"]
    assert joined.table.column(LINE).to_pylist() == [2, 3, 5, 7, 8]
    assert joined.source == "a.csv … c.csv (3 files)"
    assert joined.rejects == () and joined.sql is None
    assert together([b]).source == "b.csv"


def test_only_arrow_tables_without_importer_rejects_join() -> None:
    from shopfunnel.errors import Reject

    plain = staged("a.csv", [{"event_id": "a1"}])
    rejected = Staged(source="b.json", table=plain.table, rejects=(Reject("b.json", 4, "", "bad"),))
    query = Staged(source="c.parquet", sql="SELECT 1")
    assert joinable(plain) and not joinable(rejected) and not joinable(query)
    with pytest.raises(ValueError):
        together([plain, rejected])
    with pytest.raises(ValueError):
        together([])


def test_a_column_with_no_value_in_one_file_takes_the_others_type() -> None:
    a = staged("a.csv", [{"event_id": "a1", "user_id": None}])  # user_id: null type
    b = staged("b.csv", [{"event_id": "b1", "user_id": "amy"}])
    c = staged("c.csv", [{"event_id": "c1", "user_id": 7}])  # another type: not with b
    other = staged("d.csv", [{"user_id": "amy", "event_id": "d1"}])  # another order
    assert same_columns([a, b]) and same_columns([a, c])
    assert not same_columns([a, b, c]) and not same_columns([b, other])
    joined = together([a, b])
    assert joined.table.schema.field("user_id").type == pa.string()
    assert joined.table.column("user_id").to_pylist() == [None, "amy"]
    with pytest.raises(ValueError):
        together([b, c])


# -- a store loaded with files together equals one loaded file by file -------------------
T0 = pd.Timestamp("2024-03-01T00:00:00Z")

events = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),  # device
        st.integers(0, 6 * 60),  # minute
        st.sampled_from(["view", "cart", "buy"]),
        st.sampled_from([None, None, "amy", "bob"]),  # user id
        st.sampled_from([None, "google", "newsletter"]),  # utm_source
    ),
    min_size=1,
    max_size=30,
)


def as_rows(drawn: list[tuple]) -> list[dict]:
    return [
        {
            "event_id": f"e{i}",
            "ts": T0 + pd.Timedelta(minutes=minute),
            "event": event,
            "anonymous_id": device,
            "user_id": user,
            "utm_source": source,
            "utm_medium": None if source is None else "cpc",
        }
        for i, (device, minute, event, user, source) in enumerate(drawn)
    ]


def files_in_time_order(rows: list[dict], cuts: list[int]) -> list[list[dict]]:
    """The rows sorted by time and cut into files at ``cuts`` (row positions)."""
    ordered = sorted(rows, key=lambda r: (r["ts"], r["event_id"]))
    bounds = [0, *sorted({c % (len(ordered) + 1) for c in cuts}), len(ordered)]
    return [ordered[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False) if hi > lo]


def as_staged(name: str, rows: list[dict]) -> Staged:
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    lines = pa.array(range(2, 2 + table.num_rows), pa.int64())
    return Staged(source=name, table=table.append_column(LINE, lines))


def snapshot(store: Store) -> tuple[list[tuple], list[tuple]]:
    stored = store.db.rows(
        "SELECT event_id, ts, event, anonymous_id, user_id, session_id, channel, person_id "
        "FROM events ORDER BY event_id"
    )
    identities = store.db.rows("SELECT * FROM identities ORDER BY ALL")
    return stored, identities


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(drawn=events, cuts=st.lists(st.integers(0, 30), max_size=3), stored=events)
def test_files_loaded_together_give_the_store_they_give_one_by_one(drawn, cuts, stored) -> None:
    rows = as_rows(drawn)
    # a store that already holds events of the same devices from before the files (1–59
    # minutes before the first: some sessions go on in the files), or an empty one. Rows
    # older than the store's (late data) are sessionised from the latest stored event of
    # their device (ADR 0152), so where such a load is cut changes its sessions: not this
    # promise.
    start = min(r["ts"] for r in rows)
    earlier = [
        {**r, "event_id": f"s{i}", "ts": start - pd.Timedelta(minutes=1 + m % 59)}
        for i, (r, (_, m, *_)) in enumerate(zip(as_rows(stored), stored, strict=True))
    ]
    parts = files_in_time_order(rows, cuts)
    note(f"files: {[len(p) for p in parts]}")
    results = []
    for joined in (False, True):
        with Store(":memory:") as store:
            if len(earlier) % 2:  # about half the cases start from an empty store
                store.load(pd.DataFrame(earlier))
            files = [as_staged(f"f{i}.csv", part) for i, part in enumerate(parts)]
            if joined:
                store.load_staged(together(files))
            else:
                for f in files:
                    store.load_staged(f)
            results.append(snapshot(store))
    assert results[1] == results[0]
