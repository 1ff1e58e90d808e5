"""Live appends, part one: the **segments** a load writes so the timeline keeps up with it.

Each load that adds events writes a segment (:func:`append`, from the store's load):

* the rows it added, encoded as the timeline encodes them (person hash, µs, event, session
  hash, breakdown codes) from the stored, stitched rows, with the segment's own small
  dictionaries of event names and breakdown values;
* the **retracted persons**: when the load's identity stitching moved earlier events from
  one person id to another (an anonymous id identified, or a device's earliest user
  changed), the old and the new owner of every moved row. Their rows in the base and in
  earlier segments no longer hold; the segment carries *every* stored row of those
  persons instead (re-read from the store after the stitch);
* ``from_key`` and ``to_key``: the store's key (:func:`shopfunnel.store.timeline.store_key`)
  before and after the load. A base timeline built at key ``K`` is extended by the chain
  of segments starting at ``K`` (:func:`chain`); a missing link (a crash between the
  store's commit and the segment's write, a load too large for a segment) means no chain,
  and the next funnel rebuilds the timeline from the store, as before.

Segments live beside the timeline in ``<store>.timeline.delta/<generation>.npz``
(written to a temporary name and renamed), or in memory for an in-memory store.
:mod:`shopfunnel.store.live` reads a base and its chain as one view and compacts them.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from shopfunnel.store import timeline as tl_mod
from shopfunnel.store.db import Database, quote_ident
from shopfunnel.store.timeline import DIMENSIONS, FORMAT_VERSION, SWAP_LOCK, folder_for

MAX_SEGMENT_ROWS = 2_000_000  # a larger load leaves the timeline to be rebuilt

# guards the segments kept in memory and read from disk, and the timeline cache
# (shopfunnel.store.live takes it too)
LOCK = threading.RLock()
_MEMORY: weakref.WeakKeyDictionary[Any, dict[int, Segment]] = weakref.WeakKeyDictionary()
_LOADED: dict[tuple[str, int], tuple[float, Segment]] = {}  # segment files read, by mtime


def delta_folder(store_path: str) -> Path | None:
    """Where a store file keeps its timeline's segments (None for an in-memory store)."""
    if store_path == ":memory:":
        return None
    return Path(store_path + ".timeline.delta")


def key_parts(key: str) -> tuple[str, int]:
    """The store id and generation of a timeline key (``store_id:generation:events``)."""
    store_id, generation, _ = key.rsplit(":", 2)
    return store_id, int(generation)


@dataclass
class Segment:
    """What one load added to the timeline (see the module docstring)."""

    from_key: str
    to_key: str
    columns: dict[str, np.ndarray]  # person, t, event, session, dim_<d> (local codes)
    names: list[str]  # event code i is names[i]
    labels: dict[str, list[str]]  # breakdown code i of dim d is labels[d][i]; -1 none
    retract: np.ndarray  # person hashes whose earlier rows no longer hold
    nested: bool  # every session of these rows belongs to one person

    @property
    def generation(self) -> int:
        return key_parts(self.to_key)[1]

    def __len__(self) -> int:
        return len(self.columns["t"])

    def save(self, folder: Path) -> Path:
        """Write the segment as ``<generation>.npz`` in ``folder`` (renamed into place)."""
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "from_key": self.from_key,
            "to_key": self.to_key,
            "names": self.names,
            "labels": self.labels,
            "nested": self.nested,
        }
        path = folder / f"{self.generation:012d}.npz"
        tmp = folder / f".{uuid.uuid4().hex[:8]}.tmp"
        try:
            arrays: dict[str, Any] = {
                "__meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
                "__retract": self.retract,
                **self.columns,
            }
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: Path) -> Segment | None:
        """The segment in ``path``, or None if it cannot be read."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["__meta"]).decode())
                if meta.get("format") != FORMAT_VERSION:
                    return None
                columns = {k: z[k] for k in z.files if not k.startswith("__")}
                return cls(
                    meta["from_key"],
                    meta["to_key"],
                    columns,
                    meta["names"],
                    meta["labels"],
                    z["__retract"],
                    bool(meta["nested"]),
                )
        except (OSError, ValueError, KeyError):
            return None


# -- writing (called by Store's load, in the loading process) ---------------------------
def wanted(store: Any) -> bool:
    """Whether loads into ``store`` should write segments: its timeline is kept (in
    memory, or a folder beside the file) or it runs live (``store.live_timeline``: the
    server keeps segments from its first batch on, so a base built later can use them)."""
    if store.live_timeline:
        return True
    if store.path == ":memory:":
        with LOCK:
            return store in tl_mod._CACHE
    folder = folder_for(store.path)
    return folder is not None and (folder / "meta.json").exists()


def append(store: Any, from_key: str, to_key: str) -> Segment | None:
    """Write the segment of the load that just committed: the rows in the temporary
    table ``__fresh`` (as written, before the load's stitching) and the persons in
    ``__moved`` (owners of rows the stitching moved). Returns None when the load is too
    large for a segment (the timeline is then rebuilt by the next funnel)."""
    db: Database = store.db
    fresh = int(db.scalar("SELECT count(*) FROM __fresh") or 0)
    if fresh > MAX_SEGMENT_ROWS:
        return None
    # the rows as stored now: the stitching may have moved fresh rows too, so the fresh
    # rows of retracted persons come with every other row of theirs, from the events
    moved = bool(db.scalar("SELECT count(*) FROM __moved"))
    # only the columns the segment encodes: a retracted person's rows are read from the
    # whole events table, and reading every column of it cost most of an append
    kept = ", ".join(quote_ident(c) for c in ("ts", "event", "session_id", *DIMENSIONS))
    retracted = (
        (
            f"UNION ALL SELECT person_id, {kept} FROM events WHERE person_id IN "
            "(SELECT person_id FROM __moved)"
        )
        if moved
        else ""
    )
    db.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE __delta_rows AS
        SELECT person_id, {kept} FROM (
            SELECT f.* REPLACE (coalesce(f.user_id, ids.person_id, f.anonymous_id) AS person_id)
            FROM __fresh f LEFT JOIN identities ids ON ids.anonymous_id = f.anonymous_id
        ) WHERE person_id NOT IN (SELECT person_id FROM __moved)
        {retracted}
        """
    )
    try:
        if int(db.scalar("SELECT count(*) FROM __delta_rows") or 0) > MAX_SEGMENT_ROWS:
            return None
        columns, names, labels = _encode(db, "__delta_rows")
        split = db.scalar(
            "SELECT count(*) FROM (SELECT session_id FROM events WHERE session_id IN "
            "(SELECT session_id FROM __delta_rows) GROUP BY session_id "
            "HAVING min(person_id) <> max(person_id))"
        )
        retract = db.arrow("SELECT DISTINCT hash(person_id) AS h FROM __moved").column("h")
        seg = Segment(
            from_key,
            to_key,
            columns,
            names,
            labels,
            retract.to_numpy().astype(np.uint64),
            not split,
        )
    finally:
        db.execute("DROP TABLE IF EXISTS __delta_rows")
    folder = delta_folder(store.path)
    if folder is None:
        with LOCK:
            _MEMORY.setdefault(store, {})[seg.generation] = seg
    else:
        seg.save(folder)
    return seg


