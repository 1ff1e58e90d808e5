"""The sample loaded straight into a store (``load_sample``, what ``demo`` does) is the store
``write_sample`` + ``Store.load`` (``shopfunnel sample`` + ``shopfunnel ingest``) builds."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shopfunnel.errors import InputError
from shopfunnel.sample import generate_sample, load_sample, parse_incident, write_sample
from shopfunnel.store.prepare import load_blocks
from shopfunnel.store.store import Store

INCIDENT = [parse_incident("checkout-failure:2024-03-12:3:mobile")]


def _rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_load_sample_builds_the_store_sample_and_ingest_build(tmp_path: Path) -> None:
    n = 150_000
    parquet = write_sample(
        tmp_path / "s.parquet", n, seed=3, incidents=INCIDENT, chunk_events=100_000
    )
    with Store(tmp_path / "ingested.duckdb") as store:
        store.load(parquet)
    calls: list[int] = []
    with Store(tmp_path / "direct.duckdb") as store:
        # small chunks: several tables, each with its own stitching, written in turn
        result = load_sample(
            store, n, seed=3, incidents=INCIDENT, chunk_events=25_000, progress=calls.append
        )
    assert (result.rows_read, result.rows_added, result.duplicates) == (n, n, 0)
    assert calls == sorted(calls) and calls[-1] == n and len(calls) >= 2
    con = duckdb.connect()
    con.execute(f"ATTACH '{tmp_path / 'ingested.duckdb'}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{tmp_path / 'direct.duckdb'}' AS b (READ_ONLY)")
    for table in ("events", "identities"):
        counts = con.execute(
            f"SELECT (SELECT count(*) FROM a.{table}), (SELECT count(*) FROM b.{table})"
        ).fetchone()
        assert counts[0] == counts[1] > 0, table
        for x, y in (("a", "b"), ("b", "a")):
            only = con.execute(
                f"SELECT count(*) FROM (SELECT * FROM {x}.{table} EXCEPT ALL "
                f"SELECT * FROM {y}.{table})"
            ).fetchone()[0]
            assert only == 0, f"{table}: {only} rows only in {x}"
    # the same rows in the same order (row i of one store is row i of the other)
    moved = con.execute(
        "SELECT count(*) FROM (SELECT event_id, rowid AS r FROM a.events) x "
        "JOIN (SELECT event_id, rowid AS r FROM b.events) y USING (event_id) WHERE x.r <> y.r"
    ).fetchone()[0]
    assert moved == 0
    stitched = con.execute(
        "SELECT count(*) FROM b.events WHERE user_id IS NULL AND person_id <> anonymous_id"
    ).fetchone()[0]
    assert stitched > 0  # anonymous events of identified visitors carry their person
    generation = "SELECT value FROM {}.meta WHERE key = 'generation'"
    assert (
        con.execute(generation.format("a")).fetchall()
        == con.execute(generation.format("b")).fetchall()
    )


def test_load_sample_refuses_a_store_that_holds_events(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        load_sample(store, 5_000, seed=1)
        with pytest.raises(InputError, match="already holds events"):
            load_sample(store, 5_000, seed=2)
        assert store.db.scalar("SELECT count(*) FROM events") == 5_000


def test_load_blocks_refuses_an_anonymous_id_identified_in_two_tables(tmp_path: Path) -> None:
    table = generate_sample(5_000, seed=1)
    identified = table.filter(pc.is_valid(table["user_id"]))
    counts = identified.group_by("anonymous_id").aggregate([("event_id", "count")])
    anon = counts.filter(pc.greater(counts["event_id_count"], 1))["anonymous_id"][0]
    of_anon = pc.and_(pc.equal(table["anonymous_id"], anon), pc.is_valid(table["user_id"]))
    mine = table.filter(of_anon)
    # its identified rows split over two tables: per-table stitching would not see them
    # together, so the load refuses (the identities' key) and writes nothing
    first = pa.concat_tables([table.filter(pc.invert(of_anon)), mine.slice(0, 1)])
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(InputError, match="nothing was loaded"):
            load_blocks(store, [first, mine.slice(1)], source="test")
        assert store.db.scalar("SELECT count(*) FROM events") == 0
        assert store.db.scalar("SELECT count(*) FROM identities") == 0


def test_load_blocks_refuses_a_repeated_event_id_and_writes_nothing(tmp_path: Path) -> None:
    table = generate_sample(3_000, seed=1)
    anonymous = table.filter(pc.is_null(table["user_id"]))
    repeat = anonymous.slice(0, 1).set_column(
        table.schema.get_field_index("anonymous_id"), "anonymous_id", pa.array(["someone-else"])
    )
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(InputError, match="1 repeated event id"):
            load_blocks(store, [table, repeat], source="test")
        assert store.db.scalar("SELECT count(*) FROM events") == 0


def test_load_blocks_refuses_a_bad_row_and_writes_nothing(tmp_path: Path) -> None:
    table = generate_sample(3_000, seed=1)
    bad = table.slice(0, 1).set_column(
        table.schema.get_field_index("event"), "event", pa.array([""])
    )
    bad = bad.set_column(
        table.schema.get_field_index("event_id"), "event_id", pa.array(["fresh-id"])
    )
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(InputError, match="refused"):
            load_blocks(store, [table, bad], source="test")
        assert store.db.scalar("SELECT count(*) FROM events") == 0


def test_a_failed_load_reaches_the_caller_and_the_generator_stops_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shopfunnel.store import prepare

    def broken(store: Store, blocks, **_: object):
        next(iter(blocks))
        raise OSError("disk full")

    monkeypatch.setattr(prepare, "load_blocks", broken)
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(OSError, match="disk full"):
        load_sample(store, 60_000, seed=1, chunk_events=10_000)
