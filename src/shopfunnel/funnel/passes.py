"""The counting pass every engine shares: sorted rows in, per-unit facts out.

The rows of a funnel (owner hash, optional unit hash for a held property, µs, step code,
breakdown code, trend period), sorted by (owner[, unit], time, step), are cut into units
(:func:`prepare_units`), counted by the compiled kernel (:func:`run_prepared`, in chunks on a
thread pool), and the units that entered the funnel are kept (:func:`entered`).
:func:`count_batch` does it for an Arrow table, the form both the local engine's SQL path and
Spark's ``mapInArrow`` workers hand over, so the numbers cannot differ between engines.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from shopfunnel.funnel.kernel import (
    ANY,
    NONE,
    ORDERED,
    STRICT,
    boundaries,
    boundaries2,
    count_segments,
    run_units,
)
from shopfunnel.funnel.plan import FunnelPlan


def count_batch(
    table: pa.Table,
    plan: FunnelPlan,
    labels: dict[int, int],
    *,
    pool: ThreadPoolExecutor | None = None,
    threads: int = 1,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Run the kernel over ``table``, whole units only, sorted for the kernel: columns
    ``o`` (owner hash)[, ``u`` (unit hash, with ``hold``)], ``t`` (µs), ``c`` (step code)
    [, ``a`` (breakdown value hash, 0 = none)][, ``p`` (trend period µs)].

    Returns the units that entered the funnel as ``(owner, period, reached, prev, anchor
    [, sattr, aattr])`` (the codes only with a breakdown; ``labels`` maps value hashes to
    codes and grows) and the per-step totals. Chunks of units run on ``pool`` when
    ``threads`` > 1. Every engine calls this, so the pass is the same everywhere.
    """
    return count_arrays(
        plan,
        _np(table.column("o"), np.uint64),
        _np(table.column("u"), np.uint64) if plan.hold is not None else None,
        _np(table.column("t"), np.int64),
        _np(table.column("c"), np.int8),
        _encode_hashes(_np(table.column("a"), np.uint64), labels) if plan.by is not None else None,
        _np(table.column("p"), np.int64) if plan.trend else None,
        pool=pool,
        threads=threads,
    )


@dataclass
class Units:
    """Rows ready for the kernel: sorted by (owner[, unit], t, c), with the row where
    each unit starts and the output row (segment) where each unit's results go."""

    o: np.ndarray
    t: np.ndarray
    c: np.ndarray
    attr: np.ndarray
    period: np.ndarray
    unit_starts: np.ndarray
    seg_offsets: np.ndarray

    @property
    def n_seg(self) -> int:
        return int(self.seg_offsets[-1])


def prepare_units(
    plan: FunnelPlan,
    o: np.ndarray,
    u: np.ndarray | None,
    t: np.ndarray,
    c: np.ndarray,
    attr: np.ndarray | None,
    period: np.ndarray | None,
) -> Units:
    """Unit boundaries and segment offsets (one segment per unit, or per unit and trend
    period of an attempt's start) for the arrays of :func:`count_arrays`."""
    n = len(plan.steps)
    mode = {"ordered": ORDERED, "strict": STRICT, "any": ANY}[plan.order]
    t = _readonly(t)
    c = _readonly(c)
    unit_starts = boundaries2(o, u) if u is not None else boundaries(o)
    if attr is None:
        attr = np.full(len(o), -1, dtype=np.int32)
    else:
        attr = np.ascontiguousarray(attr, dtype=np.int32)
    if period is not None:
        period = _readonly(period)
        seg_counts = count_segments(unit_starts, c, period, n, mode, plan.open_entry)
    else:
        period = _readonly(np.zeros(1, dtype=np.int64))
        seg_counts = np.ones(len(unit_starts) - 1, dtype=np.int64)
    seg_offsets = np.zeros(len(seg_counts) + 1, dtype=np.int64)
    np.cumsum(seg_counts, out=seg_offsets[1:])
    return Units(o, t, c, attr, period, unit_starts, seg_offsets)


