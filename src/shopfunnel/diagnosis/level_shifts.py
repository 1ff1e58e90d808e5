"""Lasting incidents: a step's conversion that changes and stays changed for days to months.

The run scan of :mod:`shopfunnel.diagnosis.incidents` compares runs of up to two weeks
with the fortnight around them, so anything longer is its own baseline, and at a few
sessions a day one day carries almost no signal. This module looks at whole series
(ADR 0067, ADR 0064):

1. **Series.** For each step k and segment (all traffic; each of the largest devices,
   channels, countries and any session property the store names), per UTC day: sessions
   entering the step (reached step k−1) and sessions reaching it.
2. **Noise.** The series' over-dispersion φ ≥ 1: how much more its days scatter around
   the rate of the fortnight around them than binomial counts would (weekday habits, a
   changing traffic mix, campaigns). 1 for a series of a few sessions a day.
3. **Segmentation.** Optimal partitioning of the days into runs of constant conversion
   on the exact binomial likelihood divided by φ (quasi-likelihood): the cost of a run is
   −2 × its log-likelihood at its own rate / φ, and each change costs
   ``penalty_per_log_day`` × ln(days). Runs are at least ``min_days`` long. Exact dynamic
   programming, O(days²) per series (:func:`segment`).
4. **Incidents.** The normal level is the pooled rate of the run holding most entering
   sessions and every run within ``min_relative_change`` of it. Every other run is a
   candidate: its two-sample binomial z against the normal level (divided by √φ) must
   pass a Bonferroni threshold over all series × steps × start days (``alpha``), it must
   change the rate by at least ``min_relative_change`` and move at least ``min_lost``
   conversions. A run that reaches the last day is **ongoing**.
5. **To the hour.** When an hour around a boundary tells the two rates apart well enough
   (:func:`hourly_information`), the start and end are moved to the hour where the
   likelihood of "normal before, changed after" is highest (:func:`refine_boundary`).
6. **One report per incident.** A candidate is dropped when a stronger one covers the same
   step and overlapping days in a segment that contains it or is contained by it, or in
   another dimension when it does not hold without the stronger one's sessions.

The false-alarm rate at the defaults is measured by ``benchmarks/incident_false_alarms.py``
over many seeds and traffic levels (docs/diagnosis.md gives the figures and the command).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from shopfunnel.diagnosis.incident_table import SHIFT_COLUMNS, as_incidents
from shopfunnel.diagnosis.segmentation import (
    _loglik as _loglik,  # noqa: F401  (importable from here, as before the split)
)
from shopfunnel.diagnosis.segmentation import (
    hourly_information,
    refine_boundary,
    segment,
    segment_many,
    series_dispersion,
    two_sample_z,
)

__all__ = [
    "SEGMENT_DIMS",
    "SHIFT_COLUMNS",
    "LevelShiftSettings",
    "as_incidents",
    "find_level_shifts",
    "hourly_information",
    "refine_boundary",
    "segment",
    "segment_many",
    "series_dispersion",
    "shifts_from_counts",
    "shifts_in_series",
]

SEGMENT_DIMS = ("device", "channel", "country")


@dataclass(frozen=True)
class LevelShiftSettings:
    """Settings of the long-incident segmentation (docs/diagnosis.md)."""

    min_days: int = 3
    penalty_per_log_day: float = 3.0
    alpha: float = 0.01
    min_relative_change: float = 0.15
    min_lost: float = 5.0
    min_segment_share: float = 0.02
    top_values: int = 6
    dispersion_window: int = 1
    """Days either side of a day whose pooled rate the day's residual is measured against."""
    refine_hours: bool = True
    min_hourly_information: float = 1.0
    """Evidence an hour must carry to place a boundary to the hour: sessions entering per
    hour × the Kullback–Leibler divergence between the rates before and after (nats). At 1
    the hour is known to within about an hour; below, the boundary stays at midnight."""


