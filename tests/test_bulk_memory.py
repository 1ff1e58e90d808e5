"""The one-time steps over every event run within a DuckDB memory cap (ADR 0172).

A load, the timeline's build, the person index and a cache's first query run under
``SHOPFUNNEL_BULK_MEMORY`` (2GB unless set): DuckDB's sorts, joins and aggregates spill to
the store's temporary directory past it. The reference for each is the same step without a
cap that binds: a store of 100,000 sample events loaded, sorted and indexed under a 32MB cap
(which makes DuckDB write temporary files) must hold exactly what the uncapped one holds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from shopfunnel.errors import StoreError
from shopfunnel.sample import generate_sample
from shopfunnel.store import memory, person_index
from shopfunnel.store import timeline as timeline_store
from shopfunnel.store.db import Database
from shopfunnel.store.memory import BULK_MEMORY_ENV, bulk_memory, release_cached_blocks
from shopfunnel.store.store import Store

EVENTS = 100_000
SPILLING = "32MB"  # DuckDB writes temporary files at this cap for 100,000 events
TOO_SMALL = "8MB"  # and cannot load them at all at this one


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sample") / "sample.parquet"
    pq.write_table(generate_sample(EVENTS, seed=3), path)
    return path


def _built(path: Path, parquet: Path) -> Store:
    store = Store(str(path))
    store.load(str(parquet))
    timeline_store.of_store(store)
    person_index.of_store(store)
    return store


@pytest.fixture(scope="module")
def stores(parquet: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The same sample built without a binding cap and under a spilling one, with the
    largest size the capped store's temporary directory reached while it was built."""
    folder = tmp_path_factory.mktemp("stores")
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv(BULK_MEMORY_ENV, "4GB")
        free = _built(folder / "free.duckdb", parquet)
        mp.setenv(BULK_MEMORY_ENV, SPILLING)
        spilled: list[int] = [0]
        done = threading.Event()
        tmp = folder / "capped.duckdb.tmp"

        def watch() -> None:  # DuckDB deletes its temporary files when a query ends
            while not done.is_set():
                if tmp.is_dir():
                    size = sum(f.stat().st_size for f in tmp.iterdir() if f.is_file())
                    spilled[0] = max(spilled[0], size)
                time.sleep(0.002)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            capped = _built(folder / "capped.duckdb", parquet)
        finally:
            done.set()
            watcher.join()
    finally:
        mp.undo()
    yield {"free": free, "capped": capped, "spilled": spilled[0]}
    free.close()
    capped.close()


def _rows(db: Database, table: str) -> list[tuple]:
    return db.rows(f"SELECT * FROM {table} ORDER BY ALL")


def test_a_load_under_a_spilling_cap_stores_the_same_events_and_identities(stores) -> None:
    free, capped = stores["free"], stores["capped"]
    assert stores["spilled"] > 0  # the cap was binding: DuckDB wrote temporary files
    for table in ("events", "identities"):
        assert _rows(capped.db, table) == _rows(free.db, table)
    assert capped.db.scalar("SELECT count(*) FROM events") == EVENTS


def _sorted_rows(tl: timeline_store.Timeline) -> np.ndarray:
    """The timeline's rows with ties at one instant put in one order (the build leaves
    rows at the same person and time in no particular order)."""
    cols = [tl.person, tl.t, tl.event, tl.session, *(tl.dims[d] for d in sorted(tl.dims))]
    table = np.stack([np.asarray(c).astype(np.int64) for c in cols])
    return table[:, np.lexsort(table[::-1])]


def test_the_timeline_sorted_under_the_cap_equals_the_uncapped_one(stores) -> None:
    free = timeline_store.of_store(stores["free"])
    capped = timeline_store.of_store(stores["capped"])
    assert len(capped) == EVENTS
    person, t = np.asarray(capped.person), np.asarray(capped.t)
    same = person[1:] == person[:-1]
    assert (person[1:] >= person[:-1]).all() and (t[1:][same] >= t[:-1][same]).all()
    assert capped.events == free.events and capped.labels == free.labels
    assert capped.sessions_nested == free.sessions_nested
    assert (_sorted_rows(capped) == _sorted_rows(free)).all()


