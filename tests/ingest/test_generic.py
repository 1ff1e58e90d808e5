"""The generic importer: canonical or mapped columns from pandas, Polars, Arrow, Parquet,
CSV and JSON Lines, with bad input reported by line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from shopfunnel.errors import ConfigError, InputError, ValidationError
from shopfunnel.ingest import read
from shopfunnel.store.store import Store

EVENTS = pd.DataFrame(
    {
        "event_id": ["e1", "e2", "e3", "e4"],
        "ts": [
            "2024-03-01T12:00:00Z",
            "2024-03-01T12:01:00Z",
            "2024-03-01T12:02:00Z",
            "2024-03-02T08:00:00Z",
        ],
        "event": ["page_view", "view_item", "purchase", "page_view"],
        "anonymous_id": ["a", "a", "a", "b"],
        "user_id": [None, None, "u1", None],
        "order_id": [None, None, "o1", None],
        "value": [None, None, "19.90", None],
        "currency": [None, None, "EUR", None],
    }
)
EXPECTED = ["e1", "e2", "e3", "e4"]


def _summary(store: Store) -> list[tuple]:
    ev = store.events()
    return [
        (
            r.event_id,
            r.ts.isoformat(),
            r.event,
            r.person_id,
            None if pd.isna(r.value) else float(r.value),
        )
        for r in ev.itertuples()
    ]


@pytest.fixture(scope="module")
def reference() -> list[tuple]:
    with Store(":memory:") as store:
        store.load(EVENTS)
        return _summary(store)


def test_the_reference_load_is_what_the_rows_say(reference) -> None:
    assert reference == [
        ("e1", "2024-03-01T12:00:00", "page_view", "u1", None),
        ("e2", "2024-03-01T12:01:00", "view_item", "u1", None),
        ("e3", "2024-03-01T12:02:00", "purchase", "u1", 19.9),
        ("e4", "2024-03-02T08:00:00", "page_view", "b", None),
    ]


def _as_typed() -> pd.DataFrame:
    df = EVENTS.copy()
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    df["value"] = df["value"].astype(float)
    return df


@pytest.mark.parametrize("kind", ["pandas", "polars", "arrow", "parquet", "csv", "jsonl"])
def test_every_source_kind_loads_the_same_events(tmp_path: Path, kind: str, reference) -> None:
    typed = _as_typed()
    if kind == "pandas":
        source = typed
    elif kind == "polars":
        source = pl.from_pandas(typed)
    elif kind == "arrow":
        source = pa.Table.from_pandas(typed, preserve_index=False)
    elif kind == "parquet":
        source = tmp_path / "e.parquet"
        typed.to_parquet(source)
    elif kind == "csv":
        source = tmp_path / "e.csv"
        EVENTS.to_csv(source, index=False)
    else:
        source = tmp_path / "e.jsonl"
        typed.to_json(source, orient="records", lines=True, date_format="iso")
    with Store(":memory:") as store:
        store.load(source)
        assert _summary(store) == reference


def test_a_mapping_renames_source_columns(tmp_path: Path, reference) -> None:
    path = tmp_path / "shop.csv"
    EVENTS.rename(columns={"ts": "created_at", "event": "action", "anonymous_id": "cookie"}).to_csv(
        path, index=False
    )
    with Store(":memory:") as store:
        store.load(path, mapping={"ts": "created_at", "event": "action", "anonymous_id": "cookie"})
        assert _summary(store) == reference


def test_a_mapping_to_a_missing_column_or_unknown_target_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    EVENTS.to_csv(path, index=False)
    with pytest.raises(InputError, match="'when'.*does not have"):
        read(path, mapping={"ts": "when"})
    with pytest.raises(InputError, match="unknown canonical column.*'stamp'"):
        read(path, mapping={"stamp": "ts"})


def test_extra_columns_can_be_kept_as_properties(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    EVENTS.assign(colour=["red", None, "blue", "green"]).to_csv(path, index=False)
    with Store(":memory:") as store:
        with pytest.raises(InputError, match="unknown column.*'colour'"):
            store.load(path)
        store.load(path, extra_columns="properties")
        props = store.events()["properties"].tolist()
        assert [json.loads(p) for p in props] == [
            {"colour": "red"},
            {},
            {"colour": "blue"},
            {"colour": "green"},
        ]


def test_a_bad_timestamp_is_named_by_its_line(tmp_path: Path) -> None:
    rows = ["event_id,ts,event,anonymous_id"] + [
        f"e{n},2024-03-01T12:00:{n % 60:02d}Z,page_view,a" for n in range(2, 100)
    ]
    rows[56] = "e57,2024-02-30 25:00,page_view,a"  # line 57 (the header is line 1)
    path = tmp_path / "e.csv"
    path.write_text("\n".join(rows) + "\n")
    store = Store(":memory:")
    with pytest.raises(ValidationError) as caught:
        store.load(path)
    assert [(r.line, r.column, r.value) for r in caught.value.rejects] == [
        (57, "ts", "2024-02-30 25:00")
    ]
    result = store.load(path, on_error="skip")
    assert (result.rows_added, store.info()["events"]) == (97, 97)


def test_a_ragged_row_is_rejected_on_its_line_and_later_lines_stay_right(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(
        "event_id,ts,event,anonymous_id\n"
        "e1,2024-03-01T12:00:00Z,page_view,a\n"
        "e2,2024-03-01T12:00:00Z,page_view,a,surplus\n"
        "e3,2024-03-01T12:00:00Z,page_view\n"
        "e4,not a time,page_view,a\n"
    )
    with pytest.raises(ValidationError) as caught:
        Store(":memory:").load(path)
    assert [(r.line, r.column) for r in caught.value.rejects] == [
        (3, "(row)"),
        (4, "(row)"),
        (5, "ts"),
    ]
    assert "5 field(s), the header has 4" in caught.value.rejects[0].reason


def test_ragged_rows_far_into_a_file_keep_their_lines(tmp_path: Path) -> None:
    lines = ["event_id,ts,event,anonymous_id"]
    for n in range(2, 20_002):
        lines.append(f"e{n},2024-03-01T12:00:00Z,page_view,a" + (",x" if n % 5000 == 0 else ""))
    lines[15_000 - 1] = "e15000,never,page_view,a"
    path = tmp_path / "e.csv"
    path.write_text("\n".join(lines) + "\n")
    from shopfunnel.ingest.generic import read_csv

    staged = read_csv(path)
    with pytest.raises(ValidationError) as caught:
        Store(":memory:").load_staged(staged)
    assert [r.line for r in caught.value.rejects] == [5000, 10000, 15000, 20000]
    assert [r.column for r in caught.value.rejects] == ["(row)", "(row)", "ts", "(row)"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"event_id,ts,event,anonymous_id\n", "header but no rows"),
        (b"PAR1\x15\x04\x15", "is a Parquet file.*--format parquet"),
        (
            "event_id,ts,event,anonymous_id\ne1,2024-03-01,page_view,caf\u00e9\n".encode("latin-1"),
            r"e\.csv:2: is not utf-8 text.*--encoding latin-1",
        ),
    ],
)
def test_unreadable_csv_gives_a_clear_message(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read(path)


def test_a_latin1_file_loads_when_its_encoding_is_given(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(
        "event_id,ts,event,anonymous_id\ne1,2024-03-01,page_view,caf\u00e9\n".encode("latin-1")
    )
    with Store(":memory:") as store:
        store.load_staged(read(path, encoding="latin-1"))
        assert store.events()["anonymous_id"].tolist() == ["caf\u00e9"]


def test_a_bad_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(
        '{"ts": "2024-03-01T12:00:00Z", "event": "a", "anonymous_id": "x"}\n'
        '{"ts": "2024-03-01T12:00:00Z", "event": \n'
    )
    with pytest.raises(InputError, match=r"e\.jsonl:2: cannot be read as JSON Lines"):
        read(path)


def test_unknown_format_and_options_that_do_not_apply_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    EVENTS.to_csv(path, index=False)
    with pytest.raises(ConfigError, match="unknown format 'xml'.*ga4.*rees46"):
        read(path, format="xml")
    with pytest.raises(ConfigError, match="--map.*not to --format ga4"):
        read(path, format="ga4", mapping={"ts": "created_at"})
    with pytest.raises(ConfigError, match="--encoding does not apply to --format parquet"):
        read(path, format="parquet", encoding="latin-1")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        read(tmp_path / "events.xml")


def test_blank_lines_are_skipped_and_later_lines_keep_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(
        "event_id,ts,event,anonymous_id\n"
        "e1,2024-03-01T12:00:00Z,page_view,a\n"
        "\n"
        "   \n"
        "e4,not a time,page_view,a\n"
        "e5,2024-03-01T12:00:00Z,page_view,a\n"
    )
    with pytest.raises(ValidationError) as caught:
        Store(":memory:").load(path)
    assert [(r.line, r.column) for r in caught.value.rejects] == [(5, "ts")]
    result = Store(":memory:").load(path, on_error="skip")
    assert (result.rows_read, result.rows_added) == (3, 2)


def test_json_lines_rows_keep_their_line_across_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(
        '{"ts": "2024-03-01T12:00:00Z", "event": "a", "anonymous_id": "x"}\n'
        "\n"
        '{"ts": "2024-03-01T12:00:00Z", "event": "b", "anonymous_id": "x"}\n'
        '{"ts": "never", "event": "c", "anonymous_id": "x"}\n'
    )
    with pytest.raises(ValidationError) as caught:
        Store(":memory:").load(path)
    assert [(r.line, r.column) for r in caught.value.rejects] == [(4, "ts")]
