"""Run the benchmarks and assemble ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/run.py              # run each benchmark, then assemble
    .venv/bin/python benchmarks/run.py --collect    # only assemble RESULTS.md from results/*.md

Each benchmark script writes its own ``benchmarks/results/<topic>.md`` (figures, machine,
versions, the command that produced them); this script runs them one after another (they
are long: the funnel benchmark at 100M events takes tens of minutes) and writes
``RESULTS.md``: this machine and versions, then every topic's file in a fixed order.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from machine import cpu_name, ram_gib  # benchmarks/machine.py, beside this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ORDER = ["commands", "store", "funnel", "funnel_spark", "spark", "spark_s9_10m", "spark_s9_100m", "spark_s10_100m", "spark_s11_driver", "spark_s12_sessions", "spark_s13_report", "sample", "importers", "ga4", "stages", "diagnose", "incidents", "report", "clv", "recommend", "collector", "live"]
RUNS = [
    ["benchmarks/funnel_bench.py", "1m", "10m", "--runs", "3"],
    ["benchmarks/sample_bench.py"],
    ["benchmarks/importers_bench.py", "--rees46-rows", "1000000", "--ga4-rows", "100000"],
    ["benchmarks/stages_timing.py", "--events", "1000000"],
    ["benchmarks/diagnose_timing.py", "--events", "1000000"],
    ["benchmarks/report_bench.py", "--runs", "3"],
    ["benchmarks/clv_bench.py", "--runs", "3", "--write"],
    ["benchmarks/recommend_quality.py", "--events", "1000000", "--write"],
    ["benchmarks/collector_load.py", "--seconds", "60", "--out", "benchmarks/results/collector.md"],
    ["benchmarks/erase_bench.py", "--events", "1000000", "--out", "benchmarks/results/erase.md"],
    ["benchmarks/live_bench.py", "--fresh", "100000", "--runs", "5"],
    ["benchmarks/audiences_bench.py", "--events", "1000000", "--out", "benchmarks/results/audiences.md"],
]
PACKAGES = ["duckdb", "numba", "numpy", "pyarrow", "pandas", "polars", "scipy", "chdb", "pyspark", "fastapi", "uvicorn"]


def machine() -> str:
    mem = f", {ram_gib():.0f} GiB"
    cpu = cpu_name()
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return (f"{cpu}, {os.cpu_count()} cores{mem}; Linux {platform.release()}; "
            f"Python {platform.python_version()}; " + ", ".join(versions))


def collect() -> Path:
    results = HERE / "results"
    files = sorted(results.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    parts = [
        "# shopfunnel benchmark results",
        "",
        f"Assembled {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/run.py` from "
        "`benchmarks/results/*.md`; each section names the command, commit and conditions of its own run.",
        "",
        f"Machine and versions at assembly: {machine()}.",
        "",
        "The development machine is shared (2 cores); where a section reports wall and CPU time, "
        "CPU time is the steadier figure. Targets are checked by these scripts, never by timed unit tests.",
        "",
    ]
    for f in files:
        text = f.read_text(encoding="utf-8").strip()
        if text.startswith("# "):
            text = "## " + text[2:]
        text = "\n".join(("#" + line) if line.startswith("## ") and i else line
                         for i, line in enumerate(text.splitlines()))
        parts += [text, ""]
    out = HERE / "RESULTS.md"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collect", action="store_true", help="only assemble RESULTS.md")
    args = ap.parse_args()
    if not args.collect:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        for cmd in RUNS:
            print("running", " ".join(cmd), flush=True)
            subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, check=True)
    print("wrote", collect())


if __name__ == "__main__":
    main()