def shifts_in_series(
    entering: np.ndarray, reached: np.ndarray, s: LevelShiftSettings, z_min: float
) -> list[dict]:
    """The runs of one daily series whose conversion differs from its normal level."""
    entering = np.asarray(entering, dtype=float)
    reached = np.asarray(reached, dtype=float)
    phi = series_dispersion(entering, reached, s.dispersion_window)
    penalty = s.penalty_per_log_day * math.log(max(len(entering), 2)) * phi
    runs = segment(entering, reached, penalty=penalty, min_days=s.min_days)
    return _changed_runs(entering, reached, runs, phi, s, z_min)


def _changed_runs(
    entering: np.ndarray,
    reached: np.ndarray,
    runs: list[tuple[int, int]],
    phi: float,
    s: LevelShiftSettings,
    z_min: float,
) -> list[dict]:
    if len(runs) < 2:
        return []
    ns = np.array([entering[a:b].sum() for a, b in runs], dtype=float)
    rs = np.array([reached[a:b].sum() for a, b in runs], dtype=float)
    rates = np.divide(rs, ns, out=np.full(len(runs), np.nan), where=ns > 0)
    main = int(np.argmax(ns))
    base_rate = rates[main]
    if not np.isfinite(base_rate) or base_rate <= 0:
        return []
    normal = np.isfinite(rates) & (np.abs(rates - base_rate) <= s.min_relative_change * base_rate)
    n0, r0 = ns[normal].sum(), rs[normal].sum()
    base = r0 / n0
    out = []
    for i, (a, b) in enumerate(runs):
        if normal[i] or ns[i] <= 0:
            continue
        z = two_sample_z(ns[i], rs[i], n0, r0) / math.sqrt(phi)
        lost = base * ns[i] - rs[i]
        if abs(z) < z_min or abs(lost) < s.min_lost:
            continue
        if abs(rates[i] - base) < s.min_relative_change * base:
            continue
        out.append(
            {
                "a": a,
                "b": b,
                "entering": ns[i],
                "observed": rs[i],
                "expected": base * ns[i],
                "rate": rates[i],
                "baseline_rate": base,
                "lost": lost,
                "z": z,
                "ongoing": b == len(entering),
                "dispersion": phi,
            }
        )
    return out


@dataclass
class _Series:
    seg: dict
    counts: np.ndarray  # days × (K + 1)


class _Cells:
    """Daily counts per cell (one row per combination of the segment dimensions and day),
    and the series of every segment scanned."""

    def __init__(self, cells: pd.DataFrame, first: date, n_days: int, K: int, dims: Sequence[str]):
        self.cells = cells
        self.n_days, self.K, self.dims = n_days, K, tuple(dims)
        self.day_index = (
            (pd.to_datetime(cells["period"]) - pd.Timestamp(first)).dt.days
        ).to_numpy()
        self.counts = cells[[f"n{k}" for k in range(K + 1)]].to_numpy(dtype=float)

    def dense(self, mask: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n_days, self.K + 1))
        np.add.at(out, self.day_index[mask], self.counts[mask])
        return out

    def mask_of(self, seg: dict) -> np.ndarray:
        m = np.ones(len(self.cells), dtype=bool)
        for d, v in seg.items():
            m &= (self.cells[d] == v).to_numpy()
        return m

    def series(self, s: LevelShiftSettings) -> list[_Series]:
        out = [_Series({}, self.dense(np.ones(len(self.cells), dtype=bool)))]
        all_sessions = float(self.cells["n0"].sum())
        for dim in self.dims:
            sizes = self.cells.groupby(dim)["n0"].sum().sort_values(ascending=False)
            for value in sizes.index[: s.top_values]:
                if (
                    value in ("(none)", "other")
                    or sizes[value] < s.min_segment_share * all_sessions
                ):
                    continue
                if sizes[value] >= all_sessions:  # one value holds everything: same as all traffic
                    continue
                out.append(_Series({dim: value}, self.dense(self.mask_of({dim: value}))))
        return out


