"""The per-person facts the stage model is built on, for one or several periods.

:func:`shopfunnel.stages.placement.placement` needs, for every person with an event in the
period ``(start, end]``: their first and last event in the period, their first evidence of
each stage (the first event in the period mapped to it), their first-touch channel (the
channel of their earliest event up to ``end`` that has one, ties broken by ``event_id``)
and every visit in the period that starts with a return (its first event and the gap since
the person's previous event in the period, when that gap exceeds the visit gap).

Two paths give the same facts:

* **the timeline** (:func:`from_timeline`): the store's events sorted by person and time as
  small integer columns (:mod:`shopfunnel.store.timeline`); one compiled pass reads them
  chunk by chunk and gives the facts of several periods at once (the stage flow places
  everyone at two dates). Person ids come back from the hashes through
  :mod:`shopfunnel.store.person_index`. The timeline holds no ``event_id``: where a person's
  earliest instant holds events of two channels, those few persons' first channel is asked
  of the events.
* **SQL** (:func:`shopfunnel.stages.evidence_sql.from_sql`): one ``GROUP BY person_id`` and one window query over the
  events per period. It is the reference the timeline path is tested against, and the path
  taken when the timeline cannot serve (no channel column in it, two person ids sharing a
  hash, a timeline that cannot be built).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from shopfunnel.jit import njit
from shopfunnel.model import Model
from shopfunnel.stages.evidence_sql import from_sql
from shopfunnel.stages.person_facts import NEVER, PersonFacts, epoch_us, gap_us
from shopfunnel.store import person_index
from shopfunnel.store import timeline as timeline_store
from shopfunnel.store.memory import give_back_memory
from shopfunnel.store.store import Store
from shopfunnel.store.timeline import Timeline, chunks

CHUNK_ROWS = 4_000_000  # timeline rows read at a time: memory stays at one chunk


def gather(
    store: Store, model: Model, periods: Sequence[tuple[datetime, datetime]], visit_gap_s: float
) -> list[PersonFacts]:
    """The facts of each period ``(start, end]``: from the timeline when it can serve, else
    by SQL (see the module docstring)."""
    facts = from_timeline(store, model, periods, visit_gap_s)
    if facts is None:
        facts = [from_sql(store, model, start, end, visit_gap_s) for start, end in periods]
    return facts


@njit(cache=True, nogil=True)
def _scan(
    person, t, event, channel, stage_of, n_stages, start, end, visit_gap
):  # pragma: no cover - compiled
    """The facts of one period over rows sorted by (person, t); see :class:`PersonFacts`.
    ``stage_of[code]`` is the stage of an event code (-1: none)."""
    n = len(t)
    m = 0
    for i in range(n):
        if i == 0 or person[i] != person[i - 1]:
            m += 1
    hashes = np.empty(m, dtype=np.uint64)
    seen = np.zeros(m, dtype=np.bool_)
    first = np.full(m, NEVER, dtype=np.int64)
    last = np.full(m, NEVER, dtype=np.int64)
    stage_first = np.full((m, n_stages), NEVER, dtype=np.int64)
    chan = np.full(m, -1, dtype=np.int16)
    tied = np.zeros(m, dtype=np.bool_)
    v_row = np.empty(n, dtype=np.int64)
    v_start = np.empty(n, dtype=np.int64)
    v_gap = np.empty(n, dtype=np.int64)
    nv = 0
    p = -1
    prev = NEVER
    chan_t = NEVER
    for i in range(n):
        if i == 0 or person[i] != person[i - 1]:
            p += 1
            hashes[p] = person[i]
            prev = NEVER
            chan_t = NEVER
        ti = t[i]
        if ti > end:
            continue
        c = channel[i]
        if c >= 0:
            if chan_t == NEVER:
                chan[p] = c
                chan_t = ti
            elif ti == chan_t and c != chan[p]:
                tied[p] = True
        if ti <= start:
            continue
        if not seen[p]:
            seen[p] = True
            first[p] = ti
        last[p] = ti
        s = stage_of[event[i]]
        if s >= 0 and stage_first[p, s] == NEVER:
            stage_first[p, s] = ti
        if prev != NEVER and ti - prev > visit_gap:
            v_row[nv] = p
            v_start[nv] = ti
            v_gap[nv] = ti - prev
            nv += 1
        prev = ti
    if seen.all():  # everyone seen in the period (a long lookback): nothing to copy
        return (
            hashes,
            first,
            last,
            stage_first,
            chan,
            tied,
            v_row[:nv].copy(),
            v_start[:nv].copy(),
            v_gap[:nv].copy(),
        )
    # keep the persons seen in the period; renumber the visits' rows
    new_row = np.full(m, -1, dtype=np.int64)
    k = 0
    for q in range(m):
        if seen[q]:
            new_row[q] = k
            k += 1
    for j in range(nv):
        v_row[j] = new_row[v_row[j]]
    keep = seen
    return (
        hashes[keep],
        first[keep],
        last[keep],
        stage_first[keep],
        chan[keep],
        tied[keep],
        v_row[:nv].copy(),
        v_start[:nv].copy(),
        v_gap[:nv].copy(),
    )


def from_timeline(
    store: Store,
    model: Model,
    periods: Sequence[tuple[datetime, datetime]],
    visit_gap_s: float,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> list[PersonFacts] | None:
    """The facts of each period from one pass over the store's timeline, or None when the
    timeline cannot serve (then :func:`from_sql` does)."""
    try:
        tl = timeline_store.of_store(store)
    except OSError:  # e.g. more event names than the timeline codes
        return None
    if "channel" not in tl.dims or tl.side is not None or tl.live is not None:
        # a live view (fresh events in a second piece, their persons hidden in the base:
        # ADR 0150) is read by the funnel's piece-aware pass only; SQL serves it here
        return None
    index = person_index.of_store(store)
    if index is None:
        return None
    bounds = [(epoch_us(start), epoch_us(end)) for start, end in periods]
    raw = scan(
        tl,
        model.event_stage(),
        len(model.stages),
        bounds,
        gap_us(visit_gap_s),
        chunk_rows=chunk_rows,
    )
    labels = pa.array(tl.labels["channel"], pa.string())
    out = []
    for (_, end), r in zip(periods, raw, strict=True):
        hashes, first, last, stage_first, chan, tied, v_row, v_start, v_gap = r
        rows = index.rows_of(hashes)  # each person's row among all ids, sorted by id
        if (rows < 0).any():  # a person the index does not know: it is stale
            return None
        codes, period_labels = chan.astype(np.int32), labels
        tied = np.flatnonzero(tied)
        if len(tied):  # resolved by event id; each found value gets a label of its own
            found = _first_channels(store, index.ids.take(pa.array(rows[tied])), end)
            extra = pa.array(found, pa.string())
            codes[tied] = np.where(
                pd.isna(np.array(found, dtype=object)), -1, len(labels) + np.arange(len(tied))
            )
            period_labels = pa.concat_arrays([labels, extra])
        out.append(
            PersonFacts(
                ids=index.ids,
                id_rank=rows,
                first_us=first,
                last_us=last,
                stage_first=stage_first,
                channel_code=codes,
                channel_labels=period_labels,
                visit_rows=v_row,
                visit_starts=v_start,
                visit_gaps=v_gap,
                hashes=hashes,
            )
        )
    return out


def scan(
    tl: Timeline,
    stage_of_event: dict[str, int],
    n_stages: int,
    periods: list[tuple[int, int]],
    visit_gap_us: int,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> list[tuple[np.ndarray, ...]]:
    """Each period's facts ``(start, end]`` (µs) by person hash, in timeline order: hashes,
    first, last, stage_first, channel code (-1 none), channel tied, visit rows, starts and
    gaps. One pass over the timeline, chunk by chunk (a chunk never splits a person), the
    chunks shared by one thread per core."""
    stage_of = np.full(len(tl.events), -1, dtype=np.int64)
    for code, name in enumerate(tl.events):
        if name is not None and name in stage_of_event:
            stage_of[code] = stage_of_event[name]
    threads = os.cpu_count() or 1
    # chunks small enough that each core gets two (memory holds one chunk per core)
    rows = min(chunk_rows, max(1, -(-len(tl) // (2 * threads))))

    def chunk(span: tuple[int, int]) -> list[tuple[np.ndarray, ...] | None]:
        a, b = span
        person = tl.read("person", a, b)
        t = tl.read("t", a, b)
        event = tl.read("event", a, b)
        channel = tl.read("dim_channel", a, b)
        return [
            _scan(
                person,
                t,
                event,
                channel,
                stage_of,
                n_stages,
                np.int64(start),
                np.int64(end),
                np.int64(visit_gap_us),
            )
            for start, end in periods
        ]

    spans = chunks(tl, rows) if len(tl) else []
    if threads > 1 and len(spans) > 1:  # the kernel and the reads free the GIL
        with ThreadPoolExecutor(max_workers=threads) as pool:
            done = list(pool.map(chunk, spans))  # in timeline order
    else:
        done = [chunk(span) for span in spans]
    joined = []
    for w in range(len(periods)):
        parts: list[tuple[np.ndarray, ...] | None] = []
        for d in done:
            parts.append(d[w])
            d[w] = None  # the join frees each chunk once copied
        joined.append(_join(parts, n_stages))
    return joined


def _join(parts: list[tuple[np.ndarray, ...] | None], n_stages: int) -> tuple[np.ndarray, ...]:
    """The chunks' facts of one period as one table, chunk after chunk. Each chunk is
    released (``parts[i] = None``) once copied: with the output's pages touched only as
    they are written, memory holds about one copy of the period's facts, not two."""
    if not parts:
        e = np.zeros(0, dtype=np.int64)
        return (
            np.zeros(0, np.uint64),
            e,
            e,
            np.zeros((0, n_stages), np.int64),
            np.zeros(0, np.int16),
            np.zeros(0, bool),
            e,
            e,
            e,
        )
    if len(parts) == 1:
        only = parts[0]
        parts[0] = None
        assert only is not None
        return only
    first = [p for p in parts if p is not None][0]
    rows = sum(len(p[0]) for p in parts if p is not None)
    visits = sum(len(p[6]) for p in parts if p is not None)
    out = [np.empty((rows, *first[j].shape[1:]), dtype=first[j].dtype) for j in range(6)]
    out += [np.empty(visits, dtype=first[j].dtype) for j in range(6, 9)]
    at = vat = 0
    for i, part in enumerate(parts):
        assert part is not None
        parts[i] = None  # the copy below is the last use: freed after it
        m, nv = len(part[0]), len(part[6])
        for j in range(6):
            out[j][at : at + m] = part[j]
        out[6][vat : vat + nv] = part[6] + at
        out[7][vat : vat + nv] = part[7]
        out[8][vat : vat + nv] = part[8]
        at, vat = at + m, vat + nv
        del part
        give_back_memory()
    return tuple(out)


def _first_channels(store: Store, ids: pa.Array, end: datetime) -> list[Any]:
    """The first-touch channel up to ``end`` of a few persons, ties by ``event_id``."""
    name = "__sf_tied_persons"
    store.db.register(name, pa.table({"person_id": ids}))
    try:
        found = dict(
            store.db.rows(
                f"SELECT person_id, arg_min(channel, struct_pack(t := ts, id := event_id)) "
                f"FROM events WHERE ts <= ? AND person_id IN (SELECT person_id FROM {name}) "
                f"GROUP BY person_id",
                [end],
            )
        )
    finally:
        store.db.unregister(name)
    return [found.get(p) for p in ids.to_pylist()]
