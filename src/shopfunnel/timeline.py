"""The timeline: the events sorted once by person and time, as small integer columns.

A funnel only needs, per event, who (the person), when (µs), what (the event name) and,
for some funnels, the session and one breakdown column. Reading those from the store
means decoding the person-id strings and sorting them again for every funnel, which is
most of a funnel's time. The timeline does that work once per change of the events:

* ``person``: uint64 — DuckDB's ``hash`` of the person id (the owner the SQL path uses);
* ``t``: int64 — microseconds since 1970 (UTC);
* ``event``: int16 — code into ``events`` (the names; the last code is a missing name);
* ``session``: uint64 — ``hash(session_id)``, 0 when the event has none (absent if the
  events have no ``session_id`` column);
* one int16 code column per breakdown :data:`DIMENSIONS` present in the events (``-1`` =
  no value; labels in ``labels[name]``); a column with more than 32,000 values is left
  out, and a breakdown by it runs on the SQL path.

Rows are ordered by (person, t, event name). A funnel then selects the rows of its steps
with a compiled pass over ``event`` (:func:`select`), reorders events at the same instant
by step, and hands them to the same kernel as the SQL path.

A store keeps its timeline in a folder beside the DuckDB file (``<store>.timeline/``,
NumPy ``.npy`` files read by memory map, and ``meta.json``), keyed by the store's id and
:attr:`shopfunnel.store.Store.generation`: any load that adds events makes it stale, and
the next funnel rebuilds it. An in-memory store keeps it in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from shopfunnel.db import Database, quote_ident

DIMENSIONS = ("channel", "device", "country", "utm_source", "utm_medium", "utm_campaign")
MAX_CODES = 32_000
FORMAT_VERSION = 2
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

    def __len__(self) -> int:
        return len(self.t)

    def event_codes(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.events) if name is not None}

    # -- persistence --------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write the timeline to ``folder`` atomically (a new folder renamed into place)."""
        folder = Path(folder)
        tmp = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.mkdir(parents=True)
        try:
            for name, arr in self._arrays().items():
                np.save(tmp / f"{name}.npy", arr)
            (tmp / "meta.json").write_text(json.dumps(self._meta()), encoding="utf-8")
            _replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def open(cls, folder: str | Path, key: str) -> Timeline | None:
        """The timeline saved in ``folder`` if it was built for ``key``, else None."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            if meta.get("key") != key or meta.get("format") != FORMAT_VERSION:
                return None

            def load(name: str) -> np.ndarray:
                return np.load(folder / f"{name}.npy", mmap_mode="r")

            return cls(
                key=key, person=load("person"), t=load("t"), event=load("event"),
                events=meta["events"],
                session=load("session") if meta["session"] else None,
                sessions_nested=meta["sessions_nested"],
                dims={d: load(f"dim_{d}") for d in meta["labels"]},
                labels=meta["labels"],
            )
        except (OSError, ValueError, KeyError):
            return None

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"person": self.person, "t": self.t, "event": self.event}
        if self.session is not None:
            arrays["session"] = self.session
        arrays.update({f"dim_{d}": codes for d, codes in self.dims.items()})
        return arrays

    def _meta(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "key": self.key, "rows": len(self),
                "events": self.events, "session": self.session is not None,
                "sessions_nested": self.sessions_nested,
                "labels": self.labels}


def _replace(tmp: Path, folder: Path) -> None:
    """Put ``tmp`` where ``folder`` is; another process may have just done the same."""
    old = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
    except OSError:
        pass  # a concurrent build won: its timeline is as good as ours
    finally:
        shutil.rmtree(old, ignore_errors=True)


# -- building ---------------------------------------------------------------------------
class _Coder:
    """Global integer codes for the strings of one column, batch by batch."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def encode(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(column)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        remap = np.array([self.codes.setdefault(v, len(self.codes))
                          for v in encoded.dictionary.to_pylist()] or [0], dtype=np.int64)
        idx = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return np.where(idx < 0, -1, remap[np.maximum(idx, 0)])

    def names(self) -> list[str]:
        return list(self.codes)