def _without(
    seg: dict, others: list[dict], k: int, sh: dict, cells: _Cells
) -> tuple[float, float, float, float] | None:
    """Entering and reached during run ``sh`` of segment ``seg`` without the sessions of
    ``others``, the rate outside the run, and the z between them (divided by √φ); None
    when either side is empty."""
    mask = cells.mask_of(seg)
    for other in others:
        mask &= ~cells.mask_of(other)
    counts = cells.dense(mask)
    a, b = sh["a"], sh["b"]
    entering, reached = counts[:, k - 1], counts[:, k]
    n1, r1 = entering[a:b].sum(), reached[a:b].sum()
    n0, r0 = entering.sum() - n1, reached.sum() - r1
    if n1 <= 0 or n0 <= 0:
        return None
    return n1, r1, r0 / n0, two_sample_z(n1, r1, n0, r0) / math.sqrt(sh["dispersion"])


def _holds_without(
    seg: dict,
    stronger: list[dict],
    k: int,
    sh: dict,
    cells: _Cells,
    s: LevelShiftSettings,
    z_min: float,
) -> bool:
    got = _without(seg, stronger, k, sh, cells)
    if got is None:
        return False
    n1, r1, base, z = got
    return (
        abs(z) >= z_min
        and abs(base * n1 - r1) >= s.min_lost
        and abs(r1 / n1 - base) >= s.min_relative_change * base
    )


def _changed_without(seg: dict, narrower: dict, k: int, sh: dict, cells: _Cells) -> bool:
    """Whether the rest of ``seg`` (without ``narrower``'s sessions) changed the same way
    during the run, at a plain 5% two-sided level: if not, the run is the narrower
    segment's alone."""
    got = _without(seg, [narrower], k, sh, cells)
    if got is None:
        return False
    n1, r1, base, z = got
    return abs(z) >= 1.96 and (r1 / n1 - base) * sh["lost"] < 0


HourlyCounts = Callable[[dict, int, datetime, datetime], tuple[np.ndarray, np.ndarray]]


