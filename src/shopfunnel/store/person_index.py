"""The person ids behind the timeline's person hashes.

The timeline (:mod:`shopfunnel.store.timeline`) knows a person by ``hash(person_id)``, which
is all a funnel needs. An analysis that names persons (the stage model's one row per person)
needs the ids back, in the order people read them (sorted by ``person_id``, as
``ORDER BY person_id`` gives). Asking the events for them costs a ``GROUP BY person_id``
over every event (about a second at 10M events); this index does it once per change of
the events and keeps the answer beside the timeline:

* ``ids``: every person id, sorted (bytewise, as DuckDB sorts ``VARCHAR``), as an Arrow array;
* ``hashes``: ``hash(person_id)`` of each (uint64), in the same order (and, saved beside
  them, the order that sorts the hashes);
* :meth:`PersonIndex.rows_of`: for hashes in timeline order, the row in ``ids``.

It is saved as ``person_ids.arrow`` (Arrow IPC) in the timeline's folder, with the
timeline's key in its metadata, so a rebuilt timeline (a load, an erase) leaves it stale
and the next call writes it again; an in-memory store keeps it in memory. When two ids
share a hash (about one chance in 10^7 at a million persons) the index is not usable
(:func:`of_store` returns None) and the caller counts by SQL.
"""

from __future__ import annotations

import weakref
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from shopfunnel.store import cache
from shopfunnel.store.memory import bulk_memory, give_back_memory
from shopfunnel.store.timeline import folder_for, store_key, writable

FILE = "person_ids.arrow"


class PersonIndex:
    """Person ids sorted, with their hashes (see the module docstring). The hash look-up is
    prepared on first use: listing the ids needs none of it."""

    def __init__(self, key: str, table: pa.Table) -> None:
        self.key = key
        self._table = table

    def __len__(self) -> int:
        return self._table.num_rows

    @cached_property
    def ids(self) -> pa.Array:
        """Every person id, sorted. Taken on first use: counting by stage needs only the
        hashes, and a saved index's columns are mapped from its file, not read (at 14
        million persons the ids are 220 MB)."""
        return _column(self._table, "person_id")

    @cached_property
    def hashes(self) -> np.ndarray:
        """``hash(person_id)`` of each id, in the order of :attr:`ids`."""
        return _column(self._table, "h").to_numpy().astype(np.uint64, copy=False)

    @cached_property
    def _by_hash(self) -> np.ndarray:  # positions of ``hashes`` in ascending hash order
        if "by_hash" in self._table.column_names:  # saved with the file: no sort each time
            return _column(self._table, "by_hash").to_numpy().astype(np.int64, copy=False)
        return np.argsort(self.hashes, kind="stable")

    @cached_property
    def _sorted(self) -> np.ndarray:
        if "h_sorted" in self._table.column_names:  # saved with the file: no gather
            return _column(self._table, "h_sorted").to_numpy().astype(np.uint64, copy=False)
        return self.hashes[self._by_hash]

    def unique_hashes(self) -> bool:
        """Whether no two ids share a hash (the timeline could not tell them apart)."""
        return len(self._sorted) < 2 or not (np.diff(self._sorted) == 0).any()

    def rows_of(self, hashes: np.ndarray) -> np.ndarray:
        """The row in :attr:`ids` of each hash (-1 for a hash no person has)."""
        if len(self._sorted) == 0:
            return np.full(len(hashes), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._sorted, hashes), len(self._sorted) - 1)
        return np.where(self._sorted[at] == hashes, self._by_hash[at], -1).astype(np.int64)


def _column(table: pa.Table, name: str) -> pa.Array:
    """One column as one array: a column saved in one piece is used where it lies (mapped
    from the file, read only where touched), others are joined."""
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _make(key: str, table: pa.Table) -> PersonIndex | None:
    """The index of a freshly queried table, or None when two ids share a hash."""
    index = PersonIndex(key, table)
    return index if index.unique_hashes() else None


def _query(db: Any) -> pa.Table:
    with bulk_memory(db):
        return db.arrow(
            "SELECT hash(person_id) AS h, person_id FROM (SELECT DISTINCT person_id FROM events "
            "WHERE person_id IS NOT NULL AND ts IS NOT NULL) ORDER BY person_id"
        )


_CACHE: weakref.WeakKeyDictionary[Any, PersonIndex | None] = weakref.WeakKeyDictionary()


def forget(store: Any) -> None:
    """Let go of the store's index kept in memory when it is saved beside the timeline: the
    pages of the file it mapped leave the process once nothing else holds the index, and
    the next :func:`of_store` maps it again (a report drops it after its stage sections, ADR
    0181). An index with no file (an in-memory store, a folder not writable) is kept: it
    would have to be built again."""
    folder = folder_for(store.path)
    if folder is not None and (folder / FILE).is_file():
        _CACHE.pop(store, None)


def of_store(store: Any, *, build: bool = True) -> PersonIndex | None:
    """The person index of a :class:`shopfunnel.store.Store` for its present events: the
    one in memory or beside the file when still valid, else built (and saved when the
    folder is writable) unless ``build`` is false. None when two person ids share a hash
    (or when there is none and ``build`` is false)."""
    key = store_key(store.db)
    if store in _CACHE:
        cached = _CACHE[store]
        if cached is not None and cached.key == key:
            return cached
    folder = folder_for(store.path)
    index = _open(folder / FILE, key) if folder is not None else None
    if index is None and not build:
        return None
    # a new index is saved, and one saved before the sorted hashes were (or in pieces)
    # is saved again in the present layout, once
    save = index is None or "h_sorted" not in index._table.column_names
    if index is None:
        index = _make(key, _query(store.db))
    if save and index is not None and folder is not None and folder.is_dir() and writable(folder):
        _save(folder / FILE, key, _layout(index))
        # read back mapped, and the built columns freed: the command that asked for the
        # index then holds it as a warm one does, not in anonymous memory (at 100M events
        # the built index and what DuckDB freed making it were gigabytes of its peak)
        saved = _open(folder / FILE, key)
        if saved is not None:
            index = saved
            give_back_memory()
            pa.default_memory_pool().release_unused()  # Arrow's pool keeps freed pages too
    _CACHE[store] = index
    return index


def _layout(index: PersonIndex) -> pa.Table:
    """What is saved: the ids and their hashes, the order that sorts the hashes and the
    sorted hashes, each column in one piece (read back mapped, without a copy)."""
    return pa.table(
        {
            "h": pa.array(index.hashes),
            "person_id": index.ids,
            "by_hash": pa.array(index._by_hash),
            "h_sorted": pa.array(index._sorted),
        }
    )


def _open(path: Path, key: str) -> PersonIndex | None:
    table = cache.read_keyed(path, key)
    return None if table is None else PersonIndex(key, table)  # saved without shared hashes


def _save(path: Path, key: str, table: pa.Table) -> None:
    cache.write_keyed(path, key, table)
