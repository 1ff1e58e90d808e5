"""A plain newline-delimited GA4 export is parsed by DuckDB's JSON reader (``read_json``
with declared columns, ``ga4_bulk.convert_json``; docs/adr/0182). Its staged rows are
exactly the line reader's (``read_csv`` lines + ``json_transform``, docs/adr/0147): every
column, event ids, rejects and their line numbers. Rows the query leaves to the reference
are mapped again from their lines; a file the JSON reader cannot take exactly (a blank line,
a line that is not a JSON object, a field that does not fit) is read by its lines."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ga4 import PURCHASE, TS, event
from test_ga4_bulk import FIXTURE_ROWS, assert_same_staging, row, write

from shopfunnel.ingest import ga4, ga4_bulk
from shopfunnel.ingest.ga4 import read_ga4


def _no_json(*_args: object, **_kwargs: object) -> None:
    raise duckdb.InvalidInputException("forced: read it by its lines")


def _no_lines(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the whole file was read by its lines")


def by_lines(path: Path, monkeypatch: pytest.MonkeyPatch) -> ga4.Staged:
    """The staging of the line reader (ADR 0147), the JSON reader kept out."""
    with monkeypatch.context() as m:
        m.setattr(ga4_bulk, "convert_json", _no_json)
        return read_ga4(path)


def by_json(path: Path, monkeypatch: pytest.MonkeyPatch) -> ga4.Staged:
    """The staging of the JSON reader; fails if the file went to the line reader."""
    with monkeypatch.context() as m:
        m.setattr(ga4_bulk, "convert_file", _no_lines)
        return read_ga4(path)


def assert_same(one: ga4.Staged, other: ga4.Staged) -> None:
    assert one.table.equals(other.table)  # event ids and properties text too
    assert [(r.line, r.column, r.reason, r.value) for r in one.rejects] == [
        (r.line, r.column, r.reason, r.value) for r in other.rejects
    ]


def identified(r: dict, i: int) -> dict:
    """The row with the identity fields an export has (docs/adr/0168)."""
    return {**r, "stream_id": "1", "event_bundle_sequence_id": str(i), "batch_event_index": "0"}


def mapped_by_the_query(r: dict) -> bool:
    """Whether the JSON reader takes the row and the query maps it (not left to the
    reference)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "one.json", [r])
        try:
            rows = ga4_bulk.convert_json(ga4_bulk.connect(), str(path), gzipped=False, **ga4._RULES)
        except duckdb.Error:
            return False
    return not rows.column("slow")[0].as_py()


# the fixture rows the query maps from the JSON reader (the others are in the tests below)
ORDINARY = [
    identified(r, i)
    for i, r in enumerate([r for r in FIXTURE_ROWS if mapped_by_the_query(identified(r, 0))] * 4)
]


def test_an_ordinary_export_is_parsed_by_the_json_reader_into_the_line_readers_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "ga.json", ORDINARY)
    staged = by_json(path, monkeypatch)
    assert staged.table.num_rows == len(ORDINARY)
    assert_same(staged, by_lines(path, monkeypatch))
    assert_same_staging(path)


def test_rows_left_to_the_reference_are_mapped_from_their_lines_with_their_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = [
        event("page_view", "yesterday"),  # rejected: line 41
        event("experiment_impression", TS, params={"exp_variant_string": {"string_value": "A-1"}}),
        event("page_view", TS + 5),  # no identity fields: keyed by its line's md5
        identified(event("page_view", TS, params={"dup": {"int_value": "1"}}), 99)
        | {"event_params": [{"key": "a", "value": {"int_value": "1"}}] * 2},
        identified(event("page_view", 1710513005), 98),  # seconds: rejected, line 45
    ]
    rows = [*ORDINARY[:40], *odd, *ORDINARY[40:]]
    path = write(tmp_path / "ga.json", rows)
    staged = by_json(path, monkeypatch)
    assert [r.line for r in staged.rejects] == [41, 45]
    assert staged.table.column("__line").to_pylist() == [
        n for n in range(1, len(rows) + 1) if n not in (41, 45)
    ]
    assert_same(staged, by_lines(path, monkeypatch))