def shifts_from_counts(
    cells: pd.DataFrame,
    steps: Sequence[tuple[str, str]],
    first_day: date,
    last_day: date,
    settings: LevelShiftSettings | None = None,
    *,
    dims: Sequence[str] = SEGMENT_DIMS,
    hourly: HourlyCounts | None = None,
) -> pd.DataFrame:
    """Level shifts in daily counts; the core of :func:`find_level_shifts`.

    ``cells`` has the ``dims`` columns, ``period`` (the day) and ``n0 … nK`` (sessions,
    and sessions reaching each of the K ``steps``, given as (name, event) pairs).
    ``hourly(segment, k, start, end)``, when given, returns the hourly sessions entering and
    reaching step k in ``[start, end)`` for placing boundaries to the hour. Columns:
    :data:`SHIFT_COLUMNS`, strongest first.
    """
    from scipy import stats as sps

    s = settings or LevelShiftSettings()
    K = len(steps)
    if cells.empty or K == 0 or float(cells["n0"].sum()) == 0:
        return pd.DataFrame(columns=SHIFT_COLUMNS)
    first = pd.Timestamp(first_day)
    n_days = (pd.Timestamp(last_day) - first).days + 1
    data = _Cells(cells, first_day, n_days, K, dims)
    series = data.series(s)
    tests = max(len(series) * K * n_days, 1)
    z_min = float(sps.norm.isf(s.alpha / 2 / tests))
    pairs = [(ser, k) for ser in series for k in range(1, K + 1)]
    entering = np.array([ser.counts[:, k - 1] for ser, k in pairs])
    reached = np.array([ser.counts[:, k] for ser, k in pairs])
    phis = np.array(
        [
            series_dispersion(n, r, s.dispersion_window)
            for n, r in zip(entering, reached, strict=True)
        ]
    )
    penalties = s.penalty_per_log_day * math.log(max(n_days, 2)) * phis
    found = []
    for (ser, k), n, r, runs, phi in zip(
        pairs,
        entering,
        reached,
        segment_many(entering, reached, penalties, min_days=s.min_days),
        phis,
        strict=True,
    ):
        for shift in _changed_runs(n, r, runs, float(phi), s, z_min):
            found.append((ser.seg, k, shift))
    found.sort(key=lambda f: -abs(f[2]["z"]))
    kept: list[tuple[dict, int, dict]] = []
    for seg, k, sh in found:
        overlapping = [
            (seg2, sh2)
            for seg2, k2, sh2 in kept
            if k == k2 and sh["a"] < sh2["b"] and sh2["a"] < sh["b"]
        ]
        nested = [
            i
            for i, (seg2, k2, sh2) in enumerate(kept)
            if k == k2
            and sh["a"] < sh2["b"]
            and sh2["a"] < sh["b"]
            and (seg.items() <= seg2.items() or seg2.items() <= seg.items())
        ]
        if nested:
            # a narrower fall under a stronger broader one (mobile under all traffic, where
            # mobile is most of the traffic): the broader one is its shadow when it does not
            # hold without these sessions, and the narrower one is reported instead
            i = nested[0]
            seg2, _, sh2 = kept[i]
            if (
                len(nested) == 1
                and seg2.items() < seg.items()
                and not _changed_without(seg2, seg, k, sh2, data)
            ):
                kept[i] = (seg, k, sh)
            continue
        # a change in another dimension (country=DE while mobile fell) is kept only if it
        # holds without the sessions of the stronger one
        if overlapping and not _holds_without(
            seg, [s2 for s2, _ in overlapping], k, sh, data, s, z_min
        ):
            continue
        kept.append((seg, k, sh))
    rows = []
    midnight = datetime(first.year, first.month, first.day)
    for seg, k, sh in kept:
        name, event = steps[k - 1]
        start_time = midnight + timedelta(days=sh["a"])
        end_time = midnight + timedelta(days=sh["b"])
        if hourly is not None and s.refine_hours:
            day_bounds = (start_time, end_time)
            start_time, end_time = _to_the_hour(hourly, seg, k, sh, start_time, end_time, n_days, s)
            if (start_time, end_time) != day_bounds:
                sh = _counted_between(hourly, seg, k, sh, start_time, end_time)
        p = float(2 * sps.norm.sf(abs(sh["z"])))
        rows.append(
            {
                "kind": "conversion_drop" if sh["lost"] > 0 else "conversion_rise",
                "step": name,
                "event": event,
                "segment": ", ".join(f"{d}={v}" for d, v in seg.items()) or "all traffic",
                **{d: seg.get(d) for d in dims},
                "start": start_time.date(),
                "end": (end_time - timedelta(seconds=1)).date(),
                "start_time": start_time,
                "end_time": end_time,
                "ongoing": bool(sh["ongoing"]),
                "entering": sh["entering"],
                "observed": sh["observed"],
                "expected": sh["expected"],
                "rate": sh["rate"],
                "baseline_rate": sh["baseline_rate"],
                "lost": sh["lost"],
                "z": sh["z"],
                "p_value": p,
                "p_adjusted": min(1.0, p * tests),
                "dispersion": sh["dispersion"],
                "k": k,
            }
        )
    columns = [*SHIFT_COLUMNS[:4], *dims, *SHIFT_COLUMNS[7:]]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values("z", key=lambda z: -z.abs(), ignore_index=True)


def _counted_between(
    hourly: HourlyCounts, seg: dict, k: int, sh: dict, start: datetime, end: datetime
) -> dict:
    """The run's counts, rate and loss over [start, end) once its boundaries are placed to
    the hour (a two-day failure is a three-day run at day level: its rate is the failure's
    only between the hours found)."""
    n, r = hourly(seg, k, start, end)
    entering, observed = float(np.sum(n)), float(np.sum(r))
    if entering <= 0:
        return sh
    expected = sh["baseline_rate"] * entering
    return {
        **sh,
        "entering": entering,
        "observed": observed,
        "expected": expected,
        "rate": observed / entering,
        "lost": expected - observed,
    }


