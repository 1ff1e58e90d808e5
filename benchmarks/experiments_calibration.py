"""Calibration of the experiment analysis on the sample store (issue 16): how often it finds
an effect that is not there (false-positive rate, A/A tests), how often it finds one that is
(power, a planted checkout effect), and how much CUPED shrinks the variance.

    PYTHONPATH=src python benchmarks/experiments_calibration.py                # 200 / 30 / 20 seeds
    PYTHONPATH=src python benchmarks/experiments_calibration.py --aa-seeds 20  # quicker

Each seed is a fresh sample store (``generate_sample(..., experiment=PlantedExperiment(...))``
loaded into an in-memory store) read by ``analyze_experiment`` with its defaults (7-day
window after exposure, minimum 100 units per arm). Writes benchmarks/results/experiments.md.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import subprocess
import time
from pathlib import Path

from shopfunnel.experiments import (
    analyze_experiment,
    conversion,
    revenue_per_visitor,
)
from shopfunnel.sample import PlantedExperiment, generate_sample
from shopfunnel.store.store import Store

HERE = Path(__file__).resolve().parent
METRICS = [conversion("purchase", from_event="add_payment_info"),
           conversion("purchase", from_event="begin_checkout"),
           conversion("purchase"), revenue_per_visitor()]


def store_for(seed: int, n_events: int, experiment: PlantedExperiment) -> Store:
    store = Store(":memory:")
    store.load(generate_sample(n_events, seed=seed, experiment=experiment))
    return store


def rates(rows: list[dict], key: str) -> dict[str, float]:
    names = [m.name for m in METRICS]
    return {n: sum(r[n][key] for r in rows) / len(rows) for n in names}


def run_seed(seed: int, n_events: int, effect: float) -> dict:
    store = store_for(seed, n_events, PlantedExperiment(effect=effect))
    freq = analyze_experiment(store, "checkout-v2", METRICS).results.set_index("metric")
    bayes = analyze_experiment(store, "checkout-v2", METRICS,
                               engine="bayesian").results.set_index("metric")
    srm = analyze_experiment(store, "checkout-v2", METRICS[:1]).srm
    store.close()
    out: dict = {"srm": srm.mismatch}
    for m in METRICS:
        p, ctw = freq.loc[m.name, "p_value"], bayes.loc[m.name, "chance_to_win"]
        out[m.name] = {"p05": bool(p < 0.05), "ctw95": bool(ctw > 0.95 or ctw < 0.05),
                       "refused": bool(math.isnan(p))}
    out["any"] = any(out[m.name]["p05"] for m in METRICS)
    return out


def cuped_seed(seed: int, n_events: int, start: str, cuped_days: int) -> dict:
    store = store_for(seed, n_events, PlantedExperiment(start=start))
    metrics = [revenue_per_visitor(), conversion("purchase")]
    plain = analyze_experiment(store, "checkout-v2", metrics).results.set_index("metric")
    adjusted = analyze_experiment(store, "checkout-v2", metrics,
                                  cuped_days=cuped_days).results.set_index("metric")
    store.close()
    # the relative difference's variance is se²; CUPED keeps the same point of reference
    return {m.name: 1 - (adjusted.loc[m.name, "ci_upper"] - adjusted.loc[m.name, "ci_lower"])**2
            / (plain.loc[m.name, "ci_upper"] - plain.loc[m.name, "ci_lower"])**2
            for m in metrics}


def wilson(k: int, n: int) -> str:
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{100 * max(0, centre - half):.1f}–{100 * min(1, centre + half):.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--aa-seeds", type=int, default=200)
    ap.add_argument("--aa-events", type=int, default=100_000)
    ap.add_argument("--power-seeds", type=int, default=30)
    ap.add_argument("--power-events", type=int, default=200_000)
    ap.add_argument("--effect", type=float, default=1.0)
    ap.add_argument("--cuped-seeds", type=int, default=20)
    ap.add_argument("--cuped-events", type=int, default=300_000)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "experiments.md")
    args = ap.parse_args()
    started = time.time()
    aa = [run_seed(1000 + s, args.aa_events, 0.0) for s in range(args.aa_seeds)]
    power = [run_seed(2000 + s, args.power_events, args.effect) for s in range(args.power_seeds)]
    cuped = [cuped_seed(3000 + s, args.cuped_events, "2024-03-01", 60)
             for s in range(args.cuped_seeds)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()
    lines = [
        "## Experiments: false positives, power and CUPED on the sample store (issue 16)",
        "",
        f"`PYTHONPATH=src python benchmarks/experiments_calibration.py --aa-seeds {args.aa_seeds} "
        f"--power-seeds {args.power_seeds} --cuped-seeds {args.cuped_seeds}` at commit {commit}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.time() - started:.0f} s "
        f"(Python {platform.python_version()}).",
        "",
        f"**A/A** ({args.aa_seeds} seeds, {args.aa_events:,} events each, no planted effect, "
        "50/50 split): share of seeds where the analysis calls a difference. Frequentist: "
        "two-sided p < 0.05 (expected 5%); Bayesian: chance to win above 95% or below 5%, "
        "a winner or a loser called (expected 10% with the flat prior: 5% in each tail). "
        "95% Wilson interval in brackets.",
        "",
        "| metric | frequentist p < 0.05 | Bayesian ctw > 95% or < 5% | refused |",
        "|---|---|---|---|",
    ]
    n = len(aa)
    for m in METRICS:
        k = sum(r[m.name]["p05"] for r in aa)
        b = sum(r[m.name]["ctw95"] for r in aa)
        ref = sum(r[m.name]["refused"] for r in aa)
        lines.append(f"| {m.name} | {100 * k / n:.1f}% ({wilson(k, n)}) | "
                     f"{100 * b / n:.1f}% ({wilson(b, n)}) | {ref} |")
    k_any = sum(r["any"] for r in aa)
    k_srm = sum(r["srm"] for r in aa)
    lines += ["", f"Any of the four metrics at p < 0.05 in the same seed: {100 * k_any / n:.1f}% "
              f"({wilson(k_any, n)}): reading several metrics multiplies the chances. SRM "
              f"flagged (p < 0.001): {k_srm} of {n}.", ""]
    n = len(power)
    lines += [f"**Power** ({n} seeds, {args.power_events:,} events, variant 1 gets "
              f"{args.effect:g} log-odds at the purchase step): share of seeds with p < 0.05.", "",
              "| metric | detected |", "|---|---|"]
    for m in METRICS:
        k = sum(r[m.name]["p05"] for r in power)
        lines.append(f"| {m.name} | {100 * k / n:.0f}% ({wilson(k, n)}) |")
    lines += ["", f"**CUPED** ({len(cuped)} seeds, {args.cuped_events:,} events, the experiment "
              "starting on day 61 of 120, the 60 days before each person's exposure as the "
              "covariate): variance reduction of the relative difference, "
              "1 − (CUPED interval width / plain interval width)².", "",
              "| metric | median | range |", "|---|---|---|"]
    for name in cuped[0]:
        values = [c[name] for c in cuped]
        lines.append(f"| {name} | {100 * statistics.median(values):.1f}% | "
                     f"{100 * min(values):.1f}% to {100 * max(values):.1f}% |")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
