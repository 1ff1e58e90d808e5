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

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from scipy import stats as sps

from shopfunnel.diagnosis.session_levels import SessionLevels

DIMS = ("device", "channel", "campaign")
# run lengths scanned at hour grain (every length would multiply the tests for little gain)
HOUR_LENGTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 36, 48)

INCIDENT_COLUMNS = [
    "kind",
    "step",
    "event",
    "segment",
    "device",
    "channel",
    "campaign",
    "country",
    "start",
    "end",
    "grain",
    "start_time",
    "end_time",
    "ongoing",
    "observed",
    "expected",
    "entering",
    "rate",
    "baseline_rate",
    "lost",
    "z",
    "p_value",
    "p_adjusted",
    "sessions",
    "expected_sessions",
    "extra_conversion_rate",
    "baseline_conversion_rate",
]


@dataclass(frozen=True)
class IncidentSettings:
    """Settings of the incident scan; defaults are explained in docs/diagnosis.md."""

    window_days: int = 14
    guard_days: int = 1
    max_days: int = 14
    max_hours: int = 48
    alpha: float = 0.01
    min_relative_drop: float = 0.3
    min_lost: float = 3.0
    min_spike_ratio: float = 1.5
    min_extra_sessions: float = 20.0
    top_campaigns: int = 10
    prior_sessions: float = 20.0
    min_segment_sessions: int = 50
    weekday_prior: float = 50.0
    hourly: bool = True


@dataclass
class _Candidate:
    kind: str
    k: int
    seg: int
    h0: int  # first hour (inclusive), from the first day 00:00
    h1: int  # last hour (exclusive)
    z: float
    info: dict


def _windowed(x: np.ndarray, window: int, guard: int) -> np.ndarray:
    """Sum over days ``d-window..d+window`` minus ``d-guard..d+guard`` along axis 1."""
    T = x.shape[1]
    cs = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x, axis=1)], axis=1)
    d = np.arange(T)

    def span(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        lo = np.clip(lo, 0, T)
        hi = np.clip(hi, 0, T)
        return cs[:, hi] - cs[:, lo]

    return span(d - window, d + window + 1) - span(d - guard, d + guard + 1)


_TRIM = 0.9
_Q = float(sps.chi2.ppf(_TRIM, 1))
# mean of a chi-square(1) variable below its 90% quantile: E[X; X < q] / 0.9 = F_3(q) / 0.9
_TRIMMED_MEAN = float(sps.chi2.cdf(_Q, 3) / _TRIM)


def _robust_dispersion(
    obs: np.ndarray,
    exp: np.ndarray,
    var: np.ndarray,
    residual_var: np.ndarray | None = None,
    skip: np.ndarray | None = None,
) -> np.ndarray:
    """Over-dispersion per series: the 90%-trimmed mean of Pearson residuals², over the
    same trimmed mean for a chi-square(1) variable; at least 1, at most 20.

    Trimming keeps incident days from inflating it; the trimmed mean is far less noisy
    than a median (about 80 daily residuals is all a series has). Days with a binomial
    variance ``var`` under 1 are skipped, and so are the days ``skip`` marks (those of the
    incidents the first pass found: a three-week outage is more than the trim can remove);
    ``residual_var`` (default ``var``) is the variance of obs − exp when ``exp`` is itself
    estimated.
    """
    rv = var if residual_var is None else residual_var
    usable = var >= 1.0 if skip is None else (var >= 1.0) & ~skip
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(usable, (obs - exp) ** 2 / rv, np.nan)
    phi = np.ones(r.shape[0])
    for i, row in enumerate(r):
        vals = np.sort(row[np.isfinite(row)])
        if len(vals) >= 7:
            keep = vals[: int(np.ceil(_TRIM * len(vals)))]
            phi[i] = keep.mean() / _TRIMMED_MEAN
    return np.clip(phi, 1.0, 20.0)


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1) / np.where(y > 0, y, 1e-300)), 0.0)


