"""The compiled per-unit pass behind every funnel (numba over NumPy arrays).

Input: rows sorted by (unit, time, code), as flat arrays:

* ``unit_starts``: row index where each unit (a person, a session, or a person × held
  value) begins, plus the end;
* ``ts``: int64 microseconds;
* ``code``: int8: ``1..n`` = the step the row matches, ``n + 1`` = any other event
  (strict mode only), ``-j`` = exclusion ``j`` (1-based). An event that matches several
  steps arrives as several rows at the same instant, in step order;
* ``attr``: int32 code of the breakdown value on the row (``-1`` = none);
* ``period``: int64 start of the row's trend period (only with a trend).

Output, per *segment* (a unit, or a unit × trend period of the attempt's start) and
step ``k``: when the step was first reached (``reached``), the time of the previous step
in that attempt (``prev``), the attempt's anchor (``anchor``), the breakdown code on the
step's event (``sattr``) and on the anchor (``aattr``; either may have no rows, when the
funnel has no breakdown or its attribution does not read it). ``NONE`` marks "not reached".
``totals[chunk, k]`` counts every step-k event that took part in a valid attempt.

The semantics are documented in :mod:`shopfunnel.funnel.api` and ``docs/funnels.md``; this
module only implements them. Units are split into chunks that run on a thread pool
(the kernels release the GIL; plain ``nogil`` functions compile several times faster
than ``parallel=True`` ones).
"""

from __future__ import annotations

import numpy as np

from shopfunnel.jit import njit

NONE = np.iinfo(np.int64).min
NO_STOP = np.iinfo(np.int64).max
ORDERED, STRICT, ANY = 0, 1, 2


@njit(cache=True, nogil=True)
def _is_anchor(s, n, mode, open_entry):  # pragma: no cover - compiled
    if s < 1 or s > n:
        return False
    return s == 1 or mode == ANY or open_entry


@njit(cache=True, nogil=True)
def _record(seg, k, t, prev_t, anchor_t, sa, aa, reached, prev, anchor, sattr, aattr):
    if reached[seg, k] == NONE:
        reached[seg, k] = t
        prev[seg, k] = prev_t
        anchor[seg, k] = anchor_t
        if sattr.shape[0]:  # no rows: not needed (no breakdown, or another attribution)
            sattr[seg, k] = sa
        if aattr.shape[0]:
            aattr[seg, k] = aa


@njit(cache=True, nogil=True)
def _scan_ordered(
    ts,
    code,
    attr,
    period,
    a,
    b,
    p,
    t_stop,
    n,
    window,
    optional,
    open_entry,
    excl_from,
    excl_to,
    has_period,
    ch_valid,
    ch_anchor,
    ch_last,
    ch_aattr,
    seg,
    reached,
    prev,
    anchor,
    sattr,
    aattr,
    totals,
    c,
):
    for k in range(n):
        ch_valid[k] = False
    for i in range(a, b):
        t = ts[i]
        if t > t_stop:
            break
        s = code[i]
        if s < 0:
            j = -s - 1
            for k in range(excl_from[j], excl_to[j]):
                ch_valid[k] = False
            continue
        if s > n:
            continue
        k = s - 1
        can_anchor = (not has_period) or period[i] == p
        best = -1
        j = k - 1
        while j >= 0:
            if (
                ch_valid[j]
                and t - ch_anchor[j] <= window
                and (best < 0 or ch_anchor[j] > ch_anchor[best])
            ):
                best = j
            if not optional[j]:
                break
            j -= 1
        fresh = can_anchor and (k == 0 or open_entry)
        if best < 0 and not fresh:
            continue
        if best >= 0:
            _record(
                seg,
                k,
                t,
                ch_last[best],
                ch_anchor[best],
                attr[i],
                ch_aattr[best],
                reached,
                prev,
                anchor,
                sattr,
                aattr,
            )
        else:
            _record(seg, k, t, NONE, t, attr[i], attr[i], reached, prev, anchor, sattr, aattr)
        if fresh:
            new_anchor = t
            new_aattr = attr[i]
        else:
            new_anchor = ch_anchor[best]
            new_aattr = ch_aattr[best]
        if (not ch_valid[k]) or new_anchor >= ch_anchor[k]:
            ch_valid[k] = True
            ch_anchor[k] = new_anchor
            ch_aattr[k] = new_aattr
            ch_last[k] = t
        totals[c, k] += 1


