"""A newline-delimited GA4 export is mapped in one DuckDB query over the whole file
(``ga4_bulk.convert_file``: DuckDB reads the lines itself); a file it cannot split into lines
exactly (carriage returns, bytes that are not UTF-8) and JSON arrays are read a block at a
time (``ga4_bulk.convert_block``). Both give the same staged rows, event ids included, and the
same rejects with their line numbers (docs/adr/0147)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_ga4 import TS, event
from test_ga4_bulk import BAD_LINES, FIXTURE_ROWS, assert_same_staging, row, write

from shopfunnel.ingest import ga4, ga4_bulk, ga4_lines
from shopfunnel.ingest.ga4 import read_ga4


def _no_blocks(*_args: object) -> None:
    raise AssertionError("the file was read a block at a time")


def _no_whole_file(*_args: object, **_kwargs: object) -> None:
    raise duckdb.InvalidInputException("forced: read it a block at a time")


def by_blocks(path: Path, monkeypatch: pytest.MonkeyPatch) -> ga4.Staged:
    with monkeypatch.context() as m:
        m.setattr(ga4_bulk, "convert_file", _no_whole_file)
        m.setattr(ga4, "BLOCK_BYTES", 700)  # several blocks, a line longer than one
        return read_ga4(path)


def whole(path: Path, monkeypatch: pytest.MonkeyPatch) -> ga4.Staged:
    with monkeypatch.context() as m:
        m.setattr(ga4_lines, "blocks", _no_blocks)
        return read_ga4(path)


def assert_same_as_blocks(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, blocks = whole(path, monkeypatch), by_blocks(path, monkeypatch)
    assert one.table.equals(blocks.table)  # event ids too
    assert [(r.line, r.column, r.reason, r.value) for r in one.rejects] == [
        (r.line, r.column, r.reason, r.value) for r in blocks.rejects
    ]


def test_an_ordinary_export_is_read_in_one_query_with_the_block_readers_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "ga.json", FIXTURE_ROWS)
    assert_same_as_blocks(path, monkeypatch)
    assert whole(path, monkeypatch).table.num_rows == len(FIXTURE_ROWS)


def test_the_event_id_hashes_the_line_as_written_with_its_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = json.dumps(event("page_view", TS, pseudo="p9"))
    path = tmp_path / "ga.json"
    path.write_text(line)  # no newline after the last line: hashed as if it had one
    content = hashlib.md5((line + "\n").encode()).hexdigest()
    want = hashlib.md5("\x1f".join(("p9", str(TS), "page_view", content)).encode()).hexdigest()
    assert whole(path, monkeypatch).table.column("event_id").to_pylist() == [want]


def test_bad_and_blank_lines_keep_their_numbers_in_the_one_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = ["", FIXTURE_ROWS[1], *BAD_LINES, "", "", FIXTURE_ROWS[2], " ", ""]
    path = write(tmp_path / "ga.json", rows)
    staged = whole(path, monkeypatch)
    assert [r.line for r in staged.rejects] == [3, 4, 5, 6, 7, 9, 11]
    assert staged.table.column("__line").to_pylist() == [2, 14]
    assert_same_staging(path)
    assert_same_as_blocks(path, monkeypatch)


def test_carriage_returns_send_the_file_to_the_block_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ga.json"
    path.write_bytes(b"\r\n".join(json.dumps(r).encode() for r in FIXTURE_ROWS[:6]) + b"\r\n")
    with pytest.raises(duckdb.Error):
        ga4_bulk.convert_file(
            ga4_bulk.connect(),
            str(path),
            gzipped=False,
            min_us=ga4.MIN_US,
            max_us=ga4.MAX_US,
            mapped=ga4.MAPPED_PARAMS,
            exposure_names=ga4.exposures.SOURCE_NAMES,
        )
    assert read_ga4(path).table.num_rows == 6
    assert_same_staging(path)


def test_a_gzipped_export_is_read_in_one_query_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = write(tmp_path / "ga.json", [*FIXTURE_ROWS, "not json"])
    gz = tmp_path / "export"  # no .gz suffix: the bytes say it is gzip
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    staged = whole(gz, monkeypatch)
    assert staged.table.equals(whole(plain, monkeypatch).table)
    assert [r.line for r in staged.rejects] == [len(FIXTURE_ROWS) + 1]


lines = st.lists(st.one_of(row.map(json.dumps), st.sampled_from(["", " ", "{", "[]"])), min_size=1)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=lines)
def test_random_exports_stage_the_same_in_one_query_as_by_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[str]
) -> None:
    text = "".join(rows).strip()
    assume(text and not text.startswith("["))  # a blank file, a JSON array: tested elsewhere
    path = write(tmp_path / "ga.json", rows)
    assert_same_as_blocks(path, monkeypatch)
