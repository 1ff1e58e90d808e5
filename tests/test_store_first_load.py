"""The first load into an empty store takes one typed pass; it must end exactly where the
general path (validate, then insert, then re-stitch) ends, and hand every source it cannot
write as is back to that path."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import log
from shopfunnel.errors import ValidationError
from shopfunnel.sample import generate_sample
from shopfunnel.store import store as store_module
from shopfunnel.store.store import LoadResult, Store

CSV_HEADER = "event_id,ts,event,anonymous_id,user_id,session_id,channel,value,items,properties\n"


@pytest.fixture
def first_loads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, for each first load tried, whether the one-pass path wrote it."""
    taken: list[bool] = []
    original = store_module.first_load

    def spy(store: Store, *args, **kwargs):
        result = original(store, *args, **kwargs)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(store_module, "first_load", spy)
    return taken


def general_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "first_load", lambda store, *args, **kwargs: None)


def snapshot(store: Store) -> dict[str, object]:
    """Everything a load leaves behind, in a comparable form."""
    db = store.db
    events = db.df(
        "SELECT * EXCLUDE (items, properties), CAST(items AS VARCHAR) AS items, "
        "CAST(properties AS VARCHAR) AS properties FROM events ORDER BY event_id"
    )
    identities = db.df("SELECT * FROM identities ORDER BY anonymous_id")
    return {
        "events": events,
        "identities": identities,
        "generation": store.generation,
        "info": store.info(),
    }


def assert_same(a: dict[str, object], b: dict[str, object]) -> None:
    pd.testing.assert_frame_equal(a["events"], b["events"])
    pd.testing.assert_frame_equal(a["identities"], b["identities"])
    assert a["generation"] == b["generation"]
    assert a["info"] == b["info"]


def load_all(
    sources: list, general: pytest.MonkeyPatch | None = None, **kwargs: object
) -> tuple[dict[str, object], list[LoadResult]]:
    """Load ``sources`` in turn into a new store (by the general path only if ``general``
    is given) and snapshot it."""
    with Store(":memory:") as store, general.context() if general else nullcontext() as m:
        if m is not None:
            general_only(m)
        results = [store.load(s, **kwargs) for s in sources]
        return snapshot(store), results


def assert_paths_agree(
    sources: list, general: pytest.MonkeyPatch, **kwargs: object
) -> tuple[dict[str, object], list[LoadResult]]:
    """Load ``sources`` both ways (one-pass first load where it applies, and the general
    path only) and check the stores and load results are the same; the one-pass side."""
    fast, fast_results = load_all(sources, **kwargs)
    slow, slow_results = load_all(sources, general, **kwargs)
    assert_same(fast, slow)
    assert fast_results == slow_results
    return fast, fast_results


def sample_parts() -> tuple[pa.Table, pa.Table]:
    """A realistic sample split in two overlapping loads, with identities across both."""
    table = generate_sample(4000, seed=3)
    return table.slice(0, 2600), table.slice(2000)


