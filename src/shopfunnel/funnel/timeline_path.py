"""The local engine's timeline path: which plans the store's sorted timeline can answer, the
plan's rows of it, and the counting pass over them in chunks of whole persons on every core.

The timeline (:mod:`shopfunnel.store.timeline`) holds the events already sorted by (person,
time) as integer arrays; a compiled pass picks the plan's rows from it (ADR 0021), so no SQL
runs and nothing is sorted. :class:`shopfunnel.funnel.engine.LocalEngine` takes this path
when :func:`timeline_fits` says the plan can, and SQL otherwise; both end in the same pass
(:mod:`shopfunnel.funnel.passes`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from shopfunnel.funnel.passes import (
    Units,
    default_threads,
    empty_results,
    entered,
    prepare_units,
    run_prepared,
)
from shopfunnel.funnel.plan import FunnelPlan, coded_conditions
from shopfunnel.store.timeline import DIMENSIONS as TIMELINE_DIMENSIONS
from shopfunnel.store.timeline import Timeline
from shopfunnel.store.timeline import chunks as timeline_chunks
from shopfunnel.store.timeline_select import can_filter, period_starts
from shopfunnel.store.timeline_select import select as select_timeline

TIMELINE_CHUNK_ROWS = 8_000_000  # timeline rows a thread selects and counts at a time


def timeline_fits(plan: FunnelPlan, tl: Timeline | None = None) -> bool:
    """Whether the plan can run on a timeline (``tl``'s, when given): no held property;
    step and exclusion filters and the breakdown only on the timeline's columns."""
    conditions = [*plan.steps, *(c for c, _, _ in plan.exclusions)]
    if plan.hold is not None:
        return False
    if tl is None:
        return all(key in TIMELINE_DIMENSIONS for c in conditions for key, _ in c.where)
    if plan.by is not None and plan.by not in tl.dims:
        return False
    if not all(can_filter(tl, c.where) for c in conditions):
        return False
    return plan.count_by != "session" or (tl.session is not None and tl.sessions_nested)


def timeline_rows(
    plan: FunnelPlan, tl: Timeline, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The plan's rows of the timeline (rows ``start..stop``), coded and ordered as
    :meth:`~shopfunnel.funnel.engine.LocalEngine.build_sql` orders them: owner, µs, step
    code and the rows' indices in the timeline counted from ``start``."""
    coded, _, _, other = coded_conditions(plan)
    codes: dict[str, list[tuple[int, tuple[tuple[str, Any], ...]]]] = {}
    for k, cond in coded:
        codes.setdefault(cond.event, []).append((k, cond.where))
    # rows before a unit's first possible anchor take part in no attempt
    anchor_max = 0 if plan.order == "any" else len(plan.steps) if plan.open_entry else 1
    return select_timeline(
        tl,
        codes,
        other=other if plan.order == "strict" else None,
        by_session=plan.count_by == "session",
        anchor_max=anchor_max,
        start=start,
        stop=stop,
    )


def count_timeline(
    plan: FunnelPlan, tl: Timeline
) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray, list[str]]:
    """The counting pass over the timeline's rows of this plan (no SQL, no sort), in
    chunks of whole persons on every core: first each chunk's rows are selected,
    then each chunk's kernel writes into its slice of one set of result arrays (no
    concatenation of per-chunk results). Returns the parts, totals and breakdown labels
    :meth:`~shopfunnel.funnel.engine.LocalEngine` makes its output of."""
    threads = default_threads()
    pieces = tl.pieces()  # a live timeline's fresh persons are a second piece
    size = min(TIMELINE_CHUNK_ROWS, -(-sum(len(p) for p in pieces) // threads))

    def select(job: tuple[Timeline, int, int]) -> Units:
        piece, *rows = job
        o, t, c, idx = timeline_rows(plan, piece, *rows)
        attr = piece.read(f"dim_{plan.by}", *rows)[idx] if plan.by is not None else None
        period = period_starts(t, plan.trend) if plan.trend else None
        return prepare_units(plan, o, None, t, c, attr, period)

    jobs = [(piece, a, b) for piece in pieces for a, b in timeline_chunks(piece, size)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        chunks = list(pool.map(select, jobs))
        starts = np.cumsum([0] + [ch.n_seg for ch in chunks])
        out = empty_results(plan, int(starts[-1]))
        owner = np.empty(int(starts[-1]), dtype=np.uint64)

        def run(i: int) -> np.ndarray:
            part = tuple(a[starts[i] : starts[i + 1]] for a in out)
            tot = run_prepared(plan, chunks[i], part)
            ch = chunks[i]
            owner[starts[i] : starts[i + 1]] = ch.o[ch.unit_starts[:-1][part[0]]]
            chunks[i] = None  # type: ignore[call-overload]  # free the rows
            return tot

        totals = (
            np.asarray(np.sum(list(pool.map(run, range(len(chunks)))), axis=0, dtype=np.int64))
            if chunks
            else np.zeros(len(plan.steps), np.int64)
        )
    labels = tl.labels.get(plan.by, []) if plan.by is not None else []
    return [entered(plan, owner, out)], totals, list(labels)