def _encode(
    db: Database, relation: str
) -> tuple[dict[str, np.ndarray], list[str], dict[str, list[str]]]:
    """A relation's rows as the timeline's columns, with local dictionaries (the same
    hashes as :func:`shopfunnel.store.timeline.build`)."""
    dims = ", ".join(
        f"CAST({quote_ident(d)} AS VARCHAR) AS {quote_ident('dim_' + d)}" for d in DIMENSIONS
    )
    table = db.arrow(
        f"SELECT hash(person_id) AS person, epoch_us(ts) AS t, event, CASE WHEN session_id "
        f"IS NULL THEN 0 ELSE hash(session_id) END AS session, {dims} FROM {relation} "
        "WHERE person_id IS NOT NULL AND ts IS NOT NULL"
    )
    columns = {
        "person": _np(table.column("person"), np.uint64),
        "t": _np(table.column("t"), np.int64),
        "session": _np(table.column("session"), np.uint64),
    }
    codes, names = _dictionary(table.column("event"))
    columns["event"] = codes
    labels = {}
    for d in DIMENSIONS:
        columns[f"dim_{d}"], labels[d] = _dictionary(table.column(f"dim_{d}"))
    return columns, names, labels


def _np(column: pa.ChunkedArray, dtype: Any) -> np.ndarray:
    return column.to_numpy().astype(dtype, copy=False) if len(column) else np.zeros(0, dtype)


def _dictionary(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """int32 codes into a list of values (-1 for a missing value)."""
    import pyarrow.compute as pc  # a load's delta only: reading a timeline never

    encoded = pc.dictionary_encode(column.combine_chunks().cast(pa.string()))
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, [str(v) for v in encoded.dictionary.to_pylist()]


# -- reading ----------------------------------------------------------------------------
def _segment(store: Any, generation: int) -> Segment | None:
    folder = delta_folder(store.path)
    if folder is None:
        with LOCK:
            return _MEMORY.get(store, {}).get(generation)
    path = folder / f"{generation:012d}.npz"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    cache_key = (str(path), generation)
    with LOCK:
        hit = _LOADED.get(cache_key)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    seg = Segment.load(path)
    if seg is not None:
        with LOCK:
            if len(_LOADED) > 256:
                _LOADED.clear()
            _LOADED[cache_key] = (mtime, seg)
    return seg


def chain(store: Any, base_key: str, until: str | None = None) -> list[Segment] | None:
    """The segments that extend a base built at ``base_key``, in order: up to the key
    ``until`` (None if the chain does not reach it), or as far as they go."""
    _, generation = key_parts(base_key)
    out: list[Segment] = []
    key = base_key
    while key != until:
        seg = _segment(store, generation + 1)
        if seg is None or seg.from_key != key:
            break
        out.append(seg)
        key, generation = seg.to_key, generation + 1
    if until is not None and key != until:
        return None
    return out


def prune(store: Any, generation: int) -> None:
    """Delete the segments a base at ``generation`` already holds."""
    folder = delta_folder(store.path)
    if folder is None:
        with LOCK:
            held = _MEMORY.get(store, {})
            for g in [g for g in held if g <= generation]:
                del held[g]
        return
    with SWAP_LOCK:
        for path in folder.glob("*.npz"):
            try:
                if int(path.stem) <= generation:
                    path.unlink(missing_ok=True)
            except ValueError:
                continue


def forget(store_path: str) -> tuple[str, ...]:
    """Delete a store file's segments (erasing a person: they hold its rows)."""
    folder = delta_folder(store_path)
    if folder is None:
        return ()
    with LOCK:  # and the copies read into memory
        for cached in [k for k in _LOADED if Path(k[0]).parent == folder]:
            del _LOADED[cached]
    if not folder.exists():
        return ()
    shutil.rmtree(folder, ignore_errors=True)
    return (str(folder),)
