"""Long incidents: a step's conversion that changes and stays changed for days to months.

The run scan of :mod:`shopfunnel.diagnosis.incidents` compares 1–14-day runs with the
fortnight around them, so anything longer is its own baseline, and at a few sessions a day
one day carries almost no signal. This module looks at a whole series instead:

1. **Series.** For each step k and segment (all traffic, each device, channel and
   country), per UTC day: sessions entering the step (reached step k−1) and sessions
   reaching it.
2. **Segmentation.** Optimal partitioning of the days into runs of constant conversion,
   on the exact binomial likelihood: the cost of a run is −2 × its log-likelihood at its own
   rate, and each change point costs a penalty β = ``penalty_per_log_day`` × ln(days)
   (BIC-like: an extra run has one more rate and one more boundary). Runs shorter than ``min_days`` are not allowed. Exact dynamic
   programming, O(days²) per series.
3. **Incidents.** The normal level is the pooled rate of the runs that hold most of the
   entering sessions (the baseline run and every run whose rate is within
   ``min_relative_change`` of it). Every other run is a candidate: its two-sample binomial
   z against the baseline must pass a Bonferroni threshold over all series and start days,
   it must change the rate by at least ``min_relative_change`` and lose (or gain) at least
   ``min_lost`` conversions. A run that reaches the last day is **ongoing**.
4. **One report per incident.** A candidate is dropped when a stronger one covers the same
   step and overlapping days in a segment that contains it or is contained by it (a fall on
   mobile shows in all traffic too, weaker: it is reported on mobile).

The penalty and thresholds are set so that stationary data gives at most one false
incident per year of data, measured by ``benchmarks/incident_false_alarms.py`` over many
seeds and traffic levels (docs/diagnosis.md gives the figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

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


def _loglik(n: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Binomial log-likelihood of ``r`` successes in ``n`` trials at the MLE rate."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, r / np.maximum(n, 1), 0.0)
        a = np.where(r > 0, r * np.log(np.where(p > 0, p, 1.0)), 0.0)
        b = np.where(n - r > 0, (n - r) * np.log(np.where(p < 1, 1 - p, 1.0)), 0.0)
    return a + b


def segment(entering: np.ndarray, reached: np.ndarray, *, penalty: float,
            min_days: int = 3) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` of days that minimise Σ −2·loglik(run) + penalty × (runs − 1),
    each at least ``min_days`` long (the whole series is one run when shorter)."""
    n_days = len(entering)
    if n_days < 2 * min_days:
        return [(0, n_days)]
    cn = np.concatenate([[0.0], np.cumsum(entering, dtype=float)])
    cr = np.concatenate([[0.0], np.cumsum(reached, dtype=float)])
    best = np.full(n_days + 1, np.inf)
    best[0] = -penalty
    back = np.zeros(n_days + 1, dtype=np.int64)
    for b in range(min_days, n_days + 1):
        a = np.arange(0, b - min_days + 1)
        ok = (a == 0) | (a >= min_days)
        a = a[ok]
        cost = -2.0 * _loglik(cn[b] - cn[a], cr[b] - cr[a])
        total = best[a] + cost + penalty
        i = int(np.argmin(total))
        best[b], back[b] = total[i], a[i]
    runs: list[tuple[int, int]] = []
    end = n_days
    while end > 0:
        begin = int(back[end])
        runs.append((begin, end))
        end = begin
    return runs[::-1]


def _z(n1: float, r1: float, n0: float, r0: float) -> float:
    """Two-sample binomial z of rate r1/n1 against r0/n0 (pooled variance)."""
    if n1 <= 0 or n0 <= 0:
        return 0.0
    p = (r1 + r0) / (n1 + n0)
    var = p * (1 - p) * (1 / n1 + 1 / n0)
    return 0.0 if var <= 0 else (r1 / n1 - r0 / n0) / math.sqrt(var)


