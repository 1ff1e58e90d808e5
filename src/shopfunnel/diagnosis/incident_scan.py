"""The run scan's machinery: counts per cell and hour, baselines, and the candidate runs.

:class:`Scanner` holds sessions and step counts per finest cell (device × channel ×
campaign) and hour, the segments scanned (every combination of the dimensions) and
computes, for every step, segment and run of days or hours, the statistic described in
:mod:`shopfunnel.diagnosis.incidents` (steps 2 to 4 of the method); it returns
candidates, which :func:`shopfunnel.diagnosis.incidents.find_incidents` selects, locates
and turns into rows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.diagnosis.stats import robust_dispersion

DIMS = ("device", "channel", "campaign")
# run lengths scanned at hour grain (every length would multiply the tests for little gain)
HOUR_LENGTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 36, 48)


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
class Candidate:
    kind: str
    k: int
    seg: int
    h0: int  # first hour (inclusive), from the first day 00:00
    h1: int  # last hour (exclusive)
    z: float
    info: dict


def windowed_sum(x: np.ndarray, window: int, guard: int) -> np.ndarray:
    """Sum over days ``d-window..d+window`` minus ``d-guard..d+guard`` along axis 1."""
    T = x.shape[1]
    cs = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x, axis=1)], axis=1)
    d = np.arange(T)

    def span(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        lo = np.clip(lo, 0, T)
        hi = np.clip(hi, 0, T)
        return cs[:, hi] - cs[:, lo]

    return span(d - window, d + window + 1) - span(d - guard, d + guard + 1)


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1) / np.where(y > 0, y, 1e-300)), 0.0)


class Scanner:
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
            windowed_sum(x, s.window_days, s.guard_days),
            windowed_sum(n, s.window_days, s.guard_days),
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
    ) -> tuple[list[Candidate], int]:
        """Candidate drops of every step, segment and run; ``masks`` (cells × days × steps,
        0 or 1) keeps days out of the baselines, ``scanned`` (same shape) keeps sessions
        out of the scan itself (those of falls the lasting scan reports)."""
        self._scanned = scanned
        s = self.s
        cands: list[Candidate] = []
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
                    phi = robust_dispersion(Obs, E, BV, skip=flagged)
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
        out: list[Candidate] = []
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
                    Candidate(
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

    def broaden(self, c: Candidate, z_complement: float = 3.0) -> Candidate:
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
            c = Candidate(
                c.kind,
                c.k,
                seg,
                c.h0,
                c.h1,
                z,
                {**c.info, "entering": n, "observed": o, "expected": e},
            )

    # -- traffic spikes -------------------------------------------------------------------
    def spikes(self, mask_days: np.ndarray) -> tuple[list[Candidate], int]:
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
        phi = robust_dispersion(
            np.where(np.isfinite(E), V, np.nan), E, np.where(np.isfinite(E), E, np.nan)
        )
        Ez = np.nan_to_num(E)
        VEz = np.nan_to_num(VE)
        valid = np.isfinite(E).astype(float)
        cs = lambda a: np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1)  # noqa: E731
        cV, cE, cVE, cvalid = cs(V * valid), cs(Ez), cs(VEz), cs(valid)
        out: list[Candidate] = []
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
                    Candidate(
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