def test_the_sample_loads_in_one_pass_and_equals_the_general_path(
    monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    first, second = sample_parts()
    assert pa.compute.sum(pa.compute.is_valid(first.column("user_id"))).as_py() > 0
    fast, fast_results = assert_paths_agree([first, second], monkeypatch)
    assert first_loads == [True]
    assert fast_results[0].rows_added == 2600 and fast_results[1].duplicates == 600


def test_identity_stitching_of_the_first_load_reaches_earlier_anonymous_events(
    store: Store, first_loads: list[bool]
) -> None:
    store.load(
        log(
            ("a", 0, "page_view"),
            ("a", 5, "login", {"user_id": "u1"}),
            ("b", 7, "page_view"),
            ("c", 8, "page_view", {"user_id": "u2"}),
            ("c", 9, "login", {"user_id": "u3"}),
        )
    )
    assert first_loads == [True]
    persons = store.events()[["anonymous_id", "person_id"]].values.tolist()
    assert persons == [["a", "u1"], ["a", "u1"], ["b", "b"], ["c", "u2"], ["c", "u3"]]
    assert dict(store.db.rows("SELECT * FROM identities")) == {"a": "u1", "c": "u2"}


def test_derived_sessions_and_channels_equal_the_general_path(
    monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    first, second = sample_parts()
    bare = [t.drop_columns(["session_id", "channel"]) for t in (first, second)]
    fast, fast_results = assert_paths_agree(bare, monkeypatch)
    assert first_loads == [True]


def test_a_parquet_file_with_partly_missing_sessions_goes_the_general_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    first, _ = sample_parts()
    session = first.column("session_id").to_pylist()
    session[100] = None
    path = tmp_path / "events.parquet"
    pq.write_table(first.set_column(5, "session_id", pa.array(session)), path)
    fast, _ = load_all([path])
    assert first_loads == [False]
    slow, _ = load_all([path], monkeypatch)
    assert_same(fast, slow)
    assert fast["events"]["session_id"].notna().all()


def test_a_first_load_with_a_bad_row_writes_nothing_and_names_the_line(
    tmp_path: Path, first_loads: list[bool]
) -> None:
    rows = [
        f"e{i},2024-03-01T10:{i:02d}:00Z,page_view,a{i % 3},,s{i % 3},direct,,," for i in range(60)
    ]
    rows[55] = "e55,yesterday,page_view,a1,,s1,direct,,,"
    path = tmp_path / "events.csv"
    path.write_text(CSV_HEADER + "\n".join(rows) + "\n")
    with Store(tmp_path / "store.duckdb") as store:
        with pytest.raises(ValidationError, match=r"events\.csv:57: column .ts.") as caught:
            store.load(path)
        assert [(r.line, r.column) for r in caught.value.rejects] == [(57, "ts")]
        assert store.info()["events"] == 0 and store.generation == 0
        assert store.db.scalar("SELECT count(*) FROM identities") == 0
    assert first_loads == [False]


def test_a_first_load_with_skip_keeps_the_valid_rows_and_reports_the_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        CSV_HEADER
        + "\n".join(
            [
                'e1,2024-03-01T10:00:00Z,page_view,a1,,s1,direct,,,"{""k"": 1}"',
                "e2,2024-03-01T10:01:00Z,login,a1,u1,s1,direct,,,",
                "e3,2024-03-01T10:02:00Z,purchase,a1,u1,s1,direct,12.5x,,",
                'e4,2024-03-01T10:03:00Z,add_to_cart,a2,,s2,direct,,"[{""item_id"": ""p1"", ""price"": 3}]",{bad',
                "e5,2024-03-01T10:04:00Z,page_view,a2,,s2,direct,,,",
            ]
        )
        + "\n"
    )
    fast, fast_results = assert_paths_agree([path], monkeypatch, on_error="skip")
    assert first_loads == [False]
    assert [(r.line, r.column) for r in fast_results[0].rejects] == [
        (4, "value"),
        (5, "properties"),
    ]
    assert fast["info"]["events"] == 3


def test_a_clean_csv_with_text_values_loads_in_one_pass_like_the_general_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        CSV_HEADER
        + "\n".join(
            [
                'e1,2024-03-01T10:00:00+01:00,page_view,a1,,s1,direct,,,"{""k"": [1, 2]}"',
                "e2,2024-03-01 10:01:00,login,,u1,s1,email,,,",
                'e3,2024-03-01T10:02:00Z,purchase,a1,u1,s1,direct,12.50,"[{""item_id"": ""p1"", '
                '""price"": 3, ""quantity"": 2}]",',
                "e4,2024-03-01T10:03:00Z,page_view,a2,,s2,direct,,,",
            ]
        )
        + "\n"
    )
    fast, fast_results = assert_paths_agree([path], monkeypatch)
    assert first_loads == [True]


