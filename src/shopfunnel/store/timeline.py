"""The timeline: the events sorted once by person and time, as small integer columns.

A funnel only needs, per event, who (the person), when (µs), what (the event name) and,
for some funnels, the session and one breakdown column. Reading those from the store
means decoding the person-id strings and sorting them again for every funnel, which is
most of a funnel's time. The timeline does that work once per change of the events:

* ``person``: uint64 — DuckDB's ``hash`` of the person id (the owner the SQL path uses);
* ``t``: int64 — microseconds since 1970 (UTC);
* ``event``: int16 — code into ``events`` (the names; code 0 is a missing name);
* ``session``: uint64 — ``hash(session_id)``, 0 when the event has none (absent if the
  events have no ``session_id`` column);
* one int16 code column per breakdown :data:`DIMENSIONS` present in the events (``-1`` =
  no value; labels in ``labels[name]``); a column with more than 32,000 values is left
  out, and a breakdown by it runs on the SQL path.

Rows are ordered by (person, t); rows at one instant in no particular order. A funnel
then selects the rows of its steps with a compiled pass over ``event``
(:func:`shopfunnel.store.timeline_select.select`), reorders events at the same instant by
step, and hands them to the same kernel as the SQL path.

A store keeps its timeline in a folder beside the DuckDB file (``<store>.timeline/``,
NumPy ``.npy`` files, and ``meta.json``; a funnel reads the chunks it works on), keyed by the store's id and
:attr:`shopfunnel.store.Store.generation`. A load into a store whose timeline is kept
extends it instead of making it stale: :mod:`shopfunnel.store.live` writes the new rows
as a sorted delta that is merged on read (a second piece, :attr:`Timeline.side`) and
compacted into a new base from time to time (ADR 0150). Without a delta chain up to the
store's generation the next funnel rebuilds the timeline. An in-memory store keeps it in
memory.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from shopfunnel.store.db import Database, quote_ident
from shopfunnel.store.memory import bulk_memory

DIMENSIONS = ("channel", "device", "country", "utm_source", "utm_medium", "utm_campaign")
MAX_CODES = 32_000
FORMAT_VERSION = 4
BUILD_BATCH_ROWS = 2_000_000


@dataclass
class Timeline:
    """The events as sorted integer columns (see the module docstring)."""

    key: str
    person: np.ndarray
    t: np.ndarray
    event: np.ndarray
    events: list[str | None]
    session: np.ndarray | None = None
    dims: dict[str, np.ndarray] = field(default_factory=dict)
    sessions_nested: bool = True  # no session has events of two persons
    labels: dict[str, list[str]] = field(default_factory=dict)
    # a live view (shopfunnel.store.live): the persons with fresh events, in a second
    # sorted piece; their rows in this piece carry event code 0 and take part in nothing
    side: Timeline | None = field(default=None, repr=False)
    live: Any = field(default=None, repr=False)  # what built the view (live.py's state)
    files: dict[str, int] = field(default_factory=dict, repr=False)  # column -> open fd

    def __len__(self) -> int:
        """Rows of this piece (:meth:`pieces` lists every piece of a live view)."""
        return len(self.t)

    def pieces(self) -> list[Timeline]:
        """The sorted pieces a funnel reads: this one, and the live side if any. A person's
        counted rows are all in one piece."""
        return [self] if self.side is None else [self, self.side]

    @property
    def rows(self) -> int:
        """Events in the timeline (every piece; rows hidden for the side not counted)."""
        return sum(len(p) for p in self.pieces()) - (self.live.hidden_rows if self.live else 0)

    def read(self, column: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start..stop`` of a column (``person``, ``t``, ``event``, ``session`` or
        ``dim_<name>``). A saved timeline's rows are read from its file, not mapped: a
        funnel's memory then holds the chunks it works on, never the whole timeline. (The
        session hashes of a per-session funnel are gathered through the map instead, only
        at the selected rows: faster at 100M events, for up to 8 bytes an event of RSS.)"""
        arr = self.dims[column[4:]] if column.startswith("dim_") else getattr(self, column)
        fd = self.files.get(column)
        if isinstance(arr, np.memmap) and fd is not None:
            # through the file opened with the timeline: a compaction that puts a new
            # timeline in its place while a funnel runs does not change what it reads
            out: Any = np.empty(stop - start, dtype=arr.dtype)
            view = memoryview(out).cast("B")
            at, offset = 0, arr.offset + start * arr.itemsize
            while at < len(view):
                got = os.preadv(fd, [view[at:]], offset + at)
                if got <= 0:
                    raise OSError(f"the timeline file for {column} is shorter than its header")
                at += got
            return out
        return arr[start:stop]

    def event_codes(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.events) if name is not None}

    # -- persistence --------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | Path, key: str | None) -> Timeline | None:
        """The timeline saved in ``folder`` if it was built for ``key`` (any key when
        None), else None. Each column's file is opened once: the timeline reads the same
        files even if a compaction or a rebuild replaces the folder meanwhile."""
        folder = Path(folder)
        fds: dict[str, int] = {}
        try:
            with SWAP_LOCK:
                meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
                if (key is not None and meta.get("key") != key) or (
                    meta.get("format") != FORMAT_VERSION
                ):
                    return None

                def load(name: str) -> np.ndarray:
                    arr = np.load(folder / f"{name}.npy", mmap_mode="r")
                    if len(arr) != meta["rows"]:
                        raise ValueError(f"{name}.npy has {len(arr)} rows, not {meta['rows']}")
                    fds[name] = os.open(folder / f"{name}.npy", os.O_RDONLY)
                    return arr

                tl = cls(
                    key=meta["key"],
                    person=load("person"),
                    t=load("t"),
                    event=load("event"),
                    events=meta["events"],
                    session=load("session") if meta["session"] else None,
                    sessions_nested=meta["sessions_nested"],
                    dims={d: load(f"dim_{d}") for d in meta["labels"]},
                    labels=meta["labels"],
                    files=fds,
                )
            weakref.finalize(tl, _close_all, list(fds.values()))
            return tl
        except (OSError, ValueError, KeyError):
            _close_all(list(fds.values()))
            return None


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