class _Scanner:
    def __init__(self, levels: SessionLevels, settings: IncidentSettings):
        self.s = settings
        self.levels = levels
        self.K = len(levels.steps)
        keep = {"campaign": levels.top_values("campaign", settings.top_campaigns)}
        counts = levels.counts(by=DIMS, grain="hour", keep=keep, include_excluded=True)
        self.empty = counts.empty or self.K == 0
        if self.empty:
            return
        cells = counts[list(DIMS)].drop_duplicates().reset_index(drop=True)
        cells["f"] = np.arange(len(cells))
        counts = counts.merge(cells, on=list(DIMS))
        self.cells = cells
        first_day = pd.Timestamp(levels.first_day)
        hours = ((counts["period"] - first_day) // pd.Timedelta(hours=1)).to_numpy().astype(int)
        self.D = int(hours.max() // 24 + 1)
        self.H = self.D * 24
        self.first_day: date = first_day.date()
        self.first_weekday = self.first_day.weekday()
        F = len(cells)
        self.F = F
        ch = np.zeros((F, self.H, self.K + 1))
        f = counts["f"].to_numpy()
        for k in range(self.K + 1):
            np.add.at(ch[:, :, k], (f, hours), counts[f"n{k}"].to_numpy())
        self.ch = ch
        self.cd = ch.reshape(F, self.D, 24, self.K + 1).sum(axis=2)
        # parents of each cell: device × channel, then everything
        dc = cells[["device", "channel"]].drop_duplicates().reset_index(drop=True)
        dc["g"] = np.arange(len(dc))
        self.g = cells.merge(dc, on=["device", "channel"], how="left")["g"].to_numpy()
        self.G = len(dc)
        self._segments()

    def _segments(self) -> None:
        labels, members = [], []
        total = self.cd[:, :, 0].sum(axis=1)
        for r in range(len(DIMS) + 1):
            for dims in itertools.combinations(range(len(DIMS)), r):
                keys = (
                    self.cells[[DIMS[i] for i in dims]].drop_duplicates().itertuples(index=False)
                    if dims
                    else [()]
                )
                for key in keys:
                    label: list = [None] * len(DIMS)
                    mask = np.ones(self.F, bool)
                    skip = False
                    for i, v in zip(dims, key, strict=True):
                        if DIMS[i] == "campaign" and v == "(none)":
                            skip = True
                        label[i] = v
                        mask &= self.cells[DIMS[i]].to_numpy() == v
                    if skip or total[mask].sum() < self.s.min_segment_sessions:
                        continue
                    labels.append(tuple(label))
                    members.append(mask)
        self.labels = labels
        self.members = np.array(members, dtype=float).reshape(len(members), self.F)  # (S, F)

    # -- conversion drops ---------------------------------------------------------------
    def _baseline(self, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Baseline rate (F, D) and its variance for the transition into step k."""
        s, m = self.s, self.s.prior_sessions
        x = self.cd[:, :, k] * mask
        n = self.cd[:, :, k - 1] * mask
        wx, wn = (
            _windowed(x, s.window_days, s.guard_days),
            _windowed(n, s.window_days, s.guard_days),
        )
        gx = np.zeros((self.G, self.D))
        gn = np.zeros((self.G, self.D))
        np.add.at(gx, self.g, wx)
        np.add.at(gn, self.g, wn)
        ax, an = wx.sum(axis=0), wn.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            p_all = np.where(an > 0, ax / np.maximum(an, 1), np.nan)
        p_g = (gx + m * p_all) / (gn + m)
        p_f = (wx + m * p_g[self.g]) / (wn + m)
        p_f = np.nan_to_num(p_f, nan=0.0)
        p_f = np.clip(p_f * self._weekday_factor(x, n * p_f)[None, :], 0.0, 0.999)
        var = p_f * (1 - p_f) / (wn + m)
        return p_f, var

    def _weekday_factor(self, x: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """Per day, how its weekday converts against the surrounding weeks (all traffic).

        The windowed baseline averages over weekdays; a store that converts worse at
        weekends would otherwise see every weekend as a small drop. For each weekday,
        observed / expected conversions over all the usable days of that weekday, shrunk
        towards 1 with ``weekday_prior`` expected conversions; 1 with under three weeks
        of data.
        """
        if self.D < 21:
            return np.ones(self.D)
        wd = (self.first_weekday + np.arange(self.D)) % 7
        obs, exp = x.sum(axis=0), expected.sum(axis=0)
        prior = self.s.weekday_prior
        factor = np.ones(7)
        for w in range(7):
            on = wd == w
            factor[w] = (obs[on].sum() + prior) / (exp[on].sum() + prior)
        return factor[wd]

    def drops(
        self, masks: np.ndarray, scanned: np.ndarray | None = None
    ) -> tuple[list[_Candidate], int]:
        """Candidate drops of every step, segment and run; ``masks`` (cells × days × steps,
        0 or 1) keeps days out of the baselines, ``scanned`` (same shape) keeps sessions
        out of the scan itself (those of falls the lasting scan reports)."""
        self._scanned = scanned
        s = self.s
        cands: list[_Candidate] = []
        tests = 0
        self._pf: dict[int, np.ndarray] = {}
        self._phi_k: dict[int, dict[int, float]] = {}
        hourly_segs = np.array([lab[1] is None and lab[2] is None for lab in self.labels])
        for k in range(1, self.K + 1):
            p_f, var_f = self._baseline(k, masks[:, :, k])
            p_f = np.nan_to_num(p_f, nan=0.0)
            var_f = np.nan_to_num(var_f, nan=0.0)
            self._pf[k] = p_f
            # daily
            keep = np.ones((self.F, self.D)) if scanned is None else scanned[:, :, k]
            n = self.cd[:, :, k - 1] * keep
            x = self.cd[:, :, k] * keep
            keep_h = np.repeat(keep, 24, axis=1)
            grains = [("day", n, x, p_f, var_f, s.max_days, np.ones(len(self.labels), bool), 24)]
            if s.hourly:
                rep = lambda a: np.repeat(a, 24, axis=1)  # noqa: E731
                grains.append(
                    (
                        "hour",
                        self.ch[:, :, k - 1] * keep_h,
                        self.ch[:, :, k] * keep_h,
                        rep(p_f),
                        rep(var_f),
                        s.max_hours,
                        hourly_segs,
                        1,
                    )
                )
            for grain, n_, x_, p_, v_, L, segsel, unit in grains:
                M = self.members[segsel]
                seg_idx = np.flatnonzero(segsel)
                N = M @ n_
                Obs = M @ x_
                E = M @ (n_ * p_)
                BV = M @ (n_ * p_ * (1 - p_))  # binomial variance
                SD = np.sqrt(
                    M @ (n_**2 * v_)
                )  # sd of the expectation from the baseline's uncertainty
                if grain == "day":
                    flagged = (M @ (1.0 - masks[:, :, k])) > 0  # days of incidents found so far
                    phi = _robust_dispersion(Obs, E, BV, skip=flagged)
                    self._phi_k[k] = dict(zip(seg_idx.tolist(), phi.tolist(), strict=True))
                else:
                    phi = np.array([self._phi_k[k].get(int(i), 1.0) for i in seg_idx])
                c, t = self._scan_drop(k, grain, seg_idx, N, Obs, E, BV, SD, phi, L, unit)
                cands += c
                tests += t
        return cands, tests

    def _scan_drop(self, k, grain, seg_idx, N, Obs, E, BV, SD, phi, L, unit):
        s = self.s
        T = N.shape[1]
        cs = lambda a: np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1)  # noqa: E731
        cN, cO, cE, cB, cS = cs(N), cs(Obs), cs(E), cs(BV), cs(SD)
        out: list[_Candidate] = []
        tests = 0
        lengths = (
            range(1, min(L, T) + 1)
            if grain == "day"
            else [h for h in HOUR_LENGTHS if h <= min(L, T)]
        )
        for length in lengths:
            n = cN[:, length:] - cN[:, :-length]
            o = cO[:, length:] - cO[:, :-length]
            e = cE[:, length:] - cE[:, :-length]
            bv = cB[:, length:] - cB[:, :-length]
            sd = cS[:, length:] - cS[:, :-length]
            tests += n.size
            cond = (e - o >= s.min_lost) & (o <= (1 - s.min_relative_drop) * e) & (bv > 0)
            if not cond.any():
                continue
            si, a = np.nonzero(cond)
            n, o, e, bv, sd = n[si, a], o[si, a], e[si, a], bv[si, a], sd[si, a]
            llr = _xlogy(o, e) + _xlogy(n - o, n - e)
            phi_eff = phi[si] + sd**2 / bv
            z = np.sqrt(np.maximum(2 * llr / phi_eff, 0))
            for j in range(len(si)):
                out.append(
                    _Candidate(
                        "conversion_drop",
                        k,
                        int(seg_idx[si[j]]),
                        int(a[j]) * unit,
                        (int(a[j]) + length) * unit,
                        float(z[j]),
                        {
                            "grain": grain,
                            "entering": float(n[j]),
                            "observed": float(o[j]),
                            "expected": float(e[j]),
                        },
                    )
                )
        return out, tests

    def interval_stats(
        self, k: int, cells: np.ndarray, h0: int, h1: int
    ) -> tuple[float, float, float, float]:
        """Entering, observed, expected and binomial variance for ``cells`` over hours [h0, h1)."""
        p = np.repeat(self._pf[k][cells], 24, axis=1)[:, h0:h1]
        keep = (
            1.0
            if self._scanned is None
            else np.repeat(self._scanned[cells, :, k], 24, axis=1)[:, h0:h1]
        )
        n = self.ch[cells, h0:h1, k - 1] * keep
        x = self.ch[cells, h0:h1, k] * keep
        return float(n.sum()), float(x.sum()), float((n * p).sum()), float((n * p * (1 - p)).sum())

    def drop_z(self, n: float, o: float, e: float, bv: float, phi: float) -> float:
        if bv <= 0 or o >= e:
            return 0.0
        llr = float(_xlogy(np.array(o), np.array(e)) + _xlogy(np.array(n - o), np.array(n - e)))
        return float(np.sqrt(max(2 * llr / phi, 0.0)))

    def broaden(self, c: _Candidate, z_complement: float = 3.0) -> _Candidate:
        """Widen a drop to a parent segment while the rest of the parent dropped too.

        A drop found in ``desktop`` whose complement in all traffic (mobile and tablet)
        also fell over the same hours is an all-traffic incident that desktop happened to
        show most clearly; a drop in ``mobile`` with healthy desktop stays ``mobile``.
        """
        index = {lab: i for i, lab in enumerate(self.labels)}
        while True:
            label = self.labels[c.seg]
            best = None
            for i, v in enumerate(label):
                if v is None:
                    continue
                parent = tuple(None if j == i else w for j, w in enumerate(label))
                if parent not in index:
                    continue
                comp = (self.members[index[parent]] > 0) & ~(self.members[c.seg] > 0)
                if not comp.any():
                    continue
                n, o, e, bv = self.interval_stats(c.k, comp, c.h0, c.h1)
                phi = self._phi_k[c.k].get(index[parent], 1.0)
                z = self.drop_z(n, o, e, bv, phi)
                if (
                    z >= z_complement
                    and o <= (1 - self.s.min_relative_drop) * e
                    and (best is None or z > best[0])
                ):
                    best = (z, index[parent])
            if best is None:
                return c
            seg = best[1]
            n, o, e, bv = self.interval_stats(c.k, self.members[seg] > 0, c.h0, c.h1)
            z = self.drop_z(n, o, e, bv, self._phi_k[c.k].get(seg, 1.0))
            c = _Candidate(
                c.kind,
                c.k,
                seg,
                c.h0,
                c.h1,
                z,
                {**c.info, "entering": n, "observed": o, "expected": e},
            )

    # -- traffic spikes -------------------------------------------------------------------
    def spikes(self, mask_days: np.ndarray) -> tuple[list[_Candidate], int]:
        """Volume spikes per segment; ``mask_days`` (S, D) marks days not to use as reference."""
        s = self.s
        V = self.members @ self.cd[:, :, 0]  # (S, D)
        S_, D = V.shape
        refs = []
        for w in (-3, -2, -1, 1, 2, 3):
            idx = np.arange(D) + 7 * w
            ok = (idx >= 0) & (idx < D)
            r = np.full((S_, D), np.nan)
            r[:, ok] = np.where(mask_days[:, idx[ok]], np.nan, V[:, idx[ok]])
            refs.append(r)
        R = np.stack(refs, axis=2)
        nref = np.isfinite(R).sum(axis=2)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                E = np.nanmedian(R, axis=2)
        E = np.where(nref >= 2, np.maximum(E, 0.5), np.nan)
        VE = np.where(nref >= 2, (np.pi / 2) * E / np.maximum(nref, 1), np.nan)
        phi = _robust_dispersion(
            np.where(np.isfinite(E), V, np.nan), E, np.where(np.isfinite(E), E, np.nan)
        )
        Ez = np.nan_to_num(E)
        VEz = np.nan_to_num(VE)
        valid = np.isfinite(E).astype(float)
        cs = lambda a: np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1)  # noqa: E731
        cV, cE, cVE, cvalid = cs(V * valid), cs(Ez), cs(VEz), cs(valid)
        out: list[_Candidate] = []
        tests = 0
        for length in range(1, min(s.max_days, D) + 1):
            o = cV[:, length:] - cV[:, :-length]
            e = cE[:, length:] - cE[:, :-length]
            ve = cVE[:, length:] - cVE[:, :-length]
            full = (cvalid[:, length:] - cvalid[:, :-length]) == length
            tests += int(full.sum())
            cond = full & (o >= s.min_spike_ratio * e) & (o - e >= s.min_extra_sessions)
            if not cond.any():
                continue
            si, a = np.nonzero(cond)
            o, e, ve = o[si, a], e[si, a], ve[si, a]
            llr = _xlogy(o, e) - (o - e)
            phi_eff = phi[si] + ve / e
            z = np.sqrt(np.maximum(2 * llr / phi_eff, 0))
            for j in range(len(si)):
                out.append(
                    _Candidate(
                        "traffic_spike",
                        0,
                        int(si[j]),
                        int(a[j]) * 24,
                        (int(a[j]) + length) * 24,
                        float(z[j]),
                        {"grain": "day", "sessions": float(o[j]), "expected_sessions": float(e[j])},
                    )
                )
        return out, tests


def _nested(a: tuple, b: tuple) -> bool:
    """True when one segment contains the other (every dimension equal or open in one)."""
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def _select(cands: list[_Candidate], labels: list[tuple], z_min: float) -> list[_Candidate]:
    ranked = sorted(
        (c for c in cands if c.z >= z_min),
        key=lambda c: (-round(c.z, 6), sum(v is not None for v in labels[c.seg]), c.h1 - c.h0),
    )
    chosen: list[_Candidate] = []
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


def _known_spans(sc: _Scanner, known: pd.DataFrame | None) -> list[tuple[int, tuple, int, int]]:
    """(step k, segment label, first hour, last hour exclusive) of each lasting fall in
    ``known`` on a step, on all traffic or a device/channel segment (this scan does not
    split by country or session property: such falls are left to the lasting scan)."""
    if known is None or not len(known):
        return []
    events = [st.event for st in sc.levels.steps]
    other = [
        c
        for c in known.columns
        if c
        not in (
            "kind",
            "step",
            "event",
            "segment",
            "device",
            "channel",
            "start",
            "end",
            "start_time",
            "end_time",
            "ongoing",
            "entering",
            "observed",
            "expected",
            "rate",
            "baseline_rate",
            "lost",
            "z",
            "p_value",
            "p_adjusted",
            "dispersion",
            "k",
        )
    ]
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
    sc = _Scanner(levels, s)
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
    chosen: list[_Candidate] = []
    spikes: list[_Candidate] = []
    tests = stests = 0
    for _pass in range(2):
        cands, tests = sc.drops(masks, known_mask)
        scands, stests = sc.spikes(spike_mask)
        z_min = float(sps.norm.isf(s.alpha / max(tests + stests, 1)))
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


def _row(c: _Candidate, sc: _Scanner, tests: int) -> dict:
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
        "p_value": float(sps.norm.sf(c.z)),
        "p_adjusted": float(min(1.0, sps.norm.sf(c.z) * max(tests, 1))),
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
