"""What the funnel pass's outputs are read into, compiled (numba): the seconds from one
step to another per step, units per breakdown group and step, and the breakdown code at the
furthest step a unit reached. :mod:`shopfunnel.funnel.result` calls these; the arrays are
those :mod:`shopfunnel.funnel.kernel` fills (:data:`~shopfunnel.funnel.scans.NONE` marks a
step not reached).
"""

from __future__ import annotations

import numpy as np

from shopfunnel.funnel.kernel import NONE
from shopfunnel.jit import njit


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
