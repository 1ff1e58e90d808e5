"""How long erasing one person takes on a sample store: the deletes, and the rewrite of the
file that drops the deleted bytes (docs/adr/0117).

    PYTHONPATH=src python benchmarks/erase_bench.py --events 1000000 --out benchmarks/results/erase.md
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from machine import cpu_name, ram_gib

from shopfunnel.sample import write_sample
from shopfunnel.store.erase import compact_store, erase_person
from shopfunnel.store.store import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "sample.parquet"
        db = Path(tmp) / "shop.duckdb"
        write_sample(parquet, args.events, seed=5)
        with Store(db) as store:
            store.load(str(parquet))
            person, n = store.db.rows(
                "SELECT person_id, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC LIMIT 1")[0]
        size = db.stat().st_size
        t0, c0 = time.perf_counter(), time.process_time()
        with Store(db) as store:
            result = erase_person(store, person_id=person, requested_by="bench")
        t1, c1 = time.perf_counter(), time.process_time()
        compact_store(db)
        t2, c2 = time.perf_counter(), time.process_time()
        after = db.stat().st_size
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or "?"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"# Erasing one person ({args.events:,} sample events)",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB; load average "
        f"{os.getloadavg()[0]:.1f} at the end; commit {commit}. Command: `PYTHONPATH=src python "
        f"benchmarks/erase_bench.py --events {args.events}`.",
        "",
        "| step | wall s | CPU s |",
        "|---|---:|---:|",
        f"| find and delete the rows ({result.total_rows} rows of {n} events' person, "
        f"{len(result.rows)} tables), timeline | {t1 - t0:.2f} | {c1 - c0:.2f} |",
        f"| rewrite the file ({size / 2**20:.1f} MiB → {after / 2**20:.1f} MiB) | "
        f"{t2 - t1:.2f} | {c2 - c1:.2f} |",
        "",
        f"Peak RSS of the whole script (sample generation and load included): {rss:,.0f} MiB.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
