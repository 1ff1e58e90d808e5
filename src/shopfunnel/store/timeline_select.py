"""Selecting a funnel's rows from the timeline (:mod:`shopfunnel.store.timeline`): one
compiled pass over the ``event`` column keeps the rows of the plan's steps (and, in strict
mode, every other event as an interruption), checks each step's filters on the timeline's
breakdown columns, drops a person's rows before their first possible anchor, and puts
events at one instant in step order; by session, each person's sessions are then grouped.
Also the start of a trend's period for each time, as DuckDB's ``date_trunc``.

The two compiled functions (:func:`select_rows`, :func:`group_sessions`) are called from
:func:`select` only, in Python: neither calls the other (ADR 0127).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shopfunnel.jit import njit
from shopfunnel.store.timeline import DAY_US, Timeline


@njit(cache=True, nogil=True)
def select_rows(
    event,
    person,
    t,
    lut,
    lut_n,
    keep_other,
    other,
    anchor_max,
    offset,
    cond,
    cond_start,
    cond_end,
    clause_dim,
    allowed,
    dims,
    collapse,
):  # pragma: no cover
    """One pass: rows whose event has a code in ``lut`` (several codes → several rows, in
    code order), every other row as ``other`` when ``keep_other``; returns their index,
    code, owner and time, with rows at the same (owner, time) put in code order (the
    kernel takes ties in step order).

    With ``anchor_max`` > 0, a person's rows before the instant of their first row coded
    ``1..anchor_max`` (an event that can start an attempt) are left out: no attempt can
    use them, and strict mode no longer walks every visitor's page views. Indices are
    returned plus ``offset``.

    ``cond[e, q]`` (-1 = none) names the condition on the row's columns that code ``q`` of
    event ``e`` needs: clauses ``cond_start..cond_end``, each true when the row's code in
    ``dims[clause_dim]`` (-1 = missing) is allowed (``allowed[clause, code + 1]``).

    With ``collapse``, a run of ``other`` rows of one owner shrinks to its first row and
    one row at its latest instant: in the final (time, code) order the earlier ones sit
    together between the same two steps, and the latest instant's sit after that
    instant's steps, so strict mode sees the same interruptions (not per session: the
    rows may belong to different sessions)."""
    width = lut.shape[1]
    cap = len(event) * (width if not keep_other else max(width, 1))
    idx = np.empty(cap, dtype=np.int64)
    code = np.empty(cap, dtype=np.int8)
    o = np.empty(cap, dtype=np.uint64)
    ts = np.empty(cap, dtype=np.int64)
    j = 0
    started = True
    inst_start = 0
    inst_t = 0
    for i in range(len(event)):
        if i == 0 or person[i] != person[i - 1]:
            if not started:
                j = inst_start  # the last person never started: drop their rows
            started = anchor_max <= 0
            inst_start = j
            inst_t = t[i]
        elif not started and t[i] != inst_t:
            j = inst_start  # a new instant before any anchor: the earlier rows go
            inst_t = t[i]
        e = event[i]
        k = lut_n[e]
        emitted = j
        if k > 0:
            for q in range(k):
                ci = cond[e, q]
                if ci >= 0:
                    ok = True
                    for cl in range(cond_start[ci], cond_end[ci]):
                        if not allowed[cl, dims[clause_dim[cl], i] + 1]:
                            ok = False
                            break
                    if not ok:
                        continue
                c = lut[e, q]
                if 1 <= c <= anchor_max:
                    started = True
                idx[j] = i + offset
                code[j] = c
                o[j] = person[i]
                ts[j] = t[i]
                j += 1
        if j == emitted and keep_other:  # no step or exclusion matched: any other event
            if collapse and j - 1 >= inst_start and code[j - 1] == other and ts[j - 1] == t[i]:
                continue  # one interruption at an instant is enough
            if collapse and j - 2 >= inst_start and code[j - 1] == other and code[j - 2] == other:
                j -= 1  # a run of interruptions: keep its first and its latest instant
            idx[j] = i + offset
            code[j] = other
            o[j] = person[i]
            ts[j] = t[i]
            j += 1
    if not started:
        j = inst_start
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


@njit(cache=True, nogil=True)
def group_sessions(person, session, order):  # pragma: no cover - compiled
    """Within each person, put each session's rows together (stable: each session keeps
    its (time, code) order); ``order`` (the identity on entry) is permuted in place.
    Returns whether any row moved: a person's sessions usually follow one another."""
    m = len(person)
    moved = False
    a = 0
    while a < m:
        b = a + 1
        runs = 1
        while b < m and person[b] == person[a]:
            if session[b] != session[b - 1]:
                runs += 1
            b += 1
        interleaved = runs > 64  # many sessions: sort rather than compare every pair
        if 1 < runs <= 64:
            heads = np.empty(runs, dtype=np.uint64)
            heads[0] = session[a]
            r = 1
            for i in range(a + 1, b):
                if session[i] != session[i - 1]:
                    for q in range(r):
                        if heads[q] == session[i]:
                            interleaved = True
                    heads[r] = session[i]
                    r += 1
        if interleaved:
            perm = np.argsort(session[a:b], kind="mergesort")
            order[a:b] = order[a:b][perm]
            moved = True
        a = b
    return moved


