"""Live appends, part two: the timeline as a base extended by sorted deltas, merged on read,
compacted.

A store receiving events all day (the collector's writer loads a batch every second)
would otherwise make its timeline stale at every load, and every funnel would fall back
to SQL or wait for a rebuild. Instead each load that adds events writes a **segment**
(:mod:`shopfunnel.store.segments`: the rows it added, the persons its stitching retracted,
and the store keys before and after it), and a base built at one key is extended by the
chain of segments that starts there.

**On read** (:func:`of_store`) the base and its chain make a *view*: every person with
rows in the delta gets a second sorted piece (:attr:`Timeline.side`) holding their base
rows (unless retracted) and their delta rows; in the base piece, their rows (and those of
retracted persons) carry event code 0, which no step matches, so they take part in
nothing. A funnel runs its compiled pass over both pieces; no array of the base is
rewritten, so a view costs a copy of the event column plus the delta.

**Compaction** (:func:`compact`) folds the view into a new base: the side's rows are put
in place between the base's kept rows (both are sorted by person, and a side person has
no kept base rows), the columns are written to a temporary folder, and the folder is
renamed into place (ADR 0151). Readers that opened the old base keep reading its files
(the timeline reads through file descriptors opened with it); a crash before the rename
leaves the old base and its segments, after it the new base: nothing is lost either way,
and the folded segments are deleted last.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopfunnel.store import timeline as tl_mod
from shopfunnel.store.db import quote_ident
from shopfunnel.store.segments import LOCK, Segment, chain, key_parts, prune
from shopfunnel.store.timeline import (
    FORMAT_VERSION,
    MAX_CODES,
    Timeline,
    folder_for,
    store_key,
    writable,
)

COMPACT_MIN_ROWS = 1_000_000  # fold the delta into a new base above this many rows...
COMPACT_SHARE = 0.10  # ...or above this share of the base, whichever is larger


@dataclass
class LiveState:
    """How a view was made: the base, the segments, and the base rows it hides."""

    base: Timeline
    segments: list[Segment]
    lo: np.ndarray  # base row ranges [lo, hi) of the hidden persons
    hi: np.ndarray
    hidden_rows: int = 0
    moved_rows: int = 0  # base rows copied into the side
    delta_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)


class _CannotExtend(Exception):
    """The delta does not fit the base's encoding (too many distinct values)."""


def compose(base: Timeline, segments: list[Segment]) -> Timeline:
    """The view of ``base`` extended by ``segments`` (see the module docstring)."""
    if not segments:
        return base
    events = list(base.events)
    event_code = {name: i for i, name in enumerate(events) if name is not None}
    labels = {d: list(v) for d, v in base.labels.items()}
    label_code = {d: {v: i for i, v in enumerate(vals)} for d, vals in labels.items()}
    names = [
        "person",
        "t",
        "event",
        *(["session"] if base.session is not None else []),
        *(f"dim_{d}" for d in base.dims),
    ]
    parts: list[dict[str, np.ndarray]] = []
    retract = np.zeros(0, np.uint64)
    nested = base.sessions_nested
    for seg in segments:
        if len(seg.retract):
            parts = [_rows(p, ~np.isin(p["person"], seg.retract)) for p in parts]
            retract = np.union1d(retract, seg.retract)
        part = {
            "person": seg.columns["person"],
            "t": seg.columns["t"],
            "event": _recode(seg.columns["event"], seg.names, events, event_code, 0),
        }
        if base.session is not None:
            part["session"] = seg.columns["session"]
        for d in base.dims:
            part[f"dim_{d}"] = _recode(
                seg.columns[f"dim_{d}"], seg.labels[d], labels[d], label_code[d], -1
            )
        parts.append(part)
        nested = nested and seg.nested
    if len(events) > MAX_CODES or any(len(v) > MAX_CODES for v in labels.values()):
        raise _CannotExtend
    delta = {c: np.concatenate([p[c] for p in parts]) for c in names}
    in_delta = np.unique(delta["person"])
    hide = np.union1d(in_delta, retract)
    lo = np.searchsorted(base.person, hide, side="left")
    hi = np.searchsorted(base.person, hide, side="right")
    keep_base = ~np.isin(in_delta, retract)
    moved = _ranges(
        np.searchsorted(base.person, in_delta[keep_base], side="left"),
        np.searchsorted(base.person, in_delta[keep_base], side="right"),
    )
    side_cols = {}
    for c in names:
        source = base.dims[c[4:]] if c.startswith("dim_") else getattr(base, c)
        side_cols[c] = np.concatenate([np.asarray(source[moved]), delta[c]])
    order = np.lexsort((side_cols["t"], side_cols["person"]))
    side_cols = {c: a[order] for c, a in side_cols.items()}
    event = np.array(base.event)  # the base's rows of side persons take part in nothing
    event[_ranges(lo, hi)] = 0
    key = segments[-1].to_key
    side = Timeline(
        key=key,
        person=side_cols["person"],
        t=side_cols["t"],
        event=side_cols["event"],
        events=events,
        session=side_cols.get("session"),
        dims={d: side_cols[f"dim_{d}"] for d in base.dims},
        labels=labels,
        sessions_nested=bool(nested),
    )
    state = LiveState(
        base, list(segments), lo, hi, int((hi - lo).sum()), len(moved), len(delta["t"])
    )
    return Timeline(
        key=key,
        person=base.person,
        t=base.t,
        event=event,
        events=events,
        session=base.session,
        dims=base.dims,
        labels=labels,
        sessions_nested=bool(nested),
        side=side,
        live=state,
        files=base.files,
    )