@njit(cache=True, nogil=True)
def _scan_strict(
    ts,
    code,
    attr,
    period,
    a,
    b,
    p,
    t_stop,
    n,
    window,
    optional,
    open_entry,
    has_period,
    seg,
    reached,
    prev,
    anchor,
    sattr,
    aattr,
    totals,
    c,
):
    level = 0
    ch_anchor = NONE
    ch_last = NONE
    ch_aattr = -1
    for i in range(a, b):
        t = ts[i]
        if t > t_stop:
            break
        s = code[i]
        if s < 1 or s > n:
            level = 0
            continue
        k = s - 1
        can_anchor = (not has_period) or period[i] == p
        fresh = can_anchor and (k == 0 or open_entry)
        if level > 0 and s == level and not (fresh and k == 0):
            totals[c, k] += 1  # a reload of the step just reached keeps the attempt
            continue
        ext = False
        if level > 0 and s > level and t - ch_anchor <= window:
            ext = True
            for j in range(level, s - 1):
                if not optional[j]:
                    ext = False
        if not ext and not fresh:
            level = 0
            continue
        if ext:
            _record(
                seg,
                k,
                t,
                ch_last,
                ch_anchor,
                attr[i],
                ch_aattr,
                reached,
                prev,
                anchor,
                sattr,
                aattr,
            )
        else:
            _record(seg, k, t, NONE, t, attr[i], attr[i], reached, prev, anchor, sattr, aattr)
        if fresh:
            ch_anchor = t
            ch_aattr = attr[i]
        level = s
        ch_last = t
        totals[c, k] += 1


@njit(cache=True, nogil=True)
def _scan_any(
    ts,
    code,
    attr,
    period,
    a,
    b,
    p,
    t_stop,
    n,
    window,
    has_period,
    cnt,
    seen,
    seg,
    reached,
    prev,
    anchor,
    sattr,
    aattr,
    totals,
    c,
):
    for k in range(n):
        cnt[k] = 0
    best_d = 0
    best_i = -1
    d = 0
    j = a
    for i in range(a, b):
        if ts[i] > t_stop:
            break
        while j < b and ts[j] - ts[i] <= window:
            s = code[j] - 1
            if 0 <= s < n:
                if cnt[s] == 0:
                    d += 1
                cnt[s] += 1
            j += 1
        s = code[i] - 1
        if 0 <= s < n and ((not has_period) or period[i] == p):
            if d > best_d:
                best_d = d
                best_i = i
            for k in range(d):
                totals[c, k] += 1
        if 0 <= s < n:
            cnt[s] -= 1
            if cnt[s] == 0:
                d -= 1
    if best_i < 0:
        return
    for k in range(n):
        seen[k] = False
    m = 0
    t0 = ts[best_i]
    for jj in range(best_i, b):
        if ts[jj] - t0 > window or m >= n:
            break
        s = code[jj] - 1
        if 0 <= s < n and not seen[s]:
            seen[s] = True
            prev_t = reached[seg, m - 1] if m > 0 else NONE
            _record(
                seg,
                m,
                ts[jj],
                prev_t,
                t0,
                attr[jj],
                attr[best_i],
                reached,
                prev,
                anchor,
                sattr,
                aattr,
            )
            m += 1


