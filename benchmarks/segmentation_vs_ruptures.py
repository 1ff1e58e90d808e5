"""Our binomial segmentation against `ruptures` (BSD, https://centre-borelli.github.io/ruptures-docs/).

    pip install --target /tmp/rupt_pkgs --no-deps ruptures   # not a shopfunnel dependency
    PYTHONPATH=src:tests:/tmp/rupt_pkgs python benchmarks/segmentation_vs_ruptures.py [--seeds 30]

One daily series per store (a year, ``tests/_daily_counts.py``): the all-traffic payment →
purchase series with a 20-day fall 0.8 → 0.3 from day 121, and the mobile shipping →
payment series with a 30-day fall 0.85 → 0.65 from day 60; and the same series with no
change. At 10, 100, 1,000 and 10,000 sessions a day. Methods, all with a BIC-like penalty
of 3 ln(days) per change (in each method's own cost units):

- **ours**: :func:`shopfunnel.diagnosis.level_shifts.segment`, optimal partitioning on the
  exact binomial likelihood (dispersion φ from :func:`series_dispersion`), min run 3 days;
- **ruptures Pelt, binomial cost**: the same objective as a ruptures custom cost
  (``BaseCost``), ``Pelt(min_size=3, jump=1)``: must give the same change points;
- **ruptures Pelt, l2** and **ruptures Binseg, l2**: the usual use of ruptures on the daily
  conversion rate (Gaussian cost, penalty scaled by the rate's variance estimated from
  day-to-day differences, days without sessions dropped).

Found: a change point within ±3 days of both true boundaries. False: change points on the
series with no change. Writes ``benchmarks/results/segmentation_vs_ruptures.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE.parent / "tests"), str(HERE)]

import numpy as np  # noqa: E402
import ruptures as rpt  # noqa: E402
from machine import cpu_name, ram_gib  # noqa: E402
from ruptures.base import BaseCost  # noqa: E402

from _daily_counts import Change, DailyCounts  # noqa: E402
from shopfunnel.diagnosis.level_shifts import _loglik, segment, series_dispersion  # noqa: E402

CASES = {
    "outage": (Change(6, 121, 20, 0.3), 6, {}),
    "mobile": (Change(5, 60, 30, 0.65, {"device": "mobile"}), 5, {"device": "mobile"}),
}


class BinomialCost(BaseCost):
    """−2 × binomial log-likelihood of a run at its own rate; signal columns: entering, reached."""

    model = "binomial"
    min_size = 3

    def fit(self, signal):
        self.signal = signal
        self.cn = np.concatenate([[0.0], np.cumsum(signal[:, 0])])
        self.cr = np.concatenate([[0.0], np.cumsum(signal[:, 1])])
        return self

    def error(self, start, end):
        n = np.array([self.cn[end] - self.cn[start]])
        r = np.array([self.cr[end] - self.cr[start]])
        return float(-2 * _loglik(n, r)[0])


def series(dc: DailyCounts, k: int, seg: dict) -> tuple[np.ndarray, np.ndarray]:
    cells = dc.cells()
    for d, v in seg.items():
        cells = cells[cells[d] == v]
    g = cells.groupby("period")[[f"n{k - 1}", f"n{k}"]].sum().reindex(
        pd_days(dc), fill_value=0)
    return g[f"n{k - 1}"].to_numpy(float), g[f"n{k}"].to_numpy(float)


def pd_days(dc: DailyCounts):
    import pandas as pd

    return pd.date_range(pd.Timestamp(dc.first_day), periods=dc.days, freq="D")


def ours(n, r):
    pen = 3 * math.log(len(n)) * series_dispersion(n, r)
    return [b for _, b in segment(n, r, penalty=pen, min_days=3)][:-1]


def rpt_binomial(n, r):
    pen = 3 * math.log(len(n)) * series_dispersion(n, r)
    algo = rpt.Pelt(custom_cost=BinomialCost(), min_size=3, jump=1).fit(np.column_stack([n, r]))
    return algo.predict(pen=pen)[:-1]


def _rate_signal(n, r):
    keep = n > 0
    days = np.flatnonzero(keep)
    rate = r[keep] / n[keep]
    sigma2 = max(np.median(np.abs(np.diff(rate))) ** 2 / (2 * 0.4549), 1e-9) if len(rate) > 2 else 1.0
    return days, rate.reshape(-1, 1), 3 * math.log(max(len(rate), 2)) * sigma2


def rpt_l2(algo_cls):
    def run(n, r):
        days, signal, pen = _rate_signal(n, r)
        if len(signal) < 6:
            return []
        kw = {"jump": 1} if algo_cls is rpt.Pelt else {}
        bkps = algo_cls(model="l2", min_size=3, **kw).fit(signal).predict(pen=pen)[:-1]
        return [int(days[b]) for b in bkps]
    return run


METHODS = {"ours (exact binomial OP)": ours, "ruptures Pelt, binomial cost": rpt_binomial,
           "ruptures Pelt, l2 on daily rates": rpt_l2(rpt.Pelt), "ruptures Binseg, l2 on daily rates": rpt_l2(rpt.Binseg)}


def hit(bkps: list[int], change: Change) -> bool:
    return (any(abs(b - change.start) <= 3 for b in bkps)
            and any(abs(b - (change.start + change.days)) <= 3 for b in bkps))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--levels", default="10,100,1000,10000")
    args = ap.parse_args()
    t0 = time.time()
    rows = []
    agree = total = 0
    for spd in [float(x) for x in args.levels.split(",")]:
        stats = {m: {"found": 0, "false": 0, "time": 0.0, "runs": 0} for m in METHODS}
        for change, k, seg in CASES.values():
            for s in range(args.seeds):
                planted = series(DailyCounts(spd, seed=s, changes=[change]), k, seg)
                quiet = series(DailyCounts(spd, seed=500 + s), k, seg)
                results = {}
                for name, fn in METHODS.items():
                    t = time.perf_counter()
                    b_planted = fn(*planted)
                    b_quiet = fn(*quiet)
                    stats[name]["time"] += time.perf_counter() - t
                    stats[name]["runs"] += 2
                    stats[name]["found"] += hit(b_planted, change)
                    stats[name]["false"] += len(b_quiet)
                    results[name] = (b_planted, b_quiet)
                total += 1
                agree += results["ours (exact binomial OP)"] == results["ruptures Pelt, binomial cost"]
        n_planted = len(CASES) * args.seeds
        for name, st in stats.items():
            rows.append(f"| {spd:,.0f} | {name} | {st['found'] / n_planted:.0%} | {st['false']} | "
                        f"{1000 * st['time'] / st['runs']:.1f} |")
            print(rows[-1], flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    text = "\n".join([
        "# Segmentation: ours against ruptures",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}; ruptures {rpt.__version__}; {cpu_name()}, "
        f"{os.cpu_count()} cores, {ram_gib():.0f} GiB; {time.time() - t0:.0f} s.",
        f"`PYTHONPATH=src:tests:/tmp/rupt_pkgs python benchmarks/segmentation_vs_ruptures.py --seeds {args.seeds} "
        f"--levels {args.levels}`",
        "",
        f"Per level: {len(CASES)} × {args.seeds} planted series (a 20-day outage on all traffic, a 30-day fall on mobile) "
        f"and as many with no change; 365 days each. Found: change points within ±3 days of both boundaries. False: "
        f"change points on the series with no change (total). Time: per series (one core, shared machine).",
        "",
        "| sessions/day | method | planted found | false change points | ms per series |",
        "|---:|---|---:|---:|---:|",
        *rows,
        "",
        f"Ours and ruptures' Pelt with the same binomial cost gave the same change points on {agree} of {total} "
        f"planted/quiet pairs.",
    ])
    (HERE / "results" / "segmentation_vs_ruptures.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