def shifts_in_series(entering: np.ndarray, reached: np.ndarray, s: LevelShiftSettings,
                     z_min: float) -> list[dict]:
    """The runs of one series whose conversion differs from its normal level."""
    penalty = s.penalty_per_log_day * math.log(max(len(entering), 2))
    runs = segment(entering, reached, penalty=penalty, min_days=s.min_days)
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
    out = []
    for i, (a, b) in enumerate(runs):
        if normal[i] or ns[i] <= 0:
            continue
        base = r0 / n0
        z = _z(ns[i], rs[i], n0, r0)
        lost = base * ns[i] - rs[i]
        if abs(z) < z_min or abs(lost) < s.min_lost:
            continue
        if abs(rates[i] - base) < s.min_relative_change * base:
            continue
        out.append({"a": a, "b": b, "entering": ns[i], "observed": rs[i],
                    "expected": base * ns[i], "rate": rates[i], "baseline_rate": base,
                    "lost": lost, "z": z, "ongoing": b == len(entering)})
    return out


def _holds_without(seg: dict, stronger: list[dict], k: int, sh: dict, mask_of, dense,
                   s: LevelShiftSettings, z_min: float) -> bool:
    mask = mask_of(seg)
    for other in stronger:
        mask &= ~mask_of(other)
    counts = dense(mask)
    a, b = sh["a"], sh["b"]
    entering, reached = counts[:, k - 1], counts[:, k]
    n1, r1 = entering[a:b].sum(), reached[a:b].sum()
    n0, r0 = entering.sum() - n1, reached.sum() - r1
    if n1 <= 0 or n0 <= 0:
        return False
    base = r0 / n0
    return (abs(_z(n1, r1, n0, r0)) >= z_min and abs(base * n1 - r1) >= s.min_lost
            and abs(r1 / n1 - base) >= s.min_relative_change * base)


def find_level_shifts(levels, settings: LevelShiftSettings | None = None) -> pd.DataFrame:
    """Long incidents (conversion changes that last) in a store's sessions, strongest first.

    ``levels`` is a :class:`~shopfunnel.diagnosis.session_levels.SessionLevels`. Columns:
    ``kind`` (``conversion_drop`` or ``conversion_rise``), ``step``, ``event``,
    ``segment`` and the ``device``/``channel``/``country`` it is limited to (None = any),
    ``start``, ``end`` (first and last day; the last day of the data when ``ongoing``),
    ``ongoing``, ``entering``, ``observed``, ``expected``, ``rate``, ``baseline_rate``,
    ``lost`` (expected − observed conversions; negative for a rise), ``z`` and ``p_value``
    (two-sided, before the Bonferroni factor over series × start days).
    """
    from scipy import stats as sps

    s = settings or LevelShiftSettings()
    columns = ["kind", "step", "event", "segment", "device", "channel", "country", "start",
               "end", "ongoing", "entering", "observed", "expected", "rate", "baseline_rate",
               "lost", "z", "p_value"]
    if levels.sessions == 0 or not levels.steps:
        return pd.DataFrame(columns=columns)
    first, last = pd.Timestamp(levels.first_day), pd.Timestamp(levels.last_day)
    days = pd.date_range(first, last, freq="D")
    n_days = len(days)
    series: list[tuple[dict, np.ndarray]] = []  # (segment, counts days × (K+1))
    K = len(levels.steps)

    cells = levels.counts(by=list(SEGMENT_DIMS), grain="day", include_excluded=True)
    day_index = ((pd.to_datetime(cells["period"]) - first).dt.days).to_numpy()
    counts_all = cells[[f"n{k}" for k in range(K + 1)]].to_numpy(dtype=float)

    def dense(mask: np.ndarray) -> np.ndarray:
        out = np.zeros((n_days, K + 1))
        np.add.at(out, day_index[mask], counts_all[mask])
        return out

    def mask_of(seg: dict) -> np.ndarray:
        m = np.ones(len(cells), dtype=bool)
        for d, v in seg.items():
            m &= (cells[d] == v).to_numpy()
        return m

    series.append(({}, dense(np.ones(len(cells), dtype=bool))))
    all_sessions = float(cells["n0"].sum())
    for dim in SEGMENT_DIMS:
        sizes = cells.groupby(dim)["n0"].sum().sort_values(ascending=False)
        for value in sizes.index[: s.top_values]:
            if value in ("(none)", "other") or sizes[value] < s.min_segment_share * all_sessions:
                continue
            if sizes[value] >= all_sessions:  # one value holds everything: same as all traffic
                continue
            series.append(({dim: value}, dense(mask_of({dim: value}))))
    tests = max(len(series) * K * n_days, 1)
    z_min = float(sps.norm.isf(s.alpha / 2 / tests))
    found = []
    for seg, counts in series:
        for k in range(1, K + 1):
            for shift in shifts_in_series(counts[:, k - 1], counts[:, k], s, z_min):
                found.append((seg, k, shift))
    found.sort(key=lambda f: -abs(f[2]["z"]))
    kept: list[tuple[dict, int, dict]] = []
    for seg, k, sh in found:
        overlapping = [(seg2, sh2) for seg2, k2, sh2 in kept
                       if k == k2 and sh["a"] < sh2["b"] and sh2["a"] < sh["b"]]
        if any(seg.items() <= seg2.items() or seg2.items() <= seg.items() for seg2, _ in overlapping):
            continue
        # a change in another dimension (country=DE while mobile fell) is kept only if it
        # holds without the sessions of the stronger one
        if overlapping and not _holds_without(seg, [s2 for s2, _ in overlapping], k, sh, mask_of,
                                              dense, s, z_min):
            continue
        kept.append((seg, k, sh))
    rows = []
    for seg, k, sh in kept:
        step = levels.steps[k - 1]
        rows.append({
            "kind": "conversion_drop" if sh["lost"] > 0 else "conversion_rise",
            "step": step.name, "event": step.event,
            "segment": ", ".join(f"{d}={v}" for d, v in seg.items()) or "all traffic",
            "device": seg.get("device"), "channel": seg.get("channel"), "country": seg.get("country"),
            "start": (first + timedelta(days=sh["a"])).date(),
            "end": (first + timedelta(days=sh["b"] - 1)).date(),
            "ongoing": bool(sh["ongoing"]),
            "entering": sh["entering"], "observed": sh["observed"], "expected": sh["expected"],
            "rate": sh["rate"], "baseline_rate": sh["baseline_rate"], "lost": sh["lost"],
            "z": sh["z"], "p_value": float(2 * sps.norm.sf(abs(sh["z"]))),
        })
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values("z", key=lambda z: -z.abs(), ignore_index=True)


