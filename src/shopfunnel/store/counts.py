"""The store's headline counts from one compiled pass over its timeline.

``shopfunnel info``, the report's overview and its daily-activity chart, and the dashboard
ask the same questions of every event: how many events, sessions and persons, per UTC day
and in all, sessions by channel, events by name, the first and last event. By SQL each is a
``count(DISTINCT …)`` over every event (a hash table of millions of session ids, per
question). The timeline (:mod:`shopfunnel.store.timeline`) already holds the events sorted
by person and time as small integer columns, so one pass answers all of them:

* a person's events are contiguous and in time order, so the persons of a day are counted
  by the changes of (person, day), with no hash table;
* every session belongs to one person (the timeline records whether that holds:
  ``sessions_nested``), so the distinct sessions of the store, of a day or of a channel are
  the sums over persons of the distinct sessions among each person's few events.

The definitions are those of the SQL they replace (:func:`shopfunnel.store.summary.
daily_activity` and :meth:`shopfunnel.store.store.Store.info`): a day is ``CAST(ts AS
DATE)``; a missing ``session_id`` is not a session; a missing channel counts as
``unassigned``. Sessions are told apart by ``hash(session_id)`` (64 bits) within one
person's events.

:func:`of_store` answers only when the timeline is current and covers every event (no
event without a person or a time), every session belongs to one person and the channel
is coded; otherwise it returns None and the callers keep their SQL. The counts are kept
per store object until its events change, so the sections of one report share them, and
beside the timeline (``counts.arrow``, :mod:`shopfunnel.store.cache`, keyed by the store's
events), so the next process reads them instead of passing over the timeline again.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from shopfunnel.jit import njit
from shopfunnel.store import cache
from shopfunnel.store import timeline as timeline_store
from shopfunnel.store.timeline import Timeline, chunks

DAY_US = 86_400 * 1_000_000
CHUNK_ROWS = 1_000_000  # timeline rows read at a time (small arrays: the allocator recycles them)
UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class StoreCounts:
    """Counts over every event of a store (see the module docstring). Per-day arrays start
    at ``first_day`` (days since 1970) and run to the last event's day, days without events
    included (as 0)."""

    key: str
    events: int
    sessions: int
    first_us: int
    last_us: int
    first_day: int
    events_per_day: np.ndarray
    sessions_per_day: np.ndarray
    persons_per_day: np.ndarray
    events_by_name: dict[str | None, int]  # None: events without a name
    sessions_by_channel: dict[str, int]  # channels that have events; missing: unassigned


_CACHE: weakref.WeakKeyDictionary[Any, StoreCounts] = weakref.WeakKeyDictionary()


def of_store(store: Any, *, compute: bool = True) -> StoreCounts | None:
    """The counts of a :class:`shopfunnel.store.Store` from its timeline when it can serve
    (module docstring), else None; with ``compute`` false, only counts already made for
    the store's present events. Never builds the timeline: a question about the store
    should not wait for it."""
    key = timeline_store.store_key(store.db)
    cached = _CACHE.get(store)
    if cached is not None and cached.key == key:
        return cached
    folder = timeline_store.folder_for(store.path)
    saved = folder / "counts.arrow" if folder is not None and folder.is_dir() else None
    found = cache.read_keyed(saved, key) if saved is not None else None
    if found is not None:
        counts = _from_table(found, key)
        _CACHE[store] = counts
        return counts
    if not compute:
        return None
    if not timeline_store.is_current(store):
        return None
    try:
        tl = timeline_store.of_store(store, pieces=True)
    except OSError:
        return None
    if tl.side is not None:  # a live view (store/live.py): SQL counts until it is compacted
        return None
    if tl.session is None or not tl.sessions_nested or "channel" not in tl.dims:
        return None
    if tl.key != key or len(tl) != int(store.db.scalar("SELECT count(*) FROM events")):
        return None  # events without a person or a time are not in the timeline
    counts = count_timeline(tl, key)
    _CACHE[store] = counts
    if saved is not None and timeline_store.writable(saved.parent):
        cache.write_keyed(saved, key, _to_table(counts))
    return counts


def _to_table(counts: StoreCounts) -> pa.Table:
    """The counts as one Arrow row (what :func:`_from_table` reads back)."""
    names = list(counts.events_by_name)
    channels = list(counts.sessions_by_channel)
    return pa.table(
        {
            "events": [counts.events],
            "sessions": [counts.sessions],
            "first_us": [counts.first_us],
            "last_us": [counts.last_us],
            "first_day": [counts.first_day],
            "events_per_day": [counts.events_per_day.tolist()],
            "sessions_per_day": [counts.sessions_per_day.tolist()],
            "persons_per_day": [counts.persons_per_day.tolist()],
            "names": pa.array([names], pa.list_(pa.string())),
            "name_events": [[counts.events_by_name[n] for n in names]],
            "channels": pa.array([channels], pa.list_(pa.string())),
            "channel_sessions": [[counts.sessions_by_channel[c] for c in channels]],
        }
    )


def _from_table(table: pa.Table, key: str) -> StoreCounts:
    row = table.to_pylist()[0]

    def days(name: str) -> np.ndarray:
        return np.asarray(row[name], dtype=np.int64)

    return StoreCounts(
        key=key,
        events=row["events"],
        sessions=row["sessions"],
        first_us=row["first_us"],
        last_us=row["last_us"],
        first_day=row["first_day"],
        events_per_day=days("events_per_day"),
        sessions_per_day=days("sessions_per_day"),
        persons_per_day=days("persons_per_day"),
        events_by_name=dict(zip(row["names"], row["name_events"], strict=True)),
        sessions_by_channel=dict(zip(row["channels"], row["channel_sessions"], strict=True)),
    )


def count_timeline(tl: Timeline, key: str = "", *, chunk_rows: int = CHUNK_ROWS) -> StoreCounts:
    """:class:`StoreCounts` of a timeline with sessions and a channel column, chunk by chunk
    (a chunk never splits a person)."""
    n = len(tl)
    spans = chunks(tl, chunk_rows) if n else []
    lo, hi = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for a, b in spans:
        t = tl.read("t", a, b)
        lo, hi = min(lo, int(t.min())), max(hi, int(t.max()))
    first_day = lo // DAY_US if n else 0
    n_days = (hi // DAY_US - first_day + 1) if n else 0
    labels = list(tl.labels.get("channel", []))
    # channel code + 1 -> group: a missing channel joins a channel literally "unassigned"
    groups = labels if UNASSIGNED in labels else [*labels, UNASSIGNED]
    group_of = np.array([groups.index(UNASSIGNED), *range(len(labels))], dtype=np.int64)
    per_day = np.zeros((3, n_days), dtype=np.int64)  # events, sessions, persons
    by_code = np.zeros(len(tl.events), dtype=np.int64)
    by_group = np.zeros((2, len(groups)), dtype=np.int64)  # events, sessions
    sessions = np.zeros(1, dtype=np.int64)
    for a, b in spans:
        _count(
            tl.read("person", a, b),
            tl.read("t", a, b),
            tl.read("event", a, b),
            tl.read("session", a, b),
            tl.read("dim_channel", a, b),
            np.int64(first_day),
            group_of,
            per_day,
            by_code,
            by_group,
            sessions,
        )
    by_name = {name: int(c) for name, c in zip(tl.events, by_code, strict=True) if c}
    by_channel = {g: int(by_group[1, i]) for i, g in enumerate(groups) if by_group[0, i]}
    return StoreCounts(
        key=key,
        events=n,
        sessions=int(sessions[0]),
        first_us=lo if n else 0,
        last_us=hi if n else 0,
        first_day=int(first_day),
        events_per_day=per_day[0],
        sessions_per_day=per_day[1],
        persons_per_day=per_day[2],
        events_by_name=dict(sorted(by_name.items(), key=lambda kv: -kv[1])),
        sessions_by_channel=dict(sorted(by_channel.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


@njit(cache=True, nogil=True)
def _distinct(values):  # pragma: no cover - compiled
    """How many distinct non-zero values (0: no session)."""
    n = len(values)
    if n == 0:
        return 0
    same = True
    for i in range(1, n):
        if values[i] != values[0]:
            same = False
            break
    if same:
        return 1 if values[0] != 0 else 0
    s = np.sort(values)
    c = 0
    for i in range(n):
        if s[i] != 0 and (i == 0 or s[i] != s[i - 1]):
            c += 1
    return c


@njit(cache=True, nogil=True)
def _interleaved(values):  # pragma: no cover - compiled
    """Whether some value comes back after another one (a run that repeats an earlier run)."""
    n = len(values)
    runs = 1
    for i in range(1, n):
        if values[i] != values[i - 1]:
            runs += 1
    if runs == 1:
        return False
    if runs > 64:  # many runs: sorting is cheaper than comparing every pair
        return True
    heads = np.empty(runs, dtype=values.dtype)
    heads[0] = values[0]
    r = 1
    for i in range(1, n):
        if values[i] != values[i - 1]:
            for q in range(r):
                if heads[q] == values[i]:
                    return True
            heads[r] = values[i]
            r += 1
    return False


@njit(cache=True, nogil=True)
def _count(
    person, t, event, session, channel, first_day, group_of, per_day, by_code, by_group, sessions
):  # pragma: no cover - compiled
    """Add one chunk's counts (rows sorted by person, then time) into the arrays."""
    n = len(t)
    n_groups = by_group.shape[1]
    mark = np.full(n_groups, -1, dtype=np.int64)  # the last session run that saw a group
    run = 0
    a = 0
    while a < n:
        b = a + 1
        while b < n and person[b] == person[a]:
            b += 1
        # per day: events, persons (days come in order) and distinct sessions
        d0 = a
        while d0 < b:
            day = t[d0] // 86_400_000_000 - first_day
            d1 = d0 + 1
            while d1 < b and t[d1] // 86_400_000_000 - first_day == day:
                d1 += 1
            per_day[0, day] += d1 - d0
            per_day[1, day] += _distinct(session[d0:d1])
            per_day[2, day] += 1
            d0 = d1
        for i in range(a, b):
            by_code[event[i]] += 1
            by_group[0, group_of[channel[i] + 1]] += 1
        # the person's sessions, and each session's channels: in time order when each
        # session's events follow one another (the usual case), else sorted by session
        if _interleaved(session[a:b]):
            order = np.argsort(session[a:b], kind="mergesort") + a
        else:
            order = np.arange(a, b)
        prev = np.uint64(0)
        for j in range(b - a):
            i = order[j]
            s = session[i]
            if s == 0:
                continue
            if j == 0 or s != prev:
                sessions[0] += 1
                run += 1
                prev = s
            g = group_of[channel[i] + 1]
            if mark[g] != run:
                mark[g] = run
                by_group[1, g] += 1
        a = b