def build(db: Database, relation: str, person: str, columns: dict[str, str], key: str,
          *, folder: Path | None = None) -> Timeline:
    """Build the timeline of ``relation`` (person expression ``person``) in one sorted
    pass; with ``folder``, the arrays are written there as they come (memory stays at
    one batch) and the saved timeline is returned memory-mapped."""
    has_session = "session_id" in columns
    dims = [d for d in DIMENSIONS if d in columns]
    select = [f"hash({person}) AS o", "epoch_us(ts) AS t", "CAST(event AS VARCHAR) AS e"]
    if has_session:
        select.append("CASE WHEN session_id IS NULL THEN 0 ELSE hash(session_id) END AS s")
    select += [f"CAST({quote_ident(d)} AS VARCHAR) AS {quote_ident('d_' + d)}" for d in dims]
    where = f"{person} IS NOT NULL AND ts IS NOT NULL"
    n = int(db.scalar(f"SELECT count(*) FROM {relation} WHERE {where}") or 0)
    # per-session funnels take a session's rows from its person's rows: that needs every
    # session to belong to one person (else the SQL path counts them)
    nested = not has_session or not db.scalar(
        f"SELECT count(*) FROM (SELECT session_id FROM {relation} WHERE {where} AND "
        f"session_id IS NOT NULL GROUP BY session_id HAVING min({person}) <> max({person}))")
    names = ["person", "t", "event", *(["session"] if has_session else []),
             *(f"dim_{d}" for d in dims)]
    dtypes = {"person": np.uint64, "t": np.int64, "event": np.int16, "session": np.uint64}
    tmp = None
    if folder is not None:
        tmp = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.mkdir(parents=True)
        out = {c: np.lib.format.open_memmap(tmp / f"{c}.npy", mode="w+",
                                            dtype=dtypes.get(c, np.int16), shape=(n,))
               for c in names}
    else:
        out = {c: np.empty(n, dtype=dtypes.get(c, np.int16)) for c in names}
    coders = {c: _Coder() for c in ["event", *dims]}
    sql = (f"SELECT {', '.join(select)} FROM {relation} WHERE {where} "
           "ORDER BY o, t, e")
    try:
        reader = db.connection.sql(sql).to_arrow_reader(BUILD_BATCH_ROWS)
        at = 0
        for batch in reader:
            m = batch.num_rows
            if not m:
                continue
            cols = dict(zip(batch.schema.names, batch.columns, strict=True))
            out["person"][at:at + m] = cols["o"].to_numpy(zero_copy_only=False)
            out["t"][at:at + m] = cols["t"].to_numpy(zero_copy_only=False)
            out["event"][at:at + m] = coders["event"].encode(cols["e"])
            if has_session:
                out["session"][at:at + m] = cols["s"].to_numpy(zero_copy_only=False)
            for d in dims:
                if len(coders[d].codes) <= MAX_CODES:
                    out[f"dim_{d}"][at:at + m] = coders[d].encode(cols[f"d_{d}"])
            at += m
        events: list[str | None] = list(coders["event"].names())
        # a missing event name is the last code
        if np.any(out["event"][:at] < 0):
            out["event"][:at][out["event"][:at] < 0] = len(events)
        events.append(None)
        if len(events) > MAX_CODES:
            raise ValueError("too many event names for a timeline")
        kept = [d for d in dims if len(coders[d].codes) <= MAX_CODES]
        timeline = Timeline(
            key=key, person=out["person"], t=out["t"], event=out["event"], events=events,
            session=out.get("session"), dims={d: out[f"dim_{d}"] for d in kept},
            sessions_nested=bool(nested),
            labels={d: coders[d].names() for d in kept},
        )
        if tmp is None or folder is None:
            return timeline
        for arr in timeline._arrays().values():
            arr.flush()
        (tmp / "meta.json").write_text(json.dumps(timeline._meta()), encoding="utf-8")
        del out, timeline
        _replace(tmp, folder)
        opened = Timeline.open(folder, key)
        if opened is None:
            raise OSError(f"could not read back the timeline in {folder}")
        return opened
    finally:
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


# -- selecting a funnel's rows ----------------------------------------------------------
@njit(cache=True, nogil=True)
def select_rows(event, person, t, lut, lut_n, keep_other, other):  # pragma: no cover
    """One pass: rows whose event has a code in ``lut`` (several codes → several rows, in
    code order), every other row as ``other`` when ``keep_other``; returns their index,
    code, owner and time, with rows at the same (owner, time) put in code order (the
    kernel takes ties in step order)."""
    width = lut.shape[1]
    cap = len(event) * (width if not keep_other else max(width, 1))
    idx = np.empty(cap, dtype=np.int64)
    code = np.empty(cap, dtype=np.int8)
    o = np.empty(cap, dtype=np.uint64)
    ts = np.empty(cap, dtype=np.int64)
    j = 0
    for i in range(len(event)):
        e = event[i]
        k = lut_n[e]
        if k == 0:
            if keep_other:
                idx[j] = i
                code[j] = other
                o[j] = person[i]
                ts[j] = t[i]
                j += 1
        else:
            for q in range(k):
                idx[j] = i
                code[j] = lut[e, q]
                o[j] = person[i]
                ts[j] = t[i]
                j += 1
    m = j
    i = 1
    while i < m:
        if o[i] == o[i - 1] and ts[i] == ts[i - 1]:
            s = i - 1
            e = i + 1
            while e < m and o[e] == o[s] and ts[e] == ts[s]:
                e += 1
            for a in range(s + 1, e):
                c = code[a]
                x = idx[a]
                b = a - 1
                while b >= s and code[b] > c:
                    code[b + 1] = code[b]
                    idx[b + 1] = idx[b]
                    b -= 1
                code[b + 1] = c
                idx[b + 1] = x
            i = e
        else:
            i += 1
    return idx[:m], code[:m], o[:m], ts[:m]