def empty_results(plan: FunnelPlan, n_seg: int) -> tuple[np.ndarray, ...]:
    """Uninitialised (seg_unit, seg_period, reached, prev, anchor, sattr, aattr) for
    ``n_seg`` segments (:func:`run_prepared` fills every row; the codes have no rows
    without a breakdown)."""
    n = len(plan.steps)
    # the kernel writes no codes into empty arrays: only the ones the breakdown reads
    n_step = n_seg if plan.by is not None and plan.attribution != "first" else 0
    n_anchor = n_seg if plan.by is not None and plan.attribution == "first" else 0
    return (
        np.empty(n_seg, dtype=np.int64),
        np.zeros(n_seg, dtype=np.int64),
        np.empty((n_seg, n), dtype=np.int64),
        np.empty((n_seg, n), dtype=np.int64),
        np.empty((n_seg, n), dtype=np.int64),
        np.empty((n_step, n), dtype=np.int32),
        np.empty((n_anchor, n), dtype=np.int32),
    )


def run_prepared(
    plan: FunnelPlan,
    units: Units,
    out: tuple[np.ndarray, ...],
    *,
    pool: ThreadPoolExecutor | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Run the kernel over ``units``, writing each segment into ``out`` (from
    :func:`empty_results`, ``units.n_seg`` rows; ``seg_unit`` is the unit's index in
    ``units``); returns the per-step totals."""
    n = len(plan.steps)
    mode = {"ordered": ORDERED, "strict": STRICT, "any": ANY}[plan.order]
    optional = np.array(plan.optional or (False,) * n, dtype=np.bool_)
    excl_from = np.array([a - 1 for _, a, _ in plan.exclusions] or [0], dtype=np.int64)
    excl_to = np.array([b - 1 for _, _, b in plan.exclusions] or [0], dtype=np.int64)
    seg_unit, seg_period, reached, prev, anchor, sattr, aattr = out
    n_units = len(units.unit_starts) - 1
    n_chunks = max(1, min(n_units, threads if pool is not None else 1))
    tot = np.zeros((n_chunks, n), dtype=np.int64)

    def chunk(ci: int) -> None:
        run_units(
            units.unit_starts,
            units.seg_offsets,
            units.t,
            units.c,
            units.attr,
            units.period,
            n,
            plan.window_us,
            mode,
            optional,
            plan.open_entry,
            excl_from,
            excl_to,
            bool(plan.trend),
            ci * n_units // n_chunks,
            (ci + 1) * n_units // n_chunks,
            ci,
            seg_unit,
            seg_period,
            reached,
            prev,
            anchor,
            sattr,
            aattr,
            tot,
        )

    if n_chunks == 1 or pool is None:
        chunk(0)
    else:
        list(pool.map(chunk, range(n_chunks)))
    return tot.sum(axis=0)


def entered(
    plan: FunnelPlan, owner: np.ndarray, out: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    """``(owner, period, reached, prev, anchor[, sattr, aattr])`` of the segments that
    entered the funnel (the codes only with a breakdown); no copy when all entered."""
    _, seg_period, reached, prev, anchor, sattr, aattr = out
    keep = (
        reached[:, 0] != NONE
        if not plan.open_entry and plan.order != "any"
        else ((reached != NONE).any(axis=1))
    )
    if keep.all():  # every unit entered (the timeline leaves out those who cannot)
        keep = slice(None)
    if plan.by is not None:
        kept = reached[keep]

        def codes(m: np.ndarray) -> np.ndarray:  # one the attribution does not read: -1
            return m[keep] if m.shape[0] else np.broadcast_to(np.int32(-1), kept.shape)

        return (
            owner[keep],
            seg_period[keep],
            kept,
            prev[keep],
            anchor[keep],
            codes(sattr),
            codes(aattr),
        )
    # no breakdown: don't hold codes that are all -1 (memory at 100M)
    return owner[keep], seg_period[keep], reached[keep], prev[keep], anchor[keep]


def count_arrays(
    plan: FunnelPlan,
    o: np.ndarray,
    u: np.ndarray | None,
    t: np.ndarray,
    c: np.ndarray,
    attr: np.ndarray | None,
    period: np.ndarray | None,
    *,
    pool: ThreadPoolExecutor | None = None,
    threads: int = 1,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """:func:`count_batch` over arrays: owner hashes ``o`` (and unit hashes ``u`` with
    ``hold``), µs ``t``, step codes ``c``, int32 breakdown codes ``attr`` (-1 = none)
    and trend period starts ``period``, sorted by (owner[, unit], t, c)."""
    units = prepare_units(plan, o, u, t, c, attr, period)
    out = empty_results(plan, units.n_seg)
    totals = run_prepared(plan, units, out, pool=pool, threads=threads)
    owner = units.o[units.unit_starts[:-1][out[0]]]
    return entered(plan, owner, out), totals


def _np(column: pa.ChunkedArray, dtype: Any) -> np.ndarray:
    if column.num_chunks == 1:
        arr = column.chunk(0).to_numpy(zero_copy_only=False)
    else:
        arr = column.to_numpy()
    return arr.astype(dtype, copy=False)


def _readonly(arr: np.ndarray) -> np.ndarray:
    """The kernels are compiled once for read-only inputs (what Arrow hands over)."""
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


def _encode_hashes(hashes: np.ndarray, labels: dict[int, int]) -> np.ndarray:
    """Global int32 codes for value hashes, growing ``labels`` (hash 0 = no value → -1)."""
    import pandas as pd  # the SQL path's breakdowns only: a funnel over a timeline never

    codes, uniques = pd.factorize(hashes)
    remap = np.array(
        [-1 if int(u) == 0 else labels.setdefault(int(u), len(labels)) for u in uniques] or [0],
        dtype=np.int32,
    )
    return remap[codes]


def _encode(column: pa.ChunkedArray, labels: dict[str, int]) -> np.ndarray:
    """Global int32 codes for a string column, growing ``labels`` (null → -1)."""
    import pyarrow.compute as pc  # the SQL path only

    encoded = pc.dictionary_encode(column.combine_chunks())
    remap = np.array(
        [labels.setdefault(v, len(labels)) for v in encoded.dictionary.to_pylist()] or [0],
        dtype=np.int32,
    )
    idx = encoded.indices.to_numpy(zero_copy_only=False)
    if encoded.indices.null_count:
        valid = ~np.asarray(encoded.indices.is_null().to_numpy(zero_copy_only=False))
        out = np.full(len(idx), -1, dtype=np.int32)
        out[valid] = remap[idx[valid].astype(np.int64)]
        return out
    return remap[idx.astype(np.int64)]


def first_per_owner(
    owner: np.ndarray, period: np.ndarray, *mats: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Collapse several units of one owner (held values) into one row per (owner, period):
    per step, the unit that reached it first."""
    if len(owner) == 0:
        return (owner, period, *mats)
    import pandas as pd  # held values only (the SQL path)

    reached = mats[0]
    keys = pd.DataFrame({"o": owner, "p": period})
    group = keys.groupby(["o", "p"], sort=False).ngroup().to_numpy()
    n_groups = int(group.max()) + 1
    first_rows = pd.Series(np.arange(len(owner))).groupby(group).first().to_numpy()
    outs = [m[first_rows].copy() for m in mats]
    for k in range(reached.shape[1]):
        r = reached[:, k]
        masked = np.where(r == NONE, np.iinfo(np.int64).max, r)
        order = np.lexsort((masked, group))
        first = np.full(n_groups, -1, dtype=np.int64)
        seen_group = group[order]
        starts = np.r_[True, seen_group[1:] != seen_group[:-1]]
        first[seen_group[starts]] = order[starts]
        for out, m in zip(outs, mats, strict=True):
            out[:, k] = m[first, k]
    return (owner[first_rows], period[first_rows], *outs)


def default_threads() -> int:
    """Kernel threads: one per core."""
    return os.cpu_count() or 1