@njit(cache=True, nogil=True)
def _period_blocks(code, period, ts, a, b, n, mode, open_entry, window, out_i0, out_stop, out_p):
    """Per distinct period of the unit's anchor rows: first anchor row, scan stop, period."""
    m = 0
    for i in range(a, b):
        if _is_anchor(code[i], n, mode, open_entry):
            if m == 0 or period[i] != out_p[m - 1]:
                out_i0[m] = i
                out_p[m] = period[i]
                m += 1
            out_stop[m - 1] = ts[i] + window
    return m


@njit(cache=True, nogil=True)
def count_segments(unit_starts, code, period, n, mode, open_entry):
    """Number of segments per unit: 1 without a trend, else distinct anchor periods."""
    n_units = len(unit_starts) - 1
    out = np.zeros(n_units, dtype=np.int64)
    for u in range(n_units):
        m = 0
        last = NONE
        for i in range(unit_starts[u], unit_starts[u + 1]):
            if _is_anchor(code[i], n, mode, open_entry) and (m == 0 or period[i] != last):
                m += 1
                last = period[i]
        out[u] = m
    return out


@njit(cache=True, nogil=True)
def run_units(
    unit_starts,
    seg_offsets,
    ts,
    code,
    attr,
    period,
    n,
    window,
    mode,
    optional,
    open_entry,
    excl_from,
    excl_to,
    has_period,
    u0,
    u1,
    c,
    seg_unit,
    seg_period,
    reached,
    prev,
    anchor,
    sattr,
    aattr,
    totals,
):
    """Run the pass for units ``u0..u1`` (chunk ``c``); it releases the GIL, so the
    caller runs chunks on several threads."""
    if u1 > u0:
        ch_valid = np.zeros(n, dtype=np.bool_)
        ch_anchor = np.zeros(n, dtype=np.int64)
        ch_last = np.zeros(n, dtype=np.int64)
        ch_aattr = np.zeros(n, dtype=np.int32)
        cnt = np.zeros(n, dtype=np.int64)
        seen = np.zeros(n, dtype=np.bool_)
        max_len = 1
        if has_period:
            for u in range(u0, u1):
                max_len = max(max_len, unit_starts[u + 1] - unit_starts[u])
        blk_i0 = np.zeros(max_len, dtype=np.int64)
        blk_stop = np.zeros(max_len, dtype=np.int64)
        blk_p = np.zeros(max_len, dtype=np.int64)
        for u in range(u0, u1):
            a = unit_starts[u]
            b = unit_starts[u + 1]
            if has_period:
                m = _period_blocks(
                    code, period, ts, a, b, n, mode, open_entry, window, blk_i0, blk_stop, blk_p
                )
            else:
                m = 1
                blk_i0[0] = a
                blk_stop[0] = NO_STOP
                blk_p[0] = 0
            for q in range(m):
                seg = seg_offsets[u] + q
                seg_unit[seg] = u
                seg_period[seg] = blk_p[q]
                for k in range(n):  # outputs arrive uninitialised: first touch here, in threads
                    reached[seg, k] = NONE
                    prev[seg, k] = NONE
                    anchor[seg, k] = NONE
                    if sattr.shape[0]:
                        sattr[seg, k] = -1
                    if aattr.shape[0]:
                        aattr[seg, k] = -1
                if mode == ORDERED:
                    _scan_ordered(
                        ts,
                        code,
                        attr,
                        period,
                        blk_i0[q],
                        b,
                        blk_p[q],
                        blk_stop[q],
                        n,
                        window,
                        optional,
                        open_entry,
                        excl_from,
                        excl_to,
                        has_period,
                        ch_valid,
                        ch_anchor,
                        ch_last,
                        ch_aattr,
                        seg,
                        reached,
                        prev,
                        anchor,
                        sattr,
                        aattr,
                        totals,
                        c,
                    )
                elif mode == STRICT:
                    _scan_strict(
                        ts,
                        code,
                        attr,
                        period,
                        blk_i0[q],
                        b,
                        blk_p[q],
                        blk_stop[q],
                        n,
                        window,
                        optional,
                        open_entry,
                        has_period,
                        seg,
                        reached,
                        prev,
                        anchor,
                        sattr,
                        aattr,
                        totals,
                        c,
                    )
                else:
                    _scan_any(
                        ts,
                        code,
                        attr,
                        period,
                        blk_i0[q],
                        b,
                        blk_p[q],
                        blk_stop[q],
                        n,
                        window,
                        has_period,
                        cnt,
                        seen,
                        seg,
                        reached,
                        prev,
                        anchor,
                        sattr,
                        aattr,
                        totals,
                        c,
                    )


