"""Incidents: a sudden drop in a step's conversion, or a spike of traffic that does not convert.

The method (docs/adr/0060-incident-detection.md, docs/diagnosis.md) in short:

1. **Counts.** Sessions per hour × device × channel × campaign (campaigns outside the
   ``top_campaigns`` largest, by total sessions and by busiest day, folded into ``other``), and how many reached each step (:mod:`shopfunnel.diagnosis.session_levels`).
2. **Expected conversion, cell by cell.** For the transition into step ``k`` on day ``d``
   in the finest cell ``f`` (device × channel × campaign) the baseline rate is the cell's
   pooled rate over the surrounding days ``d-window … d+window``, leaving out ``d-guard …
   d+guard`` (so a multi-day incident does not hide itself), shrunk towards its
   device × channel rate, itself shrunk towards the store's, with ``prior_sessions``
   pseudo-sessions each (small cells borrow strength; a brand-new campaign gets its
   channel's rate), then multiplied by its weekday's factor (how that weekday converts,
   all traffic, against the surrounding weeks: weekly seasonality of rates). The expected count for any segment is the sum over its cells of
   ``entering × baseline rate``: a shift in the traffic mix is not mistaken for a drop.
3. **Scan.** For every segment (all traffic, each device, channel, campaign and each
   combination of them) and every step, every run of 1 to ``max_days`` consecutive
   days (and, for all traffic and each device, 1 to ``max_hours`` consecutive hours) is
   scored with the binomial likelihood-ratio statistic of "observed below expected",
   divided by a dispersion factor (the series' robust over-dispersion plus the
   uncertainty of the baseline). Its signed root is a z score; a run is flagged when its
   one-sided p-value is below ``alpha`` divided by the number of runs scanned
   (Bonferroni over everything scanned), the drop is at least ``min_relative_drop`` and
   at least ``min_lost`` conversions were lost.
4. **Traffic spikes.** Daily sessions per segment against the median of the same weekday
   one, two and three weeks before and after (weekly seasonality), Poisson likelihood
   ratio, same threshold; a spike is an incident when the extra sessions convert to a
   purchase at under half the segment's usual rate (a segment too new to have one, such
   as a new campaign, takes its channel's rate, then all traffic's).
5. **Locate.** Flagged runs are taken best first; a run is dropped when it overlaps in
   time (and step) a better run in a nested segment (``mobile`` contains ``mobile ×
   email``; all traffic contains everything), so each incident is reported once, in the
   segment that explains it best, with its first and last day. Conversion drops inside a
   non-converting traffic spike's segment and time are part of the spike.
6. **Second pass.** Baselines are recomputed without the flagged days and the scan is
   repeated, so an incident does not depress the baseline of its neighbours.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

# (_windowed and _robust_dispersion: the statistics' names here before the split, kept)
from shopfunnel.diagnosis.incident_scan import DIMS, Candidate, IncidentSettings, Scanner
from shopfunnel.diagnosis.incident_scan import windowed_sum as _windowed  # noqa: F401
from shopfunnel.diagnosis.incident_table import INCIDENT_COLUMNS, SHIFT_COLUMNS
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.diagnosis.stats import robust_dispersion as _robust_dispersion  # noqa: F401
from shopfunnel.diagnosis.stats import scipy_stats

__all__ = ["INCIDENT_COLUMNS", "IncidentSettings", "find_incidents"]


def _nested(a: tuple, b: tuple) -> bool:
    """True when one segment contains the other (every dimension equal or open in one)."""
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def _select(cands: list[Candidate], labels: list[tuple], z_min: float) -> list[Candidate]:
    ranked = sorted(
        (c for c in cands if c.z >= z_min),
        key=lambda c: (-round(c.z, 6), sum(v is not None for v in labels[c.seg]), c.h1 - c.h0),
    )
    chosen: list[Candidate] = []
    for c in ranked:
        if any(
            o.k == c.k
            and o.kind == c.kind
            and c.h0 < o.h1
            and o.h0 < c.h1
            and _nested(labels[o.seg], labels[c.seg])
            for o in chosen
        ):
            continue
        chosen.append(c)
    return chosen


def _segment_text(label: tuple) -> str:
    parts = [f"{d}={v}" for d, v in zip(DIMS, label, strict=True) if v is not None]
    return ", ".join(parts) if parts else "all traffic"


def _known_spans(sc: Scanner, known: pd.DataFrame | None) -> list[tuple[int, tuple, int, int]]:
    """(step k, segment label, first hour, last hour exclusive) of each lasting fall in
    ``known`` on a step, on all traffic or a device/channel segment (this scan does not
    split by country or session property: such falls are left to the lasting scan)."""
    if known is None or not len(known):
        return []
    events = [st.event for st in sc.levels.steps]
    # the dimensions this scan does not split by: country and the session properties
    other = [c for c in known.columns if c not in SHIFT_COLUMNS or c == "country"]
    spans = []
    for r in known.to_dict("records"):
        if r.get("kind") != "conversion_drop" or r.get("event") not in events:
            continue
        if any(isinstance(r.get(c), str) for c in other):  # country=DE, browser=Safari…
            continue
        label = tuple(r.get(d) if isinstance(r.get(d), str) else None for d in DIMS)
        h0 = max((r["start"] - sc.first_day).days * 24, 0)
        h1 = min(((r["end"] - sc.first_day).days + 1) * 24, sc.H)
        if h1 > h0:
            spans.append((events.index(r["event"]) + 1, label, h0, h1))
    return spans


def find_incidents(
    levels: SessionLevels,
    settings: IncidentSettings | None = None,
    known: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Incidents in the store's sessions, best first (see the module docstring for the method).

    ``known`` (optional) holds falls longer than this scan's runs, found by the lasting
    scan (:func:`shopfunnel.diagnosis.level_shifts.find_level_shifts`; columns ``kind``,
    ``event``, ``device``, ``channel``, ``start``, ``end``): their days are left out of
    the baselines and of the dispersion from the first pass (a three-week outage would
    otherwise raise its series' noise so much that a short outage a month later is not
    seen), and their sessions are not scanned: the lasting scan reports them, not pieces of
    them here, and a segment holding theirs (all traffic, for a fall on mobile) is judged
    on its other sessions.

    Columns: ``kind`` (``conversion_drop`` or ``traffic_spike``), ``step`` and ``event``
    (the step whose conversion dropped; ``visit`` for spikes), ``segment`` (text) and the
    ``device``/``channel``/``campaign`` it is limited to (None = any), ``start`` and
    ``end`` (first and last day, inclusive), ``grain`` (``day`` or ``hour`` scan),
    ``start_time``/``end_time`` (the run's first hour and the hour after its last: exact to
    the hour for an hour-grain run, whole days otherwise),
    ``observed``/``expected`` conversions into the step and ``entering`` (sessions at the
    previous step) over the incident, ``rate`` and ``baseline_rate`` (observed and
    expected conversion), ``lost`` (expected − observed), ``z`` and ``p_value`` (one-sided,
    before the Bonferroni factor), ``p_adjusted`` (times the number of runs scanned: a
    run is reported when it is under ``alpha``), ``ongoing`` (the run reaches the end of
    the data) and ``country`` (None: this scan does not split by country); for spikes ``sessions``, ``expected_sessions``,
    ``extra_conversion_rate`` (purchases beyond the usual, per extra session) and
    ``baseline_conversion_rate`` (the segment's usual session → purchase rate).
    """
    s = settings or IncidentSettings()
    sc = Scanner(levels, s)
    if sc.empty or not sc.labels:
        return pd.DataFrame(columns=INCIDENT_COLUMNS)
    S = len(sc.labels)
    spans = _known_spans(sc, known)
    known_mask = np.ones((sc.F, sc.D, sc.K + 1))
    for k, label, h0, h1 in spans:
        cells = np.ones(sc.F, bool)
        for d, v in zip(DIMS, label, strict=True):
            if v is not None:
                cells &= sc.cells[d].to_numpy() == v
        known_mask[np.ix_(cells, np.arange(h0 // 24, h1 // 24), np.array([k]))] = 0

    masks = known_mask.copy()
    spike_mask = np.zeros((S, sc.D), bool)
    chosen: list[Candidate] = []
    spikes: list[Candidate] = []
    tests = stests = 0
    for _pass in range(2):
        cands, tests = sc.drops(masks, known_mask)
        scands, stests = sc.spikes(spike_mask)
        z_min = float(scipy_stats().norm.isf(s.alpha / max(tests + stests, 1)))
        chosen = _select(cands, sc.labels, z_min)
        chosen = _select([sc.broaden(c) for c in chosen], sc.labels, 0.0)
        spikes = _select(scands, sc.labels, z_min)
        masks = known_mask.copy()
        spike_mask = np.zeros_like(spike_mask)
        for c in chosen:
            d0, d1 = c.h0 // 24, (c.h1 + 23) // 24
            cells = sc.members[c.seg] > 0
            masks[np.ix_(cells, np.arange(d0, d1), np.array([c.k]))] = 0
        for c in spikes:
            spike_mask[c.seg, c.h0 // 24 : (c.h1 + 23) // 24] = True
    rows = []
    # a traffic spike is an incident when its extra sessions do not convert
    purchases = sc.members @ sc.cd[:, :, sc.K]
    sessions = sc.members @ sc.cd[:, :, 0]
    kept_spikes = []
    index = {lab: i for i, lab in enumerate(sc.labels)}
    for c in spikes:
        d0, d1 = c.h0 // 24, c.h1 // 24
        outside = np.ones(sc.D, bool)
        outside[d0:d1] = False
        lo, hi = max(0, d0 - s.window_days), min(sc.D, d1 + s.window_days)
        win = np.zeros(sc.D, bool)
        win[lo:hi] = True
        win &= outside
        # the segment's usual rate; a segment too new to have one (a new campaign) takes its
        # parent's: without the campaign, then without the channel, then all traffic
        ref_s, ref_p = sessions[c.seg, win].sum(), purchases[c.seg, win].sum()
        parent = list(sc.labels[c.seg])
        channels = set(sc.cells.loc[sc.members[c.seg] > 0, "channel"])
        if parent[1] is None and len(channels) == 1:
            parent[1] = (
                channels.pop()
            )  # a campaign that runs on one channel: compare with that channel
        for i in (2, 1, 0):
            if ref_s >= 100:
                break
            parent[i] = None
            j = index.get(tuple(parent))
            if j is not None:
                ref_s, ref_p = sessions[j, win].sum(), purchases[j, win].sum()
        base_rate = ref_p / ref_s if ref_s > 0 else np.nan
        o_s, e_s = c.info["sessions"], c.info["expected_sessions"]
        o_p = purchases[c.seg, d0:d1].sum()
        extra_rate = (o_p - e_s * base_rate) / (o_s - e_s)
        if not (extra_rate < 0.5 * base_rate):
            continue
        c.info.update(
            purchases=float(o_p),
            extra_conversion_rate=float(max(extra_rate, 0.0)),
            baseline_conversion_rate=float(base_rate),
        )
        kept_spikes.append(c)
    for c in chosen:
        if any(
            c.h0 < sp.h1 and sp.h0 < c.h1 and _nested(sc.labels[sp.seg], sc.labels[c.seg])
            for sp in kept_spikes
        ):
            continue
        rows.append(_row(c, sc, tests + stests))
    rows += [_row(c, sc, tests + stests) for c in kept_spikes]
    out = pd.DataFrame(rows, columns=INCIDENT_COLUMNS)
    return out.sort_values("z", ascending=False, ignore_index=True)


def _row(c: Candidate, sc: Scanner, tests: int) -> dict:
    label = sc.labels[c.seg]
    start = sc.first_day + timedelta(hours=c.h0)
    end = sc.first_day + timedelta(hours=c.h1 - 1)
    step = sc.levels.steps[c.k - 1] if c.k > 0 else None
    info = c.info
    row = {
        "kind": c.kind,
        "step": step.name if step else "visit",
        "event": step.event if step else None,
        "segment": _segment_text(label),
        "device": label[0],
        "channel": label[1],
        "campaign": label[2],
        "start": start,
        "end": end,
        "grain": info["grain"],
        "start_time": datetime.combine(sc.first_day, datetime.min.time()) + timedelta(hours=c.h0),
        "end_time": datetime.combine(sc.first_day, datetime.min.time()) + timedelta(hours=c.h1),
        "z": c.z,
        "p_value": float(scipy_stats().norm.sf(c.z)),
        "p_adjusted": float(min(1.0, scipy_stats().norm.sf(c.z) * max(tests, 1))),
        "country": None,
        "ongoing": c.h1 >= sc.H,
    }
    if c.kind == "conversion_drop":
        n, o, e = info["entering"], info["observed"], info["expected"]
        row.update(
            observed=o,
            expected=e,
            entering=n,
            rate=o / n if n else np.nan,
            baseline_rate=e / n if n else np.nan,
            lost=e - o,
        )
    else:
        row.update(
            sessions=info["sessions"],
            expected_sessions=info["expected_sessions"],
            observed=info["purchases"],
            extra_conversion_rate=info["extra_conversion_rate"],
            baseline_conversion_rate=info["baseline_conversion_rate"],
            lost=(info["sessions"] - info["expected_sessions"]) * info["baseline_conversion_rate"]
            - max(
                info["purchases"] - info["expected_sessions"] * info["baseline_conversion_rate"],
                0.0,
            ),
        )
    return row