def _to_the_hour(
    hourly: HourlyCounts,
    seg: dict,
    k: int,
    sh: dict,
    start: datetime,
    end: datetime,
    n_days: int,
    s: LevelShiftSettings,
) -> tuple[datetime, datetime]:
    """The run's start and end moved to the hour within the day before a boundary and the
    day after it (the day-level segmentation puts a day cut in two on its larger side),
    when an hour carries at least ``min_hourly_information`` there."""
    normal, changed = sh["baseline_rate"], sh["rate"]

    def informative(n: np.ndarray) -> bool:
        return hourly_information(float(n.mean()), normal, changed) >= s.min_hourly_information

    if sh["a"] > 0:
        lo = start - timedelta(days=1)
        n, r = hourly(seg, k, lo, start + timedelta(days=1))
        if informative(n):
            start = lo + timedelta(hours=refine_boundary(n, r, normal, changed))
    if not sh["ongoing"]:
        lo = end - timedelta(days=1)
        n, r = hourly(seg, k, lo, end + timedelta(days=1))
        if informative(n):
            end = lo + timedelta(hours=refine_boundary(n, r, changed, normal))
    if end <= start:  # a boundary pulled past the other: keep the days
        return start.replace(hour=0), end
    return start, end


def find_level_shifts(
    levels, settings: LevelShiftSettings | None = None, *, properties: Sequence[str] = ()
) -> pd.DataFrame:
    """Long incidents (conversion changes that last) in a store's sessions, strongest first.

    ``levels`` is a :class:`~shopfunnel.diagnosis.session_levels.SessionLevels`;
    ``properties`` names session properties it holds to segment by besides device, channel
    and country. Columns (:data:`SHIFT_COLUMNS`): ``kind`` (``conversion_drop`` or
    ``conversion_rise``), ``step``, ``event``, ``segment`` and the dimension it is
    limited to (None = any), ``start``, ``end`` (first and last day; the last day of the
    data when ``ongoing``), ``start_time`` and ``end_time`` (to the hour when the traffic
    allows, else midnight), ``ongoing``, ``entering``, ``observed``, ``expected``,
    ``rate``, ``baseline_rate``, ``lost`` (expected − observed conversions; negative for
    a rise), ``z``, ``p_value`` (two-sided) and ``p_adjusted`` (times the number of
    series × steps × start days: Bonferroni), ``dispersion`` (φ of the series) and ``k``
    (the step's position, 1 … K).
    """
    dims = (*SEGMENT_DIMS, *properties)
    steps = [(st.name, st.event) for st in levels.steps]
    if levels.sessions == 0 or not steps:
        return pd.DataFrame(columns=[*SHIFT_COLUMNS[:4], *dims, *SHIFT_COLUMNS[7:]])
    cells = levels.counts(by=list(dims), grain="day", include_excluded=True)

    def hourly(seg: dict, k: int, start: datetime, end: datetime) -> tuple[np.ndarray, np.ndarray]:
        c = levels.counts(by=list(seg), grain="hour", start=start, end=end, include_excluded=True)
        for d, v in seg.items():
            c = c[c[d] == v]
        hours = int((end - start) / timedelta(hours=1))
        n, r = np.zeros(hours), np.zeros(hours)
        idx = (
            (pd.to_datetime(c["period"]) - pd.Timestamp(start)) // pd.Timedelta(hours=1)
        ).to_numpy()
        ok = (idx >= 0) & (idx < hours)
        np.add.at(n, idx[ok], c[f"n{k - 1}"].to_numpy(dtype=float)[ok])
        np.add.at(r, idx[ok], c[f"n{k}"].to_numpy(dtype=float)[ok])
        return n, r

    return shifts_from_counts(
        cells, steps, levels.first_day, levels.last_day, settings, dims=dims, hourly=hourly
    )