def test_the_person_index_built_under_the_cap_equals_the_uncapped_one(stores) -> None:
    free = person_index.of_store(stores["free"])
    capped = person_index.of_store(stores["capped"])
    assert free is not None and capped is not None
    assert capped.ids.to_pylist() == free.ids.to_pylist()
    assert (capped.hashes == free.hashes).all()
    # and they are the store's persons, sorted as ORDER BY person_id sorts them
    expected = stores["free"].db.rows(
        "SELECT DISTINCT person_id FROM events WHERE person_id IS NOT NULL ORDER BY person_id"
    )
    assert capped.ids.to_pylist() == [r[0] for r in expected]


def test_a_load_that_needs_more_than_the_cap_says_how_to_raise_it_and_writes_nothing(
    parquet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BULK_MEMORY_ENV, TOO_SMALL)
    with Store(str(tmp_path / "s.duckdb")) as store:
        limit = store.db.scalar("SELECT current_setting('memory_limit')")
        with pytest.raises(StoreError, match=f"{BULK_MEMORY_ENV}=4GB"):
            store.load(str(parquet))
        assert store.db.scalar("SELECT count(*) FROM events") == 0
        assert store.db.scalar("SELECT count(*) FROM identities") == 0
        assert store.db.scalar("SELECT current_setting('memory_limit')") == limit


def test_the_cap_holds_inside_the_step_and_the_earlier_limit_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(tmp_path / "s.duckdb")
    before = db.scalar("SELECT current_setting('memory_limit')")
    monkeypatch.setenv(BULK_MEMORY_ENV, "300MB")
    with bulk_memory(db):
        inside = db.scalar("SELECT current_setting('memory_limit')")
    assert inside == "286.1 MiB"  # DuckDB's MB are 10^6 bytes
    assert db.scalar("SELECT current_setting('memory_limit')") == before
    db.close()


def test_a_connection_with_a_lower_limit_keeps_it_during_the_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = Database()
    db.execute("SET memory_limit = '100MB'")
    monkeypatch.setenv(BULK_MEMORY_ENV, "300MB")
    with bulk_memory(db):
        assert db.scalar("SELECT current_setting('memory_limit')") == "95.3 MiB"
    assert db.scalar("SELECT current_setting('memory_limit')") == "95.3 MiB"
    db.close()


def test_a_cap_duckdb_cannot_read_is_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = Database()
    monkeypatch.setenv(BULK_MEMORY_ENV, "lots")
    with pytest.raises(StoreError, match=f"{BULK_MEMORY_ENV}='lots'"), bulk_memory(db):
        pass
    db.close()


def test_after_a_bulk_step_duckdb_keeps_no_block_of_the_store_file(
    stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "RELEASE_FLOOR", "1MB")  # below this small store's blocks
    db = stores["capped"].db
    release_cached_blocks(db)
    db.rows("SELECT count(DISTINCT COLUMNS(*)) FROM events")  # every column's blocks
    cached = "SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'BASE_TABLE'"
    read = db.scalar(cached)  # a scan leaves the blocks it read in DuckDB's pool
    assert read > 2 * 2**20
    limit = db.scalar("SELECT current_setting('memory_limit')")
    release_cached_blocks(db)
    assert db.scalar(cached) <= 2**20  # the 1MB the brief limit lets it keep
    assert db.scalar("SELECT current_setting('memory_limit')") == limit


def test_an_in_memory_store_keeps_its_tables_in_memory(store: Store) -> None:
    store.db.execute("CREATE TABLE t AS SELECT range AS x FROM range(100000)")
    release_cached_blocks(store.db)
    cached = "SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'"
    assert store.db.scalar(cached) > 0
    assert store.db.scalar("SELECT count(*) FROM t") == 100000
