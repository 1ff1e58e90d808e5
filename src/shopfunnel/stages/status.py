"""Statuses a store can act on: active, stalled, lapsed, gone, from the store's own returns.

A status says whether a person is worth a message: left alone they are likely to come back
(**active**), a reminder may bring them back (**stalled** prospects, **lapsed** customers),
or almost nobody who stayed away this long ever came back (**gone**). The thresholds come
from how the store's own visitors come back across visits, never from time within a visit.

**Visits and returns.** A person's events in the period, in time order, form *visits*: a new
visit starts at an event that comes more than ``visit_gap`` (30 minutes, GA4's session
timeout) after the person's previous event in the period. The *return gap* of a visit is the
time from the person's previous event to the visit's first event. The first event in the
period starts no return (what came before is unknown).

**Returning movers.** A person moved on from stage *k* at ``A``, their first evidence of any
later stage, when their first evidence of *k*, ``E``, came strictly before ``A`` (the stage
model's *movers*). They *came back to move on* when the visit holding ``A`` started strictly
after ``E``: they were at stage *k* when they left, and that visit's return gap is their
return gap at *k*. A mover who entered *k* and moved on within one visit has no return gap.

**Thresholds at stage k** (in days): ``stalled_after`` is the ``stalled_quantile`` (0.8) and
``gone_after`` the ``gone_quantile`` (0.95) of the return gaps at *k*: 80% of those who came
back to move on had done so by ``stalled_after``, and 95% by ``gone_after``. Fallbacks, in
order, when a stage has fewer than ``min_returns`` (20) return gaps: the same quantiles of
the return gaps of every stage pooled (how long visitors stay away and still come back is a
habit of the store's visitors more than of a stage), then the fixed ``stalled_after`` (7
days) and ``gone_after`` (28 days) of the model file, GA4's 7-day and 28-day active-user
windows. The last stage has no next stage to move on to, so it always takes the pooled
figures (or the fixed ones). ``min_stalled_after``, when set, is a floor under
``stalled_after``; ``gone_after`` is never below ``stalled_after``.

**Status**, for a person placed at ``as_of``:

* a *customer* (an order in the period) is judged by the days since their last order
  against their gaps between orders (:mod:`shopfunnel.stages.gaps`): **gone** past the gap at
  ``gone_quantile``, else **lapsed** past the usual gap (``lapsed_quantile``), else
  **active**;
* anyone else (a *prospect*) by the days since their last event in the period against their
  stage's thresholds: **gone** past ``gone_after``, else **stalled** past ``stalled_after``,
  else **active**.

Comparisons are strict (exactly the threshold is not yet past it); quantiles interpolate
linearly (NumPy's default). The return gaps are those of movers who came back within the
period, so a gap longer than the data is never seen: on a short history the thresholds lean
short and statuses lean towards gone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from shopfunnel import format as fmt
from shopfunnel.jit import njit
from shopfunnel.model import Placement
from shopfunnel.stages.quantiles import quantiles

ACTIVE, STALLED, LAPSED, GONE = "active", "stalled", "lapsed", "gone"
STATUSES = (ACTIVE, STALLED, LAPSED, GONE)
"""Every status, in the order tables show them."""

NEVER = np.iinfo(np.int64).max
"""The "no evidence" time in a first-evidence matrix (microseconds)."""

_US_PER_DAY = 86_400 * 1_000_000
THRESHOLD_COLUMNS = [
    "stage",
    "movers",
    "returning",
    "stalled_after_days",
    "gone_after_days",
    "source",
]


def later_evidence(first: np.ndarray) -> np.ndarray:
    """Persons × stages: the first evidence of any stage after k (``NEVER`` when none)."""
    later = np.full_like(first, NEVER)
    for k in range(first.shape[1] - 2, -1, -1):
        later[:, k] = np.minimum(later[:, k + 1], first[:, k + 1])
    return later


def furthest_stages(first: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """From a first-evidence matrix (persons × stages, µs, ``NEVER`` when none), in one
    pass: each person's stage (the last stage with evidence; 0 when none), the time they
    entered it, :func:`later_evidence`, and the movers of each stage (first evidence of
    the stage strictly before the first evidence of a later one)."""
    return _furthest_stages(np.ascontiguousarray(first))


@njit(cache=True, nogil=True)
def _furthest_stages(first):  # pragma: no cover - compiled
    n, n_stages = first.shape
    stage = np.zeros(n, dtype=np.int64)
    entered = np.empty(n, dtype=np.int64)
    later = np.empty((n, n_stages), dtype=np.int64)
    movers = np.zeros(n_stages, dtype=np.int64)
    for p in range(n):
        nxt = NEVER
        found = -1
        for k in range(n_stages - 1, -1, -1):
            later[p, k] = nxt
            f = first[p, k]
            if f < NEVER and found < 0:
                found = k
            if f < nxt and nxt < NEVER:
                movers[k] += 1
            if f < nxt:
                nxt = f
        stage[p] = found if found >= 0 else 0
        entered[p] = first[p, stage[p]]
    return stage, entered, later, movers


def return_gaps(
    first: np.ndarray,
    visit_rows: np.ndarray,
    visit_starts: np.ndarray,
    visit_gaps: np.ndarray,
    *,
    later: np.ndarray | None = None,
) -> np.ndarray:
    """Persons × stages matrix of return gaps in days (NaN where the person did not come
    back to move on from that stage); see the module docstring.

    ``first`` holds first-evidence times (µs, ``NEVER`` when none); ``visit_rows``,
    ``visit_starts`` and ``visit_gaps`` describe every visit that starts with a return: the
    person's row in ``first``, the visit's first event (µs) and its return gap (µs).
    Visits already sorted by row and time are taken as they are (else they are sorted).
    ``later`` is :func:`later_evidence` of ``first`` when the caller has it.
    """
    later = later_evidence(first) if later is None else later
    lo, hi, starts, gaps = _visit_spans(first.shape[0], visit_rows, visit_starts, visit_gaps)
    return _return_gaps(
        np.ascontiguousarray(first), np.ascontiguousarray(later), lo, hi, starts, gaps
    )


def _visit_spans(
    n: int, visit_rows: np.ndarray, visit_starts: np.ndarray, visit_gaps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The visits sorted by row and time (taken as they are when they already are), as
    each person's span ``lo[p]:hi[p]`` and the visits' starts and gaps."""
    rows = np.asarray(visit_rows, dtype=np.int64)
    starts = np.asarray(visit_starts, dtype=np.int64)
    gaps = np.asarray(visit_gaps, dtype=float)
    if not _sorted_by_row_and_time(rows, starts):
        order = np.lexsort((starts, rows))  # stable: equal visits keep their order
        rows, starts, gaps = rows[order], starts[order], gaps[order]
    counts = np.bincount(rows, minlength=n)[:n] if len(rows) else np.zeros(n, np.int64)
    hi = np.cumsum(counts).astype(np.int64)
    return (hi - counts).astype(np.int64), hi, starts, gaps


