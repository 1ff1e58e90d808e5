"""Each session's facts from one compiled pass over the timeline: the diagnosis's sessions.

The diagnosis (:class:`shopfunnel.diagnosis.session_levels.SessionLevels`) starts from one
row per session of a window of time: its start, its furthest funnel step and the device,
channel, campaign and country it came with. By SQL that is a scan of every event of the
window grouped by the string ``session_id`` (a hash table of millions of strings, about
3 CPU s at 10M events). The timeline (:mod:`shopfunnel.store.timeline`) already holds the
events sorted by person and time as small integer columns, with the session's hash and
the breakdown codes, and every session belongs to one person (``sessions_nested``), so one
pass over each person's few rows gives the same rows:

* a session is the events of one person with one ``hash(session_id)`` whose time is in
  ``[start_us, end_us)``;
* its **start** is the least time of those events; its **level** the greatest
  ``level_of[event code]`` among them;
* its **device**, **channel**, **campaign** (``utm_campaign``) and **country** are the codes
  of its earliest event that has one (``-1`` when none has), as SQL's
  ``arg_min(col, ts) FILTER (WHERE col IS NOT NULL)``. Events at the same instant are in no
  particular order in the timeline, as they are in SQL's ``arg_min``: a session whose first
  events at one instant disagree on a value may take either.

:func:`sessions` answers only when the timeline is current, whole (no live delta), covers
every event (none without a person or a time), has sessions nested in persons and the four
breakdown columns coded, and no event of the window lacks a session; otherwise it returns
None and the caller keeps its SQL. Its rows are kept beside the timeline until the events
change (``sessions.arrow``). ADR 0160.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from shopfunnel.jit import njit
from shopfunnel.store import cache
from shopfunnel.store import timeline as timeline_store
from shopfunnel.store.timeline import Timeline, chunks

SEGMENT_DIMS = ("device", "channel", "utm_campaign", "country")
CHUNK_ROWS = 2_000_000
MAX_FEATURE_EVENTS = 64
FORMAT = 2  # of sessions.arrow


@dataclass(frozen=True)
class SessionFacts:
    """One row per session (arrays of one length; see the module docstring).

    ``codes[i]`` holds the codes of ``SEGMENT_DIMS[i]`` (``-1``: no value), whose names are
    ``labels[i]``. ``features`` marks the events the correlation tests
    (:func:`feature_events`) that each session has, at any time (None: more than 64)."""

    session: np.ndarray  # uint64: hash(session_id)
    person: np.ndarray  # uint64: hash(person_id)
    start_us: np.ndarray  # int64
    level: np.ndarray  # int8
    codes: list[np.ndarray]  # int16 each
    labels: list[list[str]]
    # uint64: bit b set when the session has an event feature_events[b] (at any time)
    features: np.ndarray | None = None
    feature_events: list[str] | None = None

    def __len__(self) -> int:
        return len(self.session)


@njit(cache=True, nogil=True)
def _find(out_s, first, m, last, s):
    """The row of session ``s`` among ``out_s[first:m]`` (``last`` tried first), or -1."""
    if last >= 0 and out_s[last] == s:
        return last
    for q in range(m - 1, first - 1, -1):
        if out_s[q] == s:
            return q
    return -1


@njit(cache=True, nogil=True)
def _pass(
    person,
    t,
    event,
    session,
    d0,
    d1,
    d2,
    d3,
    level_of,
    bit_of,
    lo,
    hi,
    out_s,
    out_p,
    out_t,
    out_l,
    out_c,
    out_f,
):
    """Fill the session rows of ``rows`` (whole persons, sorted by person and time);
    returns how many, or -1 when an event of the window has no session."""
    n = len(t)
    m = 0
    i = 0
    while i < n:
        p = person[i]
        j = i
        while j < n and person[j] == p:
            j += 1
        first = m  # this person's sessions are out[first:m]
        last = -1
        outside = False
        for r in range(i, j):
            tr = t[r]
            if tr < lo or tr >= hi:
                outside = True
                continue
            s = session[r]
            if s == 0:
                return -1
            k = _find(out_s, first, m, last, s)
            if k < 0:
                k = m
                m += 1
                out_s[k] = s
                out_p[k] = p
                out_t[k] = tr
                out_l[k] = 0
                out_c[0, k] = -1
                out_c[1, k] = -1
                out_c[2, k] = -1
                out_c[3, k] = -1
                out_f[k] = 0
            last = k
            lv = level_of[event[r]]
            if lv > out_l[k]:
                out_l[k] = lv
            b = bit_of[event[r]]
            if b >= 0:
                out_f[k] |= np.uint64(1) << np.uint64(b)
            # rows of a person are in time order: the first code seen is the earliest
            if out_c[0, k] < 0:
                out_c[0, k] = d0[r]
            if out_c[1, k] < 0:
                out_c[1, k] = d1[r]
            if out_c[2, k] < 0:
                out_c[2, k] = d2[r]
            if out_c[3, k] < 0:
                out_c[3, k] = d3[r]
        if outside and m > first:  # a session's feature events at any time, not only the window's
            last = -1
            for r in range(i, j):
                tr = t[r]
                b = bit_of[event[r]]
                if (tr >= lo and tr < hi) or b < 0:
                    continue
                k = _find(out_s, first, m, last, session[r])
                if k >= 0:
                    last = k
                    out_f[k] |= np.uint64(1) << np.uint64(b)
        i = j
    return m


def feature_events(tl: Timeline, events: list[str]) -> list[str] | None:
    """The events whose presence in a session the correlation tests (named, neither a step
    nor ``page_view``), by bit of :attr:`SessionFacts.features`; None when more than 64."""
    names = [e for e in tl.events if e is not None and e not in events and e != "page_view"]
    return names if len(names) <= MAX_FEATURE_EVENTS else None


def facts(
    tl: Timeline, events: list[str], start_us: int, end_us: int, *, chunk_rows: int = CHUNK_ROWS
) -> SessionFacts | None:
    """The sessions of a whole timeline with sessions and the four breakdown columns, in
    ``[start_us, end_us)``; ``events[k]`` is the event of level ``k + 1``. None when an
    event of the window has no session."""
    level_of = np.zeros(len(tl.events), dtype=np.int8)
    code = tl.event_codes()
    for k in range(len(events) - 1, -1, -1):  # the first step naming an event wins
        if events[k] in code:
            level_of[code[events[k]]] = k + 1
    named = feature_events(tl, events)
    bit_of = np.full(len(tl.events), -1, dtype=np.int8)
    for bit, name in enumerate(named or ()):
        bit_of[code[name]] = bit
    parts: list[tuple[np.ndarray, ...]] = []
    for a, b in chunks(tl, chunk_rows) if len(tl) else []:
        rows = b - a
        out = (
            np.empty(rows, dtype=np.uint64),
            np.empty(rows, dtype=np.uint64),
            np.empty(rows, dtype=np.int64),
            np.empty(rows, dtype=np.int8),
            np.empty((4, rows), dtype=np.int16),
            np.empty(rows, dtype=np.uint64),
        )
        m = _pass(
            tl.read("person", a, b),
            tl.read("t", a, b),
            tl.read("event", a, b),
            tl.read("session", a, b),
            *(tl.read(f"dim_{d}", a, b) for d in SEGMENT_DIMS),
            level_of,
            bit_of,
            np.int64(start_us),
            np.int64(end_us),
            *out,
        )
        if m < 0:
            return None
        parts.append(tuple(x[..., :m] for x in out))
    if not parts:  # no rows: one empty part of the same types
        parts.append(
            (
                np.empty(0, np.uint64),
                np.empty(0, np.uint64),
                np.empty(0, np.int64),
                np.empty(0, np.int8),
                np.empty((4, 0), np.int16),
                np.empty(0, np.uint64),
            )
        )
    c = np.concatenate([p[4] for p in parts], axis=1)
    return SessionFacts(
        session=np.concatenate([p[0] for p in parts]),
        person=np.concatenate([p[1] for p in parts]),
        start_us=np.concatenate([p[2] for p in parts]),
        level=np.concatenate([p[3] for p in parts]),
        codes=[c[i] for i in range(4)],
        labels=[list(tl.labels[d]) for d in SEGMENT_DIMS],
        features=np.concatenate([p[5] for p in parts]) if named is not None else None,
        feature_events=named,
    )


def usable_timeline(store: Any) -> Timeline | None:
    """The store's timeline when it can stand for every event (module docstring), without
    building it (a diagnosis should not wait for a build); else None."""
    if getattr(store, "on_spark", False) or not timeline_store.is_current(store):
        return None
    try:
        tl = timeline_store.of_store(store, pieces=True)
    except OSError:
        return None
    if tl.side is not None or tl.session is None or not tl.sessions_nested:
        return None
    if any(d not in tl.dims for d in SEGMENT_DIMS):
        return None
    key = timeline_store.store_key(store.db)
    if tl.key != key or len(tl) != int(store.db.scalar("SELECT count(*) FROM events")):
        return None  # events without a person or a time are not in the timeline
    return tl


def sessions(
    store: Any, events: list[str], start_us: int | None, end_us: int | None
) -> SessionFacts | None:
    """The sessions of ``store`` that have events in ``[start_us, end_us)`` (None: no
    bound) from its timeline, or None when the timeline cannot serve (module docstring).

    The rows are kept beside the timeline (``sessions.arrow``, :mod:`shopfunnel.store.cache`,
    keyed by the store's events, the steps and the window): a diagnosis's window follows
    the last event, so the next process over the same events reads them back instead of
    passing over the timeline (and starting numba) again."""
    tl = usable_timeline(store)
    if tl is None:
        return None
    lo = np.iinfo(np.int64).min if start_us is None else start_us
    hi = np.iinfo(np.int64).max if end_us is None else end_us
    labels = [list(tl.labels[d]) for d in SEGMENT_DIMS]
    folder = timeline_store.folder_for(store.path)
    saved = folder / "sessions.arrow" if folder is not None and folder.is_dir() else None
    key = f"{tl.key}|{json.dumps([FORMAT, events, int(lo), int(hi)])}"
    found = cache.read_keyed(saved, key) if saved is not None else None
    if found is not None:
        return _from_table(found, labels, feature_events(tl, events))
    made = facts(tl, events, lo, hi)
    if made is not None and saved is not None and timeline_store.writable(saved.parent):
        cache.write_keyed(saved, key, _to_table(made))
    return made


def _to_table(f: SessionFacts) -> pa.Table:
    return pa.table(
        {
            "session": f.session,
            "person": f.person,
            "start_us": f.start_us,
            "level": f.level,
            **{d: c for d, c in zip(SEGMENT_DIMS, f.codes, strict=True)},
            **({"features": f.features} if f.features is not None else {}),
        }
    )


def _from_table(table: pa.Table, labels: list[list[str]], named: list[str] | None) -> SessionFacts:
    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy()

    return SessionFacts(
        session=col("session"),
        person=col("person"),
        start_us=col("start_us"),
        level=col("level"),
        codes=[col(d) for d in SEGMENT_DIMS],
        labels=labels,
        features=col("features") if named is not None else None,
        feature_events=named,
    )
