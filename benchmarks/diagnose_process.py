"""`shopfunnel diagnose` as a user runs it: whole process, wall and CPU time, peak memory.

    PYTHONPATH=src python benchmarks/diagnose_process.py 1m=/work/bench/s1m.duckdb \
        10m=/work/bench/s10m.duckdb [--runs 5]

Each LABEL=STORE is a store already loaded (``shopfunnel sample`` + ``shopfunnel ingest``)
with its sorted timeline built (one ``shopfunnel funnel`` run): every timing is on a warm
store. Each run is ``python -m shopfunnel diagnose --db STORE`` as its own process; the
table gives the median and range of wall time, the median CPU time (user + system of the
process and its threads, from ``wait4``: steadier than wall time on a shared machine), the
peak RSS and the load average before the runs. Writes the section at the top of
``benchmarks/results/diagnose.md`` (earlier sections are kept below it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_name, ram_gib  # benchmarks/machine.py, beside this script

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "diagnose.md"
TITLE = "# Diagnosis timing\n"


def run(db: str) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one `shopfunnel diagnose` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "shopfunnel", "diagnose", "--db", db],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        err = proc.stderr.read().decode(errors="replace")[-600:] if proc.stderr else ""
        raise SystemExit(f"shopfunnel diagnose --db {db} failed:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def events_in(db: str) -> int:
    import duckdb

    with duckdb.connect(db, read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM events").fetchone()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stores", nargs="+", help="LABEL=STORE, e.g. 10m=/work/bench/s10m.duckdb")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                            text=True).stdout.strip()
    versions = ", ".join(f"{p} {md.version(p)}" for p in ("duckdb", "numpy", "pandas", "pyarrow", "scipy", "numba"))
    rows = []
    for spec in args.stores:
        label, _, db = spec.partition("=")
        n = events_in(db)
        load = os.getloadavg()[0]
        runs = [run(db) for _ in range(args.runs)]
        walls = [r[0] for r in runs]
        row = (label, n, statistics.median(walls), min(walls), max(walls),
               statistics.median(r[1] for r in runs), max(r[2] for r in runs), load)
        rows.append(row)
        print(f"{label}: {n:,} events, wall {row[2]:.2f} s ({row[3]:.2f}–{row[4]:.2f}), "
              f"CPU {row[5]:.2f} s, {row[6]:,.0f} MiB, load before {load:.2f}", flush=True)
    stamp = dt.datetime.now(dt.UTC)
    section = "\n".join([
        f"## `shopfunnel diagnose`, whole process ({stamp:%Y-%m-%d %H:%M} UTC, commit {commit})",
        "",
        f"{cpu_name()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB; Linux {platform.release()}; "
        f"Python {platform.python_version()}; {versions}.",
        f"`PYTHONPATH=src python benchmarks/diagnose_process.py {' '.join(args.stores)} --runs {args.runs}`",
        "",
        "Sample stores (`shopfunnel sample --events N --seed 1`, `shopfunnel ingest`, timeline built by one "
        "`shopfunnel funnel`); each run is `python -m shopfunnel diagnose --db STORE` (table output), "
        "start-up and imports included. CPU = user + system time of the process and its threads.",
        "",
        "| store | events | wall median s | wall range s | CPU median s | peak RSS MiB | load average before |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {r[0]} | {r[1]:,} | {r[2]:.2f} | {r[3]:.2f}–{r[4]:.2f} | {r[5]:.2f} | {r[6]:,.0f} | {r[7]:.2f} |"
          for r in rows],
        "",
    ])
    earlier = OUT.read_text(encoding="utf-8").removeprefix(TITLE).lstrip("\n") if OUT.exists() else ""
    OUT.write_text(TITLE + "\n" + section + "\n" + earlier, encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