def movements(
    first: np.ndarray,
    visit_rows: np.ndarray,
    visit_starts: np.ndarray,
    visit_gaps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """:func:`furthest_stages` and :func:`return_gaps` in one pass, without their two
    persons × stages matrices (later evidence, gaps): each person's stage, the time they
    entered it, the movers of each stage, and each stage's return gaps in days (the
    non-empty cells of :func:`return_gaps`' column k, in row order). At 10 million persons
    the matrices would hold 800 MB; what this keeps is one entry per return gap."""
    lo, hi, starts, gaps = _visit_spans(first.shape[0], visit_rows, visit_starts, visit_gaps)
    stage, entered, movers, gap_stage, gap_days = _movements(
        np.ascontiguousarray(first), lo, hi, starts, gaps
    )
    per_stage = [gap_days[gap_stage == k] for k in range(first.shape[1])]
    return stage, entered, movers, per_stage


@njit(cache=True, nogil=True)
def _movements(first, lo, hi, starts, gaps):  # pragma: no cover - compiled
    """:func:`_furthest_stages` and :func:`_return_gaps` per person, the later evidence
    kept for one person at a time; the gaps as (stage, days) pairs, counted in a first
    pass and written in a second."""
    n, n_stages = first.shape
    stage = np.zeros(n, dtype=np.int64)
    entered = np.empty(n, dtype=np.int64)
    movers = np.zeros(n_stages, dtype=np.int64)
    later = np.empty(n_stages, dtype=np.int64)
    gap_stage = np.empty(0, dtype=np.int64)
    gap_days = np.empty(0, dtype=np.float64)
    count = 0
    for fill in range(2):
        if fill == 1:
            gap_stage = np.empty(count, dtype=np.int64)
            gap_days = np.empty(count, dtype=np.float64)
            count = 0
        for p in range(n):
            nxt = NEVER
            found = -1
            for k in range(n_stages - 1, -1, -1):
                later[k] = nxt
                f = first[p, k]
                if f < NEVER and found < 0:
                    found = k
                if fill == 0 and f < nxt and nxt < NEVER:
                    movers[k] += 1
                if f < nxt:
                    nxt = f
            if fill == 0:
                stage[p] = found if found >= 0 else 0
                entered[p] = first[p, stage[p]]
            a0, b0 = lo[p], hi[p]
            if a0 == b0:
                continue
            for k in range(n_stages - 1):
                f = first[p, k]
                moved_at = later[k]
                if not (f < moved_at and moved_at < NEVER):
                    continue
                v = _return_visit(starts, a0, b0, f, moved_at)
                if v >= 0:
                    if fill == 1:
                        gap_stage[count] = k
                        gap_days[count] = gaps[v] / _US_PER_DAY
                    count += 1
    return stage, entered, movers, gap_stage, gap_days


def _sorted_by_row_and_time(rows: np.ndarray, times: np.ndarray) -> bool:
    if len(rows) < 2:
        return True
    d_row = np.diff(rows)
    return bool(((d_row > 0) | ((d_row == 0) & (np.diff(times) >= 0))).all())


@njit(cache=True, nogil=True)
def _return_gaps(first, later, lo, hi, starts, gaps):  # pragma: no cover - compiled
    """:func:`return_gaps` over visits sorted by (row, time); a person's visits are
    ``lo[p]:hi[p]``. The visit holding the move is the last one starting at or before it."""
    n, n_stages = first.shape
    out = np.full((n, n_stages), np.nan)
    for p in range(n):
        a0, b0 = lo[p], hi[p]
        if a0 == b0:
            continue
        for k in range(n_stages - 1):
            f = first[p, k]
            moved_at = later[p, k]
            if not (f < moved_at and moved_at < NEVER):
                continue
            v = _return_visit(starts, a0, b0, f, moved_at)
            if v >= 0:
                out[p, k] = gaps[v] / _US_PER_DAY
    return out


@njit(cache=True, nogil=True)
def _return_visit(starts, a0, b0, entered_at, moved_at):  # pragma: no cover - compiled
    """The visit (among ``starts[a0:b0]``, sorted) that holds a move at ``moved_at``: the
    last one starting at or before it, when it started after ``entered_at``; else -1."""
    a, b = a0, b0
    while a < b:  # first visit starting after the move
        mid = (a + b) // 2
        if starts[mid] <= moved_at:
            a = mid + 1
        else:
            b = mid
    return a - 1 if a > a0 and starts[a - 1] > entered_at else -1


@njit(cache=True, nogil=True)
def _last_at_or_before(times, lo, hi, q_times):  # pragma: no cover - compiled
    """Per query, the last position in ``times[lo:hi]`` (sorted) at or before the query
    time, or -1."""
    out = np.full(len(q_times), -1, dtype=np.int64)
    for i in range(len(q_times)):
        a, b = lo[i], hi[i]
        while a < b:  # first position after the query time
            mid = (a + b) // 2
            if times[mid] <= q_times[i]:
                a = mid + 1
            else:
                b = mid
        if a > lo[i]:
            out[i] = a - 1
    return out


def last_at_or_before(
    rows: np.ndarray, times: np.ndarray, query_rows: np.ndarray, query_times: np.ndarray
) -> np.ndarray:
    """For each query, the index of the latest ``(rows, times)`` entry of the same row at or
    before the query time (of equal entries, the last given), or -1. Entries need not be
    sorted."""
    rows = np.asarray(rows, dtype=np.int64)
    times = np.asarray(times, dtype=np.int64)
    q_rows = np.asarray(query_rows, dtype=np.int64)
    q_times = np.asarray(query_times, dtype=np.int64)
    order = np.lexsort((times, rows))  # by row, then time; a stable sort
    s_rows, s_times = rows[order], times[order]
    lo = np.searchsorted(s_rows, q_rows, side="left")
    hi = np.searchsorted(s_rows, q_rows, side="right")
    at = _last_at_or_before(s_times, lo, hi, q_times)
    return np.where(at >= 0, order[np.maximum(at, 0)], -1) if len(at) else at


def stage_thresholds(
    stage_names: list[str],
    movers: np.ndarray,
    gaps: np.ndarray | list[Any],
    rules: Placement,
    *,
    pooled: Any = None,
) -> pd.DataFrame:
    """Per stage: ``movers``, ``returning`` (movers with a return gap), ``stalled_after_days``,
    ``gone_after_days`` and ``source`` (which data or default gave them).

    ``gaps`` is the matrix of :func:`return_gaps` or each stage's gaps (:func:`movements`),
    as arrays or as samples that give their own quantiles (:mod:`shopfunnel.stages.quantiles`;
    then ``pooled``, every stage's gaps together, is given too); ``movers`` the number of
    persons who passed through each stage.
    """
    n_stages = len(stage_names)
    per_stage = (
        gaps
        if isinstance(gaps, list)
        else [gaps[:, k][~np.isnan(gaps[:, k])] for k in range(n_stages)]
    )
    if pooled is None:
        pooled = np.concatenate(per_stage) if per_stage else np.zeros(0)
    q = [rules.stalled_quantile, rules.gone_quantile]
    need = rules.min_returns
    floor = rules.min_stalled_after_seconds / 86_400
    pct = f"{percentile_name(q[0])} and {percentile_name(q[1])} percentiles"
    rows = []
    for k, name in enumerate(stage_names):
        own = per_stage[k]
        last = k == n_stages - 1
        if not last and len(own) >= need:
            stalled, gone = (float(v) for v in quantiles(own, q))
            source = f"data: {pct} of {len(own):,} return gaps"
        else:
            why = "last stage" if last else f"{len(own)} return gaps here, fewer than {need}"
            if len(pooled) >= need:
                stalled, gone = (float(v) for v in quantiles(pooled, q))
                source = f"pooled ({why}): {pct} of {len(pooled):,} return gaps at every stage"
            else:
                stalled = rules.stalled_after_seconds / 86_400
                gone = rules.gone_after_seconds / 86_400
                source = (
                    f"default stalled_after and gone_after ({why}; {len(pooled):,} in the "
                    f"store, fewer than {need})"
                )
        if stalled < floor:
            stalled = floor
            source += f"; stalled raised to min_stalled_after ({rules.min_stalled_after})"
        gone = max(gone, stalled)
        rows.append((name, int(movers[k]), int(len(own)), stalled, gone, source))
    return pd.DataFrame(rows, columns=THRESHOLD_COLUMNS)


def classify(
    customer: np.ndarray,
    days_since_last_event: np.ndarray,
    stalled_after: np.ndarray,
    gone_after: np.ndarray,
    days_since_last_order: np.ndarray,
    lapsed_after: np.ndarray,
    customer_gone_after: np.ndarray,
) -> np.ndarray:
    """The status of each person (an object array of :data:`STATUSES`); see the module
    docstring. Every argument is one value per person; the customer arguments are ignored
    for prospects and the prospect ones for customers."""
    codes = classify_codes(
        customer,
        days_since_last_event,
        stalled_after,
        gone_after,
        days_since_last_order,
        lapsed_after,
        customer_gone_after,
    )
    return np.array(STATUSES, dtype=object)[codes]


def classify_codes(
    customer: np.ndarray,
    days_since_last_event: np.ndarray,
    stalled_after: np.ndarray | float,
    gone_after: np.ndarray | float,
    days_since_last_order: np.ndarray | float,
    lapsed_after: np.ndarray | float,
    customer_gone_after: np.ndarray | float,
) -> np.ndarray:
    """:func:`classify` as positions in :data:`STATUSES` (int8); a threshold may be one
    number for everyone (NaN: the rule does not apply)."""
    customer = np.asarray(customer, dtype=bool)
    with np.errstate(invalid="ignore"):
        c_gone = days_since_last_order > customer_gone_after
        c_lapsed = days_since_last_order > lapsed_after
        p_gone = days_since_last_event > gone_after
        p_stalled = days_since_last_event > stalled_after
    code = {name: np.int8(i) for i, name in enumerate(STATUSES)}
    return np.select(
        [customer & c_gone, customer & c_lapsed, ~customer & p_gone, ~customer & p_stalled],
        [code[GONE], code[LAPSED], code[GONE], code[STALLED]],
        code[ACTIVE],
    ).astype(np.int8)


def explain(
    thresholds: pd.DataFrame,
    rules: Placement,
    lapsed_after_days: float,
    customer_gone_after_days: float,
    lapsed_source: str,
) -> list[str]:
    """The status rules in words, with the store's numbers: one line for prospects, one for
    customers, and one for each stage whose thresholds did not come from its own returns."""
    lines = [
        f"Prospects (no order): stalled = not seen for longer than the "
        f"{percentile_name(rules.stalled_quantile)} percentile of the time those who came back "
        f"to move on from the stage had stayed away (stalled after); gone = past the "
        f"{percentile_name(rules.gone_quantile)} (gone after): almost nobody comes back later.",
        f"Customers: lapsed = longer since the last order than the usual gap "
        f"({_days(lapsed_after_days)}), gone = longer than "
        f"{_days(customer_gone_after_days)} ({lapsed_source}; own gaps for customers "
        f"with {rules.own_gap_min_orders}+ orders).",
    ]
    for row in thresholds.itertuples(index=False):
        if not str(row.source).startswith("data:"):
            lines.append(f"{row.stage}: {row.source}")
    return lines


def percentile_name(q: float) -> str:
    """A quantile as an ordinal percentile: 0.8 → "80th", 0.95 → "95th", 0.333 → "33.3th"."""
    v = round(q * 100, 2)
    s = f"{v:g}"
    if not math.isclose(v, round(v)):
        return s + "th"
    suffix = "th" if 10 <= v % 100 < 20 else {1: "st", 2: "nd", 3: "rd"}.get(int(v) % 10, "th")
    return s + suffix


def _days(days: float) -> str:
    """A duration given in days, as people read it (``9d 14h``, ``3h 20m``)."""
    return fmt.duration(days * 86_400)