def as_incidents(shifts: pd.DataFrame, short: pd.DataFrame) -> pd.DataFrame:
    """The falls among ``shifts`` as rows of the incident table (``grain`` ``"days"``, with
    ``ongoing`` and ``country``), leaving out those that overlap an incident of ``short``
    (the run scan) on the same step in a nested segment, and short falls during a traffic
    spike (at most twice its length, plus two days): each incident is reported once."""
    from datetime import datetime

    from scipy import stats as sps

    from shopfunnel.diagnosis.incidents import INCIDENT_COLUMNS

    columns = [*INCIDENT_COLUMNS, "ongoing", "country"]
    rows = []
    for r in shifts.itertuples(index=False):
        if r.kind != "conversion_drop":
            continue
        seg = {d: v for d, v in (("device", r.device), ("channel", r.channel), ("country", r.country))
               if isinstance(v, str)}
        clash = False
        for q in short.itertuples(index=False):
            if q.kind == "traffic_spike":
                # visitors of a spike that does not convert lower the rates while it lasts:
                # that is the spike, not a change of the store's conversion
                spike_days = (q.end - q.start).days + 1
                if q.start <= r.end and r.start <= q.end and (r.end - r.start).days + 1 <= 2 * spike_days + 2:
                    clash = True
                    break
                continue
            if q.kind != "conversion_drop" or q.event != r.event:
                continue
            other = {d: v for d, v in (("device", q.device), ("channel", q.channel),
                                       ("campaign", q.campaign)) if isinstance(v, str)}
            nested = seg.items() <= other.items() or other.items() <= seg.items()
            if nested and q.start <= r.end and r.start <= q.end:
                clash = True
                break
        if clash:
            continue
        start = datetime.combine(r.start, datetime.min.time())
        end = datetime.combine(r.end, datetime.min.time())
        rows.append({
            "kind": "conversion_drop", "step": r.step, "event": r.event, "segment": r.segment,
            "device": r.device, "channel": r.channel, "campaign": None, "country": r.country,
            "start": r.start, "end": r.end, "grain": "days", "start_time": start,
            "end_time": end + timedelta(days=1), "observed": r.observed, "expected": r.expected,
            "entering": r.entering, "rate": r.rate, "baseline_rate": r.baseline_rate,
            "lost": r.lost, "z": -r.z, "p_value": float(sps.norm.sf(-r.z)), "ongoing": r.ongoing,
        })
    return pd.DataFrame(rows, columns=columns)
