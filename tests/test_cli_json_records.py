"""JSON of a table, written in pieces: the same text as pandas' ``to_json``.

:func:`shopfunnel.cli.output.json_records` encodes a large table chunk by chunk and writes a
tail of rows that differ only in one text column (RFM's prospects) from one encoded row. On
random tables (ids that need escaping, missing values, timestamps, empty heads and tails,
several chunks) its text must be exactly ``to_json(orient="records", date_format="iso",
indent=2)``, which the commands printed before.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.cli import output

IDS = st.one_of(
    st.sampled_from(["p1", "u-42", "a b", "x,y", "ü", 'q"t', "s/l", "b\\s", "tab\t", "~!"]),
    st.text(max_size=6),
)


def pandas_text(df: pd.DataFrame) -> str:
    return df.to_json(orient="records", date_format="iso", indent=2)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    head=st.lists(
        st.tuples(
            IDS, st.floats(allow_nan=True, allow_infinity=False, width=32), st.integers(0, 9)
        ),
        max_size=12,
    ),
    tail=st.lists(IDS, max_size=12),
    chunk=st.sampled_from([1, 2, 5, 1000]),
    split=st.integers(0, 12),
)
def test_pieces_join_to_the_pandas_text(head, tail, chunk, split) -> None:
    df = pd.DataFrame(
        {
            "person_id": [h[0] for h in head] + tail,
            "value": [h[1] for h in head] + [np.nan] * len(tail),
            "frequency": pd.array([h[2] for h in head] + [None] * len(tail), dtype="Int64"),
            "last": pd.to_datetime(["2024-01-01 10:00:00.123456"] * len(head) + [None] * len(tail)),
            "group": ["customer"] * len(head) + ["prospects"] * len(tail),
        }
    )
    want = pandas_text(df)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(output, "JSON_CHUNK_ROWS", chunk)
        got = b"".join(output.json_records(df, tail_start=len(head), tail_column="person_id"))
        assert got.decode() == want
        assert b"".join(output.json_records(df)).decode() == want
        if tail:  # the last rows given as ids beside one row, not as rows of the frame
            k = min(split, len(tail))
            frame, row = df.iloc[: len(head) + k], df.iloc[-1:].reset_index(drop=True)
            more = (row, pa.array(tail[k:], pa.string()))
            pieces = output.json_records(
                frame, tail_start=len(head), tail_column="person_id", more=more
            )
            assert b"".join(pieces).decode() == want


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(max_size=5), min_size=1, max_size=6), start=st.integers(0, 5))
def test_a_text_needs_escaping_exactly_when_pandas_escapes_it(texts, start) -> None:
    ids = pa.array(texts, pa.string()).slice(min(start, len(texts) - 1))
    pandas_escapes = any(
        pd.Series([t]).to_json(orient="records") != f'["{t}"]' for t in ids.to_pylist()
    )
    assert output._needs_escape(ids) == pandas_escapes


def test_a_tail_that_is_not_uniform_is_encoded_row_by_row() -> None:
    df = pd.DataFrame({"person_id": ["a", "b", "c"], "value": [1.0, np.nan, 2.5]})
    got = b"".join(output.json_records(df, tail_start=1, tail_column="person_id")).decode()
    assert got == pandas_text(df)
    assert json.loads(got)[2] == {"person_id": "c", "value": 2.5}


def test_emit_writes_the_file_whole(tmp_path) -> None:
    df = pd.DataFrame({"person_id": ["a", "b"], "group": ["prospects", "prospects"]})
    out = tmp_path / "t.json"
    output.emit(df, output.Format.json, out, json_tail=(0, "person_id"))
    assert out.read_text(encoding="utf-8") == pandas_text(df) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no partial file left


@pytest.mark.parametrize("rows", [0, 1])
def test_small_tables(rows) -> None:
    df = pd.DataFrame({"person_id": ["a"] * rows, "group": ["prospects"] * rows})
    got = b"".join(output.json_records(df, tail_start=0, tail_column="person_id"))
    assert got.decode() == pandas_text(df)
