"""One person's journey on a large store: in-process and as a whole `shopfunnel person` run.

    PYTHONPATH=src python benchmarks/journey_bench.py STORE.duckdb [--runs 3]

Picks the identified person with the most events and one anonymous id stitched to them,
then times ``person_journey`` in-process (the dashboard's cost per page, the store already
open) and ``python -m shopfunnel person ID --format json`` as its own process (found by
person id, and by the anonymous id, which takes the search's fallback). Writes
``benchmarks/results/journey.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_name, ram_gib  # benchmarks/machine.py, beside this script

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from shopfunnel.journey import person_journey
    from shopfunnel.store.store import Store

    load = os.getloadavg()[0]
    with Store(args.store, read_only=True) as store:
        events = int(store.db.scalar("SELECT count(*) FROM events"))
        person, n = store.db.rows(
            "SELECT person_id, count(*) AS n FROM events WHERE user_id IS NOT NULL "
            "GROUP BY 1 ORDER BY n DESC, person_id LIMIT 1")[0]
        anonymous = store.db.scalar(
            "SELECT anonymous_id FROM identities WHERE person_id = ? ORDER BY 1 LIMIT 1", [person])
        inproc = []
        person_journey(store, person)  # warm
        for _ in range(args.runs):
            t = time.perf_counter()
            person_journey(store, person)
            inproc.append(time.perf_counter() - t)
    rows = [("person_journey (in-process, store open)", inproc)]
    for label, ident in (("shopfunnel person PERSON_ID", person), ("shopfunnel person ANONYMOUS_ID", anonymous)):
        runs = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "shopfunnel", "person", ident, "--db", args.store,
                            "--format", "json"], check=True, stdout=subprocess.DEVNULL)
            runs.append(time.perf_counter() - t)
        rows.append((label, runs))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# One person's journey on a large store", "",
        f"{now}; {cpu_name()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB; load average before: {load:.2f}.",
        f"`PYTHONPATH=src python benchmarks/journey_bench.py {args.store} --runs {args.runs}`", "",
        f"Store: {events:,} events; the person has {n:,} events carrying their customer id.", "",
        "| what | median s | range s |", "|---|---:|---:|",
    ]
    for label, runs in rows:
        lines.append(f"| {label} | {statistics.median(runs):.2f} | {min(runs):.2f}–{max(runs):.2f} |")
    out = HERE / "results" / "journey.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
