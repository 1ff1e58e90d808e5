"""Small query results kept beside the timeline, so each process need not scan the events.

Several commands start from a small table that only a scan of every event can give: the
orders (about 70,000 rows at 10M events) behind ``rfm``, ``retention``, ``stages`` and
``flow``. A fresh process pays that scan cold (DuckDB loading and checking the blocks of
the columns it reads): about 0.3 s CPU at 10M events, for a result of a few MB. The result
changes only when the events change, so it is kept like the person index
(:mod:`shopfunnel.store.person_index`):

* an Arrow IPC file ``<name>.arrow`` in the timeline's folder (``<store>.timeline/``), with
  the store's key (id, generation, event count: :func:`shopfunnel.store.timeline.store_key`)
  and a digest of the query in its metadata. A load (new generation) or a change of the
  query leaves it stale, and the next reader queries the events again and rewrites it
  (written to a temporary file and renamed: a reader never sees half a file);
* only where the timeline's folder already exists and is writable (a store whose timeline
  was built); otherwise, and for an in-memory store, the query runs every time;
* erasing a person removes the folder with everything in it (:mod:`shopfunnel.store.erase`).

The first reader after a load pays the query plus a write of a few MB; every later one
reads the file (a few milliseconds). ADR 0095.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from shopfunnel.store.memory import bulk_memory
from shopfunnel.store.timeline import folder_for, store_key, writable


def query(store: Any, name: str, sql: str) -> pa.Table:
    """The result of ``sql`` (a query over the store's events, no parameters) as an Arrow
    table: from ``<name>.arrow`` beside the timeline when it was written for the store's
    present events and this query, else from the store (and then saved when the timeline's
    folder exists and is writable)."""
    folder = folder_for(store.path)
    if folder is None or not folder.is_dir():
        return store.db.arrow(sql)
    key = f"{store_key(store.db)}|{hashlib.sha256(sql.encode()).hexdigest()[:16]}"
    path = folder / f"{name}.arrow"
    found = read_keyed(path, key)
    if found is not None:
        return found.replace_schema_metadata(None)
    with bulk_memory(store.db):  # a scan of every event, once per change of them
        table = store.db.arrow(sql)
    if writable(folder):
        write_keyed(path, key, table)
    return table


def read_keyed(path: Path, key: str) -> pa.Table | None:
    """The table saved in ``path`` by :func:`write_keyed` with this ``key`` (None when the
    file is missing, unreadable or written for another key)."""
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid):
        return None
    meta = table.schema.metadata or {}
    if meta.get(b"key", b"").decode() != key:
        return None
    return table


def write_keyed(path: Path, key: str, table: pa.Table) -> None:
    """Save ``table`` with ``key`` in its metadata, atomically (a temporary file renamed,
    so a reader never sees half a file); a failure to write leaves nothing behind."""
    tmp = path.with_name(f"{path.name}.{np.random.default_rng().integers(1 << 30):x}.tmp")
    try:
        keyed = table.replace_schema_metadata({"key": key})
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, keyed.schema) as writer:
            writer.write_table(keyed)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
