"""A GA4 event's id comes from the export's own identity fields (docs/adr/0168): the same
event in a daily and an intraday export, in overlapping files or loaded twice is one
event; rows without those fields keep the line's hash (docs/adr/0078)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ga4 import TS, event, write_ndjson
from test_ga4_bulk import assert_same_staging, row

from shopfunnel.ingest import read
from shopfunnel.ingest.ga4 import read_ga4
from shopfunnel.store.store import Store

IDENTITY = ("stream_id", "event_bundle_sequence_id", "batch_page_id", "batch_ordering_id")
IDENTITY += ("batch_event_index",)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def expected_id(obj: dict, line_text: str, ts: int, name: str) -> str:
    """The id written independently of the query: md5 of pseudo id, µs, name and the
    identity fields as JSON text (absent or null: empty), or the md5 of the line."""
    pseudo = obj.get("user_pseudo_id")
    pseudo = pseudo if isinstance(pseudo, str) and pseudo.strip() else ""
    values = [obj.get(k) for k in IDENTITY]
    if any(obj.get(k) is not None for k in IDENTITY[1:]):
        content = "\x1f".join(["ga4", *("" if v is None else str(v) for v in values)])
    else:
        content = md5(line_text + "\n")
    return md5("\x1f".join((pseudo, str(ts), name, content)))


def identified(name: str, ts: int, bundle: int, index: int, pseudo: str = "p1", **fields) -> dict:
    return event(name, ts, pseudo=pseudo, **fields) | {
        "stream_id": "4179374125",
        "event_bundle_sequence_id": str(bundle),
        "batch_page_id": "1",
        "batch_ordering_id": str(bundle),
        "batch_event_index": index,
    }


def loaded(store: Store, path: Path) -> tuple[int, int]:
    result = store.load_staged(read(path, format="ga4"))
    return result.rows_added, result.duplicates


def test_the_event_id_hashes_the_identity_fields_not_the_line(tmp_path: Path) -> None:
    obj = identified("page_view", TS, bundle=7, index=2, pseudo="p9")
    path = write_ndjson(tmp_path / "ga.json", [obj])
    content = "\x1f".join(("ga4", "4179374125", "7", "1", "7", "2"))
    want = md5("\x1f".join(("p9", str(TS), "page_view", content)))
    assert read_ga4(path).table.column("event_id").to_pylist() == [want]


def test_a_daily_row_differing_from_the_intraday_one_only_in_unread_columns_is_one_event(
    tmp_path: Path,
) -> None:
    intraday = [identified("page_view", TS, 1, 0), identified("view_item", TS + 5, 1, 1)]
    # the daily table adds fields the importer does not read, and writes keys in another order
    daily = [
        dict(reversed(list(r.items())))
        | {"event_previous_timestamp": str(TS - 9), "user_ltv": {"revenue": 0.0}}
        for r in intraday
    ]
    store = Store(":memory:")
    assert loaded(store, write_ndjson(tmp_path / "events_intraday_20240315.json", intraday)) == (
        2,
        0,
    )
    assert loaded(store, write_ndjson(tmp_path / "events_20240315.json", daily)) == (0, 2)


def test_overlapping_exports_add_only_the_events_not_loaded_yet(tmp_path: Path) -> None:
    rows = [identified("page_view", TS + i, bundle=i // 2, index=i % 2) for i in range(6)]
    store = Store(":memory:")
    assert loaded(store, write_ndjson(tmp_path / "a.json", rows[:4])) == (4, 0)
    assert loaded(store, write_ndjson(tmp_path / "b.json", rows[2:])) == (2, 2)
    assert loaded(store, tmp_path / "b.json") == (0, 4)  # the same file again
    assert len(store.events(["event_id"])) == 6


def test_two_events_of_one_batch_with_the_same_name_and_time_stay_two(tmp_path: Path) -> None:
    rows = [
        identified("scroll", TS, bundle=3, index=0),
        identified("scroll", TS, bundle=3, index=1),
    ]
    staged = read_ga4(write_ndjson(tmp_path / "ga.json", rows))
    assert len(set(staged.table.column("event_id").to_pylist())) == 2


def test_rows_without_identity_fields_differing_in_an_unread_column_are_two_events(
    tmp_path: Path,
) -> None:
    rows = [event("page_view", TS), event("page_view", TS) | {"event_previous_timestamp": "1"}]
    store = Store(":memory:")
    assert loaded(store, write_ndjson(tmp_path / "ga.json", rows)) == (2, 0)


def test_a_number_or_a_string_in_an_identity_field_gives_the_same_event(tmp_path: Path) -> None:
    as_text = identified("page_view", TS, bundle=5, index=0)
    as_number = as_text | {"event_bundle_sequence_id": 5, "batch_event_index": "0"}
    a = read_ga4(write_ndjson(tmp_path / "a.json", [as_text])).table.column("event_id")
    b = read_ga4(write_ndjson(tmp_path / "b.json", [as_number])).table.column("event_id")
    assert a.to_pylist() == b.to_pylist()


identity_value = st.one_of(st.none(), st.integers(0, 10**12), st.integers(0, 99).map(str))
identity = st.fixed_dictionaries({}, optional={k: identity_value for k in IDENTITY})


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(st.tuples(row, identity).map(lambda t: t[0] | t[1]), min_size=1, max_size=8))
def test_random_rows_get_the_ids_written_independently_and_the_reference_columns(
    tmp_path: Path, rows: list
) -> None:
    path = write_ndjson(tmp_path / "ga.json", rows)
    assert_same_staging(path, ids=False)
    lines = path.read_text().split("\n")
    table = read_ga4(path).table
    us = table.column("ts").cast(pa.int64()).to_pylist()
    for got, ts in zip(table.to_pylist(), us, strict=True):
        text = lines[got["__line"] - 1]
        assert got["event_id"] == expected_id(json.loads(text), text, ts, got["event"])