def _rows(part: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {c: a[keep] for c, a in part.items()}


def _recode(
    local: np.ndarray, values: list[str], into: list[Any], codes: dict[str, int], missing: int
) -> np.ndarray:
    """Local codes into the view's codes, adding unseen values to ``into``."""
    lut = np.empty(len(values) + 1, dtype=np.int64)
    lut[-1] = missing  # local -1 (no value) reads the last entry
    for i, v in enumerate(values):
        if v not in codes:
            codes[v] = len(into)
            into.append(v)
        lut[i] = codes[v]
    return lut[local].astype(np.int16) if len(local) else np.zeros(0, np.int16)


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The indices ``lo[i] .. hi[i] - 1`` of every range, concatenated."""
    lengths = (hi - lo).astype(np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    starts = np.repeat(lo.astype(np.int64) - np.cumsum(lengths) + lengths, lengths)
    return starts + np.arange(total, dtype=np.int64)


def _base(store: Any, cached: Timeline | None, store_id: str | None) -> list[Timeline]:
    """Bases to extend, best first: the one behind the cached view, then the one on disk
    (only those of ``store_id`` when given)."""
    out = []
    if cached is not None:
        out.append(cached.live.base if cached.live is not None else cached)
    folder = folder_for(store.path)
    if folder is not None:
        on_disk = Timeline.open(folder, None)
        if on_disk is not None and (not out or on_disk.key != out[0].key):
            out.append(on_disk)
    return [b for b in out if store_id is None or key_parts(b.key)[0] == store_id]


def view(store: Any, key: str, cached: Timeline | None = None) -> Timeline | None:
    """The timeline of ``store`` at ``key`` made from a base and its segments, without
    reading the store's events; None when no base's chain reaches ``key``."""
    for base in _base(store, cached, key_parts(key)[0]):
        if base.key == key:
            return base
        segs = chain(store, base.key, key)
        if segs is None:
            continue
        try:
            return compose(base, segs)
        except _CannotExtend:
            return None
    return None


def _present(store: Any, *, build: bool) -> Timeline | None:
    """The timeline at the store's present key: cached, else a base extended by its
    segments (cached), else built from the store when ``build`` (else None)."""
    key = store_key(store.db)
    with LOCK:
        cached = tl_mod._CACHE.get(store)
    if cached is not None and cached.key == key:
        return cached
    tl = view(store, key, cached)
    if tl is None and build:
        tl = _rebuild(store, key)
    if tl is not None:
        with LOCK:
            tl_mod._CACHE[store] = tl
    return tl


def of_store(store: Any) -> Timeline:
    """The timeline of a :class:`shopfunnel.store.Store` at its present events: the cached
    one, a base extended by its segments, or else a new one built from the store (saved
    beside the file when the folder is writable)."""
    tl = _present(store, build=True)
    assert tl is not None
    return tl


def whole(store: Any) -> Timeline:
    """The timeline at the store's present events in one sorted piece, for readers that
    walk every row (retention, stage evidence): a live view is compacted first (on disk
    when the folder is writable), or folded in memory if the compaction cannot run now."""
    tl = of_store(store)
    if tl.side is None:
        return tl
    compact(store, wait=True)
    tl = of_store(store)
    if tl.side is None:
        return tl
    return _fold(store, tl, to_disk=False)  # segments arrived meanwhile


def _rebuild(store: Any, key: str) -> Timeline:
    folder = folder_for(store.path)
    columns = {row[0]: row[1] for row in store.db.rows("DESCRIBE events")}
    save = folder if folder is not None and writable(folder) else None
    person = quote_ident("person_id")
    try:
        tl = tl_mod.build(store.db, "events", person, columns, key, folder=save)
    except OSError:
        tl = tl_mod.build(store.db, "events", person, columns, key)
    prune(store, key_parts(key)[1])
    return tl


def is_current(store: Any) -> bool:
    """Whether the next funnel can use the timeline without building it: it is cached at
    the store's present key, or a base and its segments reach that key (the view is then
    made and cached: a copy of the event column, no store read)."""
    return _present(store, build=False) is not None


def backlog(store: Any) -> tuple[int, int] | None:
    """(rows of the base, rows of its segments) when a base and its chain reach the
    store's present events, else None (the next funnel rebuilds). Reads the segments'
    sizes, makes no view."""
    key = store_key(store.db)
    with LOCK:
        cached = tl_mod._CACHE.get(store)
    for base in _base(store, cached, key_parts(key)[0]):
        segs = [] if base.key == key else chain(store, base.key, key)
        if segs is not None:
            return len(base), sum(len(s) for s in segs)
    return None


def needs_compaction(base_rows: int, delta_rows: int) -> bool:
    """Whether a delta has grown past the threshold for folding it into a base: more
    than :data:`COMPACT_MIN_ROWS` rows and :data:`COMPACT_SHARE` of the base."""
    return delta_rows > max(COMPACT_MIN_ROWS, COMPACT_SHARE * base_rows)


def compact_if_large(store: Any) -> Timeline | None:
    """After a load outside the server (which compacts in its own thread): fold the delta
    into a new base when :func:`needs_compaction` says so (the load pays for it once,
    instead of every funnel paying for a large side)."""
    state = backlog(store)
    if state is None or not needs_compaction(*state):
        return None
    return compact(store)


# -- compacting -------------------------------------------------------------------------
_COMPACTING = threading.Lock()


def compact(store: Any, *, wait: bool = False) -> Timeline | None:
    """Fold the base and every segment after it into a new base, atomically; return it
    (None when there was nothing to fold, or another compaction is running and not
    ``wait``). Reads only the timeline's files (or memory), never the store, so it can run
    beside loads; the segments loaded meanwhile extend the new base."""
    if not _COMPACTING.acquire(blocking=wait):
        return None
    try:
        with LOCK:
            cached = tl_mod._CACHE.get(store)
        for base in _base(store, cached, None):  # no store read: loads may be running
            segs = chain(store, base.key)
            if not segs:
                continue
            try:
                merged = compose(base, segs)
            except _CannotExtend:
                return None
            new = _fold(store, merged)
            prune(store, key_parts(new.key)[1])
            with LOCK:
                current = tl_mod._CACHE.get(store)
                if current is None or key_parts(current.key)[1] <= key_parts(new.key)[1]:
                    tl_mod._CACHE[store] = new
            return new
        return None
    finally:
        _COMPACTING.release()


def _fold(store: Any, v: Timeline, *, to_disk: bool = True) -> Timeline:
    """The view's rows as one sorted base: saved beside the store file (renamed into
    place), or in memory (an in-memory store, a folder not writable, or not ``to_disk``)."""
    assert v.side is not None and v.live is not None
    base, side = v.live.base, v.side
    keep = np.ones(len(base), dtype=np.bool_)
    keep[_ranges(v.live.lo, v.live.hi)] = False
    kept_person = np.asarray(base.person)[keep]
    at = np.searchsorted(kept_person, side.person) + np.arange(len(side))
    n = len(kept_person) + len(side)
    from_side = np.zeros(n, dtype=np.bool_)
    from_side[at] = True
    names = [
        "person",
        "t",
        "event",
        *(["session"] if base.session is not None else []),
        *(f"dim_{d}" for d in base.dims),
    ]

    def merged(c: str) -> np.ndarray:
        b = base.dims[c[4:]] if c.startswith("dim_") else getattr(base, c)
        s = side.dims[c[4:]] if c.startswith("dim_") else getattr(side, c)
        out = np.empty(n, dtype=b.dtype)
        out[from_side] = s
        out[~from_side] = np.asarray(b)[keep]
        return out

    folder = folder_for(store.path)
    if folder is None or not writable(folder) or not to_disk:
        cols = {c: merged(c) for c in names}
        return Timeline(
            key=v.key,
            person=cols["person"],
            t=cols["t"],
            event=cols["event"],
            events=v.events,
            session=cols.get("session"),
            dims={d: cols[f"dim_{d}"] for d in base.dims},
            labels=v.labels,
            sessions_nested=v.sessions_nested,
        )
    tmp = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        for c in names:
            np.save(tmp / f"{c}.npy", merged(c))
        meta = {
            "format": FORMAT_VERSION,
            "key": v.key,
            "rows": n,
            "events": v.events,
            "session": base.session is not None,
            "sessions_nested": v.sessions_nested,
            "labels": v.labels,
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        for path in tmp.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        tl_mod._replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    opened = Timeline.open(folder, v.key)
    if opened is None:
        raise OSError(f"could not read back the compacted timeline in {folder}")
    return opened