# held while a timeline folder is opened or replaced: in one process, a reader never
# opens half of an old folder and half of a new one
SWAP_LOCK = threading.RLock()


def _sweep(folder: Path, older_than_s: float = 3600) -> None:
    """Remove the half-built (and half-replaced) folders a killed build left beside
    ``folder`` (an hour old: a build running now in another process is left alone)."""
    now = time.time()
    name = glob.escape(folder.name)
    for stale in [*folder.parent.glob(f"{name}.*.tmp"), *folder.parent.glob(f"{name}.*.old")]:
        try:
            if now - stale.stat().st_mtime > older_than_s:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def _replace(tmp: Path, folder: Path) -> None:
    """Put ``tmp`` where ``folder`` is; another process may have just done the same."""
    old = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        with SWAP_LOCK:
            if folder.exists():
                folder.rename(old)
            tmp.rename(folder)
    except OSError:
        pass  # a concurrent build won: its timeline is as good as ours
    finally:
        shutil.rmtree(old, ignore_errors=True)


# -- building ---------------------------------------------------------------------------
class _Column:
    """One column being filled batch by batch: an array in memory, or a ``.npy`` file
    written as the batches come (so a large build holds one batch, not the column)."""

    def __init__(self, n: int, dtype: Any, path: Path | None) -> None:
        self.n, self.dtype, self.at = n, np.dtype(dtype), 0
        self.file = open(path, "wb") if path is not None else None  # noqa: SIM115
        if self.file is not None:
            np.lib.format.write_array_header_1_0(
                self.file,
                {
                    "descr": np.lib.format.dtype_to_descr(self.dtype),
                    "fortran_order": False,
                    "shape": (n,),
                },
            )
            self.array = None
        else:
            self.array = np.empty(n, dtype=self.dtype)

    def put(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if self.file is not None:
            self.file.write(values.tobytes())
        elif self.array is not None:
            self.array[self.at : self.at + len(values)] = values
        self.at += len(values)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.at != self.n:
            raise OSError(
                f"the events changed while their timeline was built ({self.at} "
                f"rows instead of {self.n}): count the funnel again"
            )


def build(
    db: Database,
    relation: str,
    person: str,
    columns: dict[str, str],
    key: str,
    *,
    folder: Path | None = None,
) -> Timeline:
    """Build the timeline of ``relation`` (person expression ``person``): one scan for
    the event names and breakdown values, then one query that codes them (joins with
    the small dictionaries), hashes the ids and sorts fixed-width rows by (person, time).
    With ``folder``, the columns are written there as the sorted batches come (memory
    stays at one batch) and the saved timeline is returned memory-mapped. DuckDB's
    share of the build (the scans, the session check, the sort) runs within
    :func:`~shopfunnel.store.memory.bulk_memory`'s cap, spilling past it."""
    with bulk_memory(db):
        return _build(db, relation, person, columns, key, folder=folder)


def _build(
    db: Database,
    relation: str,
    person: str,
    columns: dict[str, str],
    key: str,
    *,
    folder: Path | None,
) -> Timeline:
    has_session = "session_id" in columns
    where = f"{person} IS NOT NULL AND ts IS NOT NULL"
    coded = ["event", *(d for d in DIMENSIONS if d in columns)]
    lists = ", ".join(f"list(DISTINCT CAST({quote_ident(c)} AS VARCHAR))" for c in coded)
    n, *values = db.rows(f"SELECT count(*), {lists} FROM {relation} WHERE {where}")[0]
    n = int(n)
    distinct = {
        c: sorted(v for v in vals or () if v is not None)  # NULL: no rows
        for c, vals in zip(coded, values, strict=True)
    }
    if len(distinct["event"]) >= MAX_CODES:
        raise OSError("more than 32,000 event names: the funnel runs by SQL")
    dims = [d for d in coded[1:] if len(distinct[d]) <= MAX_CODES]
    # per-session funnels take a session's rows from its person's rows: that needs every
    # session to belong to one person (else the SQL path counts them)
    nested = not has_session or not db.scalar(
        f"SELECT count(*) FROM (SELECT session_id FROM {relation} WHERE {where} AND "
        f"session_id IS NOT NULL GROUP BY session_id HAVING min({person}) <> max({person}))"
    )
    # code 0 is a missing event name (names count from 1); a missing breakdown value is -1
    first = {"event": 1, **{d: 0 for d in dims}}
    null = {"event": 0, **{d: -1 for d in dims}}
    select = [f"hash({person}) AS o", "epoch_us(r.ts) AS t"]
    joins = []
    for i, c in enumerate(["event", *dims]):
        name = f"__tl_dict_{i}"
        db.register(
            name,
            pa.table(
                {
                    "v": pa.array(distinct[c], pa.string()),
                    "code": pa.array(np.arange(len(distinct[c]), dtype=np.int16) + first[c]),
                }
            ),
        )
        joins.append(f"LEFT JOIN {name} ON {name}.v = CAST(r.{quote_ident(c)} AS VARCHAR)")
        select.append(f"coalesce({name}.code, {null[c]})::SMALLINT AS {quote_ident('c_' + c)}")
    if has_session:
        select.append("CASE WHEN r.session_id IS NULL THEN 0 ELSE hash(r.session_id) END AS s")
    sources = {
        "person": "o",
        "t": "t",
        "event": "c_event",
        **({"session": "s"} if has_session else {}),
        **{f"dim_{d}": f"c_{d}" for d in dims},
    }
    dtypes = {"person": np.uint64, "t": np.int64, "session": np.uint64}
    sql = (
        f"SELECT {', '.join(select)} FROM (SELECT * FROM {relation} WHERE {where}) r "
        f"{' '.join(joins)} ORDER BY o, t"
    )
    tmp = None
    if folder is not None:
        _sweep(folder)
        tmp = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.mkdir(parents=True)
    out: dict[str, _Column] = {}
    try:
        out = {
            c: _Column(n, dtypes.get(c, np.int16), tmp / f"{c}.npy" if tmp else None)
            for c in sources
        }
        for batch in db.connection.sql(sql).to_arrow_reader(BUILD_BATCH_ROWS):
            cols = dict(zip(batch.schema.names, batch.columns, strict=True))
            for name, src in sources.items():
                out[name].put(cols[src].to_numpy(zero_copy_only=False))
        for col in out.values():
            col.close()
        labels = {d: distinct[d] for d in dims}
        events: list[str | None] = [None, *distinct["event"]]
        if tmp is None or folder is None:
            arrays: dict[str, np.ndarray] = {
                name: col.array for name, col in out.items() if col.array is not None
            }
            return Timeline(
                key=key,
                person=arrays["person"],
                t=arrays["t"],
                event=arrays["event"],
                events=events,
                session=arrays.get("session"),
                dims={d: arrays[f"dim_{d}"] for d in dims},
                labels=labels,
                sessions_nested=bool(nested),
            )
        meta = {
            "format": FORMAT_VERSION,
            "key": key,
            "rows": n,
            "events": events,
            "session": has_session,
            "sessions_nested": bool(nested),
            "labels": labels,
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        _replace(tmp, folder)
        opened = Timeline.open(folder, key)
        if opened is None:
            raise OSError(f"could not read back the timeline in {folder}")
        return opened
    finally:
        for i in range(len(dims) + 1):
            db.unregister(f"__tl_dict_{i}")
        for col in out.values():
            if col.file is not None:
                col.file.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def folder_for(store_path: str) -> Path | None:
    """Where a store file keeps its timeline (None for an in-memory store)."""
    if store_path == ":memory:":
        return None
    return Path(store_path + ".timeline")


def store_key(db: Database) -> str:
    """The store's id and generation: a timeline is valid while both are unchanged."""
    rows = dict(db.rows("SELECT key, value FROM meta WHERE key IN ('store_id', 'generation')"))
    events = db.scalar("SELECT count(*) FROM events")
    return f"{rows.get('store_id', '?')}:{rows.get('generation', '0')}:{events}"


def writable(folder: Path) -> bool:
    return os.access(folder.parent, os.W_OK)


def chunks(tl: Timeline, rows: int) -> list[tuple[int, int]]:
    """Ranges of about ``rows`` rows that never split a person (a person's rows are
    contiguous: the timeline is sorted by person hash)."""
    n = len(tl)
    cuts = [0]
    while cuts[-1] < n:
        at = cuts[-1] + max(1, rows)
        if at >= n:
            cuts.append(n)
            break
        cut = int(np.searchsorted(tl.person, tl.person[at], side="left"))
        if cut <= cuts[-1]:  # one person longer than a chunk
            cut = int(np.searchsorted(tl.person, tl.person[at], side="right"))
        cuts.append(cut)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


DAY_US = 86_400_000_000


_CACHE: weakref.WeakKeyDictionary[Any, Timeline] = weakref.WeakKeyDictionary()


def is_current(store: Any) -> bool:
    """Whether the store's timeline is ready for its present events (cached, beside the
    file, or a base with a chain of live segments up to them), so the next funnel will
    not build it (:func:`shopfunnel.store.live.is_current`)."""
    from shopfunnel.store import live

    return live.is_current(store)


def of_store(store: Any, *, pieces: bool = False) -> Timeline:
    """The timeline of a :class:`shopfunnel.store.Store` at its present events
    (:func:`shopfunnel.store.live.of_store`: cached, extended by live segments, or built).

    With ``pieces`` it may be a live view in two pieces (:meth:`Timeline.pieces`; the
    funnel engine reads both, and rows of the first piece carry event code 0 where the
    second holds their person). Without, it is whole: a reader that walks every row gets
    one sorted piece (a live delta is compacted first, :func:`shopfunnel.store.live.whole`)."""
    from shopfunnel.store import live

    return live.of_store(store) if pieces else live.whole(store)