Where = tuple[tuple[str, Any], ...]


def can_filter(tl: Timeline, where: Where) -> bool:
    """Whether the timeline holds every column a step's ``where`` filters on."""
    return all(key in tl.dims for key, _ in where)


def select(
    tl: Timeline,
    codes: dict[str, list[tuple[int, Where]]],
    *,
    other: int | None,
    by_session: bool = False,
    anchor_max: int = 0,
    start: int = 0,
    stop: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows of events named in ``codes`` (name → its codes, each with the filters on
    columns the row must pass, as a step's ``where``: a value or a list of values, None
    for a missing value), each code a row, every
    other row with code ``other`` unless it is None, sorted by (owner, t, code): returns
    owner, t, code and the rows' indices counted from ``start``. The owner is the person, or
    with ``by_session`` the session (rows without a session are left out). With
    ``anchor_max``, rows before a person's first code in ``1..anchor_max`` are left out.
    ``start``/``stop``: only that range of rows (see :func:`chunks`)."""
    by_code = tl.event_codes()
    width = max([len(v) for v in codes.values()] or [1])
    lut = np.zeros((len(tl.events), max(width, 1)), dtype=np.int8)
    lut_n = np.zeros(len(tl.events), dtype=np.int8)
    cond = np.full(lut.shape, -1, dtype=np.int64)
    used: list[str] = []  # the columns filtered on, in the order of ``dims`` below
    clauses: list[tuple[int, np.ndarray]] = []
    bounds: list[tuple[int, int]] = []
    for name, entries in codes.items():
        e = by_code.get(name)
        if e is None:
            continue
        for j, (k, where) in enumerate(sorted(entries, key=lambda kw: kw[0])):
            lut[e, j] = k
            if where:
                first = len(clauses)
                for key, value in where:
                    if key not in used:
                        used.append(key)
                    clauses.append((used.index(key), _allowed(tl.labels[key], value)))
                cond[e, j] = len(bounds)
                bounds.append((first, len(clauses)))
        lut_n[e] = len(entries)
    stop = len(tl) if stop is None else stop
    width_codes = max([len(a) for _, a in clauses] or [1])
    allowed = np.zeros((max(len(clauses), 1), width_codes), dtype=np.bool_)
    for i, (_, a) in enumerate(clauses):
        allowed[i, : len(a)] = a
    dims = (
        np.stack([tl.read(f"dim_{d}", start, stop) for d in used])
        if used
        else np.zeros((1, 1), dtype=np.int16)
    )
    idx, code, o, t = select_rows(
        tl.read("event", start, stop),
        tl.read("person", start, stop),
        tl.read("t", start, stop),
        lut,
        lut_n,
        other is not None,
        0 if other is None else other,
        anchor_max,
        0,
        cond,
        np.array([a for a, _ in bounds] or [0], dtype=np.int64),
        np.array([b for _, b in bounds] or [0], dtype=np.int64),
        np.array([d for d, _ in clauses] or [0], dtype=np.int64),
        allowed,
        dims,
        not by_session,
    )
    if by_session:
        if tl.session is None:
            raise ValueError("this timeline has no sessions")
        s = tl.session[idx + start]  # a gather: only the selected rows are read
        has = s != 0
        if not has.all():
            o, t, code, idx, s = o[has], t[has], code[has], idx[has], s[has]
        order = np.arange(len(idx))
        if group_sessions(o, s, order):
            o, t, code, idx = s[order], t[order], code[order], idx[order]
        else:
            o = s
    return o, t, code, idx


def _allowed(labels: list[str], value: Any) -> np.ndarray:
    """Which codes (shifted by one: index 0 is a missing value) pass a ``where`` value:
    as the SQL path, values compare as text, and None asks for a missing value."""
    out = np.zeros(len(labels) + 1, dtype=np.bool_)
    if value is None:
        out[0] = True
        return out
    values = list(value) if isinstance(value, list | tuple | set) else [value]
    wanted = {str(v) for v in values}
    for i, label in enumerate(labels):
        if label in wanted:
            out[i + 1] = True
    return out


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