def test_strings_that_need_escaping_are_written_as_the_line_reader_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ['say "hi"', "back\\slash", "caf\u00e9", "tab\there", "\u0001", "a/b", "\u2028"]
    rows = [
        identified(event("page_view", TS + i, params={k: {"string_value": k}}), i)
        for i, k in enumerate(texts)
    ]
    path = write(tmp_path / "ga.json", [*rows, *ORDINARY])
    staged = by_json(path, monkeypatch)
    props = [json.loads(p) for p in staged.table.column("properties").to_pylist()[: len(texts)]]
    assert props == [{k: k} for k in texts]
    assert_same(staged, by_lines(path, monkeypatch))


@pytest.mark.parametrize(
    "odd",
    [
        "",  # a blank line: the JSON reader skips it, so rows would be numbered wrong
        "   ",
        "[1, 2]",  # not an object
        '{"event_timestamp": 1710513005123456, "event_name": ',  # not JSON
        json.dumps({**PURCHASE, "items": ["a text, not an item"]}),  # does not fit
        json.dumps({**PURCHASE, "event_params": "a text, not a list"}),
    ],
)
def test_a_line_the_json_reader_cannot_take_exactly_sends_the_file_to_the_line_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd: str
) -> None:
    path = write(tmp_path / "ga.json", [*ORDINARY[:5], odd, *ORDINARY[5:]])
    assert ga4._parsed_whole(ga4_bulk.connect(), path, []) is None
    assert_same(read_ga4(path), by_lines(path, monkeypatch))


def test_a_byte_order_mark_is_read_as_the_line_reader_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ga.json"
    path.write_bytes(b"\xef\xbb\xbf" + write(tmp_path / "x.json", ORDINARY).read_bytes())
    assert_same(by_json(path, monkeypatch), by_lines(path, monkeypatch))


def test_a_last_line_without_its_newline_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ga.json"
    path.write_text("\n".join(json.dumps(r) for r in ORDINARY))
    assert ga4._line_count(path) == len(ORDINARY)
    assert_same(by_json(path, monkeypatch), by_lines(path, monkeypatch))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(row, min_size=1, max_size=6), at=st.integers(0, len(ORDINARY)))
def test_random_rows_among_ordinary_ones_stage_as_the_line_reader_stages_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[dict], at: int
) -> None:
    path = write(tmp_path / "ga.json", [*ORDINARY[:at], *rows, *ORDINARY[at:]])
    assert_same(read_ga4(path), by_lines(path, monkeypatch))


def test_a_file_of_mostly_slow_rows_is_read_by_its_lines_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [event("page_view", TS + i) for i in range(6)] + ORDINARY[:2]  # no identity fields
    path = write(tmp_path / "ga.json", rows)
    calls: list[str] = []
    with monkeypatch.context() as m:
        m.setattr(ga4_bulk, "convert_lines", lambda *a, **k: calls.append("lines") or _no_lines())
        staged = read_ga4(path)
    assert calls == []  # not mapped again row by row: the whole file by its lines
    assert_same(staged, by_lines(path, monkeypatch))
    assert staged.table.num_rows == len(rows)


def test_a_line_longer_than_the_json_readers_buffers_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JSON reader's buffers are sized by ``JSON_LINE_LIMIT`` so both cores parse
    (ADR 0185); a longer line is still imported whole, with the line reader's rows."""
    monkeypatch.setattr(ga4_bulk, "JSON_LINE_LIMIT", 4096)
    long = {
        **PURCHASE,
        "event_params": [
            *PURCHASE.get("event_params", []),
            {"key": "note", "value": {"string_value": "x" * 6000}},
        ],
    }
    path = write(tmp_path / "ga.json", [*ORDINARY[:5], identified(long, 99), *ORDINARY[5:]])
    staged = by_json(path, monkeypatch)
    assert_same(staged, by_lines(path, monkeypatch))
    assert "x" * 6000 in staged.table.column("properties")[5].as_py()
    assert staged.table.num_rows == len(ORDINARY) + 1


def test_a_file_of_ordinary_lines_is_read_in_order_across_the_json_readers_buffers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With small buffers (several per file, read by two threads) the rows still come in
    the file's order: row i is line i + 1."""
    monkeypatch.setattr(ga4_bulk, "JSON_LINE_LIMIT", 4096)
    rows = [identified(r, i) for i, r in enumerate(ORDINARY * 20)]
    path = write(tmp_path / "ga.json", rows)
    assert_same(by_json(path, monkeypatch), by_lines(path, monkeypatch))