def test_a_repeated_event_id_in_the_first_file_keeps_its_first_row(
    monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    events = log(
        ("a", 0, "page_view"),
        ("a", 1, "view_item"),
        ("b", 2, "page_view"),
        ("a", 3, "login", {"user_id": "u1"}),
    )
    events.loc[2, "event_id"] = "e0"
    fast, fast_results = assert_paths_agree([events], monkeypatch)
    assert first_loads == [False]
    assert (fast_results[0].rows_added, fast_results[0].duplicates) == (3, 1)
    assert fast["events"].set_index("event_id").loc["e0", "anonymous_id"] == "a"


@pytest.mark.parametrize(
    "column, value", [("event", None), ("event_id", None), ("anonymous_id", None), ("page", "")]
)
def test_a_row_the_general_path_would_reject_or_repair_sends_the_load_back(
    column: str, value: object, monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    events = log(
        ("a", 0, "page_view", {"page": "/"}),
        ("b", 1, "view_item", {"page": "/p"}),
        ("c", 2, "page_view", {"page": "/"}),
    )
    events.loc[1, column] = value
    fast, fast_results = assert_paths_agree([events], monkeypatch, on_error="skip")
    assert first_loads == [False]


def test_a_source_with_only_user_ids_loads_in_one_pass_like_the_general_path(
    monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    events = log(("u1", 0, "page_view"), ("u1", 1, "login"), ("u2", 2, "page_view"))
    events = events.rename(columns={"anonymous_id": "user_id"})
    fast, fast_results = assert_paths_agree([events], monkeypatch)
    assert first_loads == [True]


def test_zoned_timestamps_are_stored_as_utc_wall_clock_by_both_paths(
    monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    events = log(("a", 0, "page_view"), ("b", 90, "page_view"))
    events["ts"] = pd.to_datetime(
        ["2024-03-31T01:30:00Z", "2024-10-27T02:30:00+01:00"], utc=True, format="ISO8601"
    ).tz_convert("Europe/Berlin")
    fast, _ = load_all([events])
    assert first_loads == [True]
    slow, _ = load_all([events], monkeypatch)
    assert_same(fast, slow)
    assert [str(t) for t in fast["events"]["ts"]] == ["2024-03-31 01:30:00", "2024-10-27 01:30:00"]


def test_a_load_leaves_the_connections_thread_count_as_it_was(first_loads: list[bool]) -> None:
    with Store(":memory:") as store:
        store.db.execute("SET threads = 2")
        store.load(log(("a", 0, "page_view"), ("b", 1, "page_view")))
        store.load(log(("c", 2, "page_view")))
        assert store.db.scalar("SELECT current_setting('threads')") == 2
    assert first_loads == [True]


def test_sessions_without_channels_take_each_sessions_first_channel_like_the_general_path(
    monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    # The first channel comes from a table filled before the insert (ADR 0196): the
    # session's earliest row, ties at one instant broken by the row's line, whatever the
    # file's order; a row of another session in between changes nothing.
    events = log(
        (
            "a",
            5,
            "page_view",
            {"session_id": "s1", "utm_source": "newsletter", "utm_medium": "email"},
        ),
        ("a", 1, "page_view", {"session_id": "s1", "utm_source": "google", "utm_medium": "cpc"}),
        ("b", 1, "page_view", {"session_id": "s2", "referrer": "https://www.facebook.com/x"}),
        (
            "a",
            1,
            "page_view",
            {"session_id": "s1", "utm_source": "newsletter", "utm_medium": "email"},
        ),
        ("b", 1, "add_to_cart", {"session_id": "s2"}),
        ("c", 3, "page_view", {"session_id": "s3"}),
    )
    fast, _ = assert_paths_agree([events], monkeypatch)
    assert first_loads == [True]
    channels = dict(zip(fast["events"]["session_id"], fast["events"]["channel"], strict=True))
    assert channels == {"s1": "paid search", "s2": "organic social", "s3": "direct"}


def test_a_sample_without_channels_loads_in_one_pass_and_leaves_no_table_behind(
    monkeypatch: pytest.MonkeyPatch, first_loads: list[bool]
) -> None:
    first, second = sample_parts()
    bare = [t.drop_columns(["channel"]) for t in (first, second)]
    shuffled = bare[0].take(pa.array(range(bare[0].num_rows - 1, -1, -1)))  # latest first
    assert_paths_agree([shuffled, bare[1]], monkeypatch)
    assert first_loads == [True]
    with Store(":memory:") as store:
        store.load(shuffled)
        assert store.db.rows("SELECT table_name FROM duckdb_tables() WHERE temporary") == []