@njit(cache=True)
def boundaries(keys):
    """Row indices where ``keys`` changes, with 0 and ``len(keys)``."""
    n = len(keys)
    count = 1
    for i in range(1, n):
        if keys[i] != keys[i - 1]:
            count += 1
    out = np.empty(count + 1 if n else 1, dtype=np.int64)
    out[0] = 0
    j = 1
    for i in range(1, n):
        if keys[i] != keys[i - 1]:
            out[j] = i
            j += 1
    if n:
        out[j] = n
    return out


@njit(cache=True)
def boundaries2(k1, k2):
    """Row indices where the pair (``k1``, ``k2``) changes, with 0 and the length."""
    n = len(k1)
    flags = np.zeros(n, dtype=np.bool_)
    count = 1
    for i in range(1, n):
        if k1[i] != k1[i - 1] or k2[i] != k2[i - 1]:
            flags[i] = True
            count += 1
    out = np.empty(count + 1 if n else 1, dtype=np.int64)
    out[0] = 0
    j = 1
    for i in range(1, n):
        if flags[i]:
            out[j] = i
            j += 1
    if n:
        out[j] = n
    return out


@njit(cache=True)
def durations_by_step(reached, start):
    """Seconds from ``start`` to ``reached`` per step (column), for the units where both
    are set: one flat float64 array and the offsets of each step's slice (one pass over
    the rows, instead of a strided pass per column)."""
    n_units, n = reached.shape
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n_units):
        for k in range(n):
            if reached[i, k] != NONE and start[i, k] != NONE:
                counts[k] += 1
    offsets = np.zeros(n + 1, dtype=np.int64)
    for k in range(n):
        offsets[k + 1] = offsets[k] + counts[k]
    out = np.empty(offsets[n], dtype=np.float64)
    pos = offsets[:n].copy()
    for i in range(n_units):
        for k in range(n):
            if reached[i, k] != NONE and start[i, k] != NONE:
                out[pos[k]] = (reached[i, k] - start[i, k]) / 1e6
                pos[k] += 1
    return out, offsets


@njit(cache=True)
def group_counts(reached, codes, lut, n_groups):
    """Units reaching each step, per breakdown group: ``codes`` holds per unit one code
    (one column: the same for every step) or one per step; a negative code is the last
    entry of ``lut`` ("none"); ``lut`` maps a code to its group. Returns (groups × steps)."""
    n_units, n = reached.shape
    per_step = codes.shape[1] > 1
    none = len(lut) - 1
    out = np.zeros((n_groups, n), dtype=np.int64)
    for i in range(n_units):
        for k in range(n):
            if reached[i, k] != NONE:
                code = codes[i, k] if per_step else codes[i, 0]
                out[lut[none if code < 0 else code], k] += 1
    return out


@njit(cache=True)
def furthest_codes(reached, codes):
    """Per unit, ``codes`` at the furthest step it reached (at step 1 if none): the
    breakdown code of first- and last-touch attribution, as one column."""
    n_units, n = reached.shape
    out = np.empty((n_units, 1), dtype=np.int32)
    for i in range(n_units):
        last = 0
        for k in range(n - 1, -1, -1):
            if reached[i, k] != NONE:
                last = k
                break
        out[i, 0] = codes[i, last]
    return out
