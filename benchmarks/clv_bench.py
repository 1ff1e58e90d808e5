"""How long `shopfunnel clv` takes on the full CDNOW master file (23,570 customers).

Run from the repository root:

    PYTHONPATH=src .venv/bin/python benchmarks/clv_bench.py [--runs 3] [--write]

It loads the built-in data set into a temporary store with `shopfunnel load-dataset`,
then times the whole command (`shopfunnel clv --db … --format csv --out …`, a fresh
process each run: interpreter start, imports, reading the orders, both fits, the
predictions and writing 23,570 rows) and, in this process, each step on its own.
`--write` puts the table in benchmarks/results/clv.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def shopfunnel(*args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "shopfunnel", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE.parent / "src"))
    from shopfunnel.customers.clv import (
        BetaGeoModel,
        GammaGammaModel,
        customer_value,
        summary_from_orders,
    )
    from shopfunnel.store.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "cdnow.duckdb")
        load_s = shopfunnel("load-dataset", "cdnow", "--db", db)
        runs = [shopfunnel("clv", "--db", db, "--format", "csv", "--out", str(Path(tmp) / "c.csv"))
                for _ in range(args.runs)]
        rows = len((Path(tmp) / "c.csv").read_text(encoding="utf-8").splitlines()) - 1

        steps: dict[str, float] = {}
        t = time.perf_counter()
        with Store(db, read_only=True) as store:
            orders = store.table("orders")
        steps["read orders from the store"] = time.perf_counter() - t
        t = time.perf_counter()
        summary = summary_from_orders(orders)
        steps["summary_from_orders"] = time.perf_counter() - t
        t = time.perf_counter()
        bgnbd = BetaGeoModel().fit(summary)
        steps["BetaGeoModel.fit"] = time.perf_counter() - t
        t = time.perf_counter()
        spend = GammaGammaModel().fit(summary)
        steps["GammaGammaModel.fit"] = time.perf_counter() - t
        t = time.perf_counter()
        customer_value(summary, bgnbd, spend, horizon=52)
        steps["customer_value (52 weeks)"] = time.perf_counter() - t

    lines = [
        "# `shopfunnel clv` on CDNOW master",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} with `benchmarks/clv_bench.py` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Store: CDNOW master loaded by `shopfunnel load-dataset cdnow` "
        f"({load_s:.1f} s, 69,659 orders); output {rows:,} customers. Load average at the "
        f"end: {os.getloadavg()[0]:.1f} (other jobs were running; the whole-process time "
        "includes about 1–3 s of interpreter start and imports).",
        "",
        "| what | seconds |",
        "|---|---|",
        f"| `shopfunnel clv --db cdnow.duckdb --format csv --out c.csv`, whole process, "
        f"median of {len(runs)} | {statistics.median(runs):.2f} |",
        f"| runs | {', '.join(f'{r:.2f}' for r in runs)} |",
    ]
    lines += [f"| in process: {name} | {secs:.3f} |" for name, secs in steps.items()]
    lines += [
        "",
        "BG/NBD on all 23,570 customers (calibration to 1998-06-30): "
        f"r = {bgnbd.params_['r']:.4f}, "
        f"α = {bgnbd.params_['alpha']:.3f}, a = {bgnbd.params_['a']:.4f}, "
        f"b = {bgnbd.params_['b']:.3f}, log-likelihood {bgnbd.log_likelihood_:,.1f}. "
        f"Gamma-Gamma on {spend.n_customers_:,} repeat buyers: p = {spend.params_['p']:.3f}, "
        f"q = {spend.params_['q']:.3f}, γ = {spend.params_['gamma']:.3f}.",
        "",
        "Target (issue 5): under 60 s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        out = HERE / "results" / "clv.md"
        out.parent.mkdir(exist_ok=True)
        out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