@njit(cache=True)
def group_sessions(person, session, order):  # pragma: no cover - compiled
    """Within each person, put each session's rows together (stable: each session keeps
    its (time, code) order); ``order`` is permuted in place."""
    m = len(person)
    a = 0
    while a < m:
        b = a + 1
        split = False
        while b < m and person[b] == person[a]:
            if session[b] != session[b - 1]:
                split = True
            b += 1
        if split:
            keys = session[order[a:b]]
            perm = np.argsort(keys, kind="mergesort")
            order[a:b] = order[a:b][perm]
        a = b


def select(tl: Timeline, codes: dict[str, list[int]], *, other: int | None,
           by_session: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows of events named in ``codes`` (name → its codes), each code a row, every
    other row with code ``other`` unless it is None, sorted by (owner, t, code): returns
    owner, t, code and the rows' indices in the timeline. The owner is the person, or
    with ``by_session`` the session (rows without a session are left out)."""
    by_code = tl.event_codes()
    width = max([len(v) for v in codes.values()] or [1])
    lut = np.zeros((len(tl.events), max(width, 1)), dtype=np.int8)
    lut_n = np.zeros(len(tl.events), dtype=np.int8)
    for name, ks in codes.items():
        e = by_code.get(name)
        if e is not None:
            for j, k in enumerate(sorted(ks)):
                lut[e, j] = k
            lut_n[e] = len(ks)
    idx, code, o, t = select_rows(tl.event, tl.person, tl.t, lut, lut_n, other is not None,
                                  0 if other is None else other)
    if by_session:
        if tl.session is None:
            raise ValueError("this timeline has no sessions")
        s = tl.session[idx]
        has = s != 0
        if not has.all():
            o, t, code, idx, s = o[has], t[has], code[has], idx[has], s[has]
        order = np.arange(len(idx))
        group_sessions(o, s, order)
        o, t, code, idx = s[order], t[order], code[order], idx[order]
    return o, t, code, idx


DAY_US = 86_400_000_000


def period_starts(t: np.ndarray, trend: str) -> np.ndarray:
    """The start (µs) of the day, week (Monday, UTC) or month of each time ``t`` (µs),
    as DuckDB's ``date_trunc``."""
    days = t // DAY_US
    if trend == "day":
        return days * DAY_US
    if trend == "week":  # 1970-01-01 was a Thursday: Mondays are days ≡ 4 (mod 7)
        return ((days + 3) // 7 * 7 - 3) * DAY_US
    if trend == "month":
        months = t.astype("datetime64[us]").astype("datetime64[M]")
        return months.astype("datetime64[us]").astype(np.int64)
    raise ValueError(f"unknown trend {trend!r}")


_CACHE: weakref.WeakKeyDictionary[Any, Timeline] = weakref.WeakKeyDictionary()


def of_store(store: Any) -> Timeline:
    """The timeline of a :class:`shopfunnel.store.Store`: the one in memory or beside the
    file if it is still valid, else a new one (saved beside the file when the folder is
    writable)."""
    key = store_key(store.db)
    cached = _CACHE.get(store)
    if cached is not None and cached.key == key:
        return cached
    folder = folder_for(store.path)
    tl = Timeline.open(folder, key) if folder is not None else None
    if tl is None:
        columns = {row[0]: row[1] for row in store.db.rows("DESCRIBE events")}
        save = folder if folder is not None and writable(folder) else None
        try:
            tl = build(store.db, "events", quote_ident("person_id"), columns, key, folder=save)
        except OSError:
            tl = build(store.db, "events", quote_ident("person_id"), columns, key)
    _CACHE[store] = tl
    return tl
