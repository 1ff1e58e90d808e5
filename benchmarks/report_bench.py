"""How long the HTML report takes for a 1M-event sample store, and how big it is.

Target (issue 6): under 30 s and under 10 MB for a store of 1,000,000 events.

    PYTHONPATH=src python benchmarks/report_bench.py [--events 1000000] [--runs 3] [--keep DIR]

Steps: write the sample store's events (seed 0, the generator's default incidents off) to
Parquet, load them into a DuckDB store file (timed apart, not part of the report), then build
the report ``--runs`` times on that file, each time from a freshly opened store (so no cache
carries over), and write the last page. Prints a Markdown table and writes it to
``benchmarks/results/report.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "report.md"
TARGET_SECONDS = 30.0
TARGET_MB = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the store and report in this folder")
    parser.add_argument("--no-write", action="store_true", help="do not write results/report.md")
    args = parser.parse_args()

    import duckdb

    from shopfunnel.report import make_report
    from shopfunnel.sample import write_sample
    from shopfunnel.store import Store

    folder = args.keep or Path(tempfile.mkdtemp(prefix="report-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    parquet, db = folder / "sample.parquet", folder / "sample.duckdb"
    for stale in (db, Path(str(db) + ".wal")):
        stale.unlink(missing_ok=True)

    t = time.perf_counter()
    write_sample(parquet, args.events, seed=args.seed)
    generate_s = time.perf_counter() - t
    t = time.perf_counter()
    with Store(db) as store:
        store.load(parquet)
        info = store.info()
    load_s = time.perf_counter() - t
    print(f"sample: {info['events']:,} events, {info['persons']:,} persons, {info['orders']:,} orders; "
          f"generated in {generate_s:.1f} s, loaded in {load_s:.1f} s")

    runs, report = [], None
    for i in range(args.runs):
        with Store(db, read_only=True) as store:
            t = time.perf_counter()
            report = make_report(store, title="Sample store")
            runs.append(time.perf_counter() - t)
        print(f"run {i + 1}: {runs[-1]:.2f} s")
    assert report is not None
    out = folder / "report.html"
    out.write_text(report.html, encoding="utf-8")
    size_mb = out.stat().st_size / 1e6
    from shopfunnel.report.render import plotly_js

    plotly_mb = len(plotly_js().encode()) / 1e6
    median = statistics.median(runs)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())

    lines = [
        "# HTML report: time and size for a 1M-event store",
        "",
        f"Command: `PYTHONPATH=src python benchmarks/report_bench.py --events {args.events} --runs {args.runs}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}. Load average at the end (1, 5, 15 min): {load} "
        "(other jobs were running on the machine).",
        f"Store: sample seed {args.seed}, {info['events']:,} events, {info['persons']:,} persons, "
        f"{info['sessions']:,} sessions, {info['orders']:,} orders "
        f"(generated in {generate_s:.1f} s, loaded in {load_s:.1f} s; not part of the report time).",
        "",
        "| measure | result | target | met |",
        "|---|---|---|---|",
        f"| time to build the report (median of {len(runs)}; runs {', '.join(f'{r:.1f}' for r in runs)} s) "
        f"| {median:.1f} s | < {TARGET_SECONDS:.0f} s | {'yes' if median < TARGET_SECONDS else 'NO'} |",
        f"| report file size | {size_mb:.2f} MB (of which plotly.js {plotly_mb:.2f} MB) | < {TARGET_MB:.0f} MB "
        f"| {'yes' if size_mb < TARGET_MB else 'NO'} |",
        "",
        "Seconds per section (last run):",
        "",
        "| section | seconds | note |",
        "|---|---|---|",
    ]
    for sid, seconds in report.seconds.items():
        lines.append(f"| {sid} | {seconds:.2f} | {report.problems.get(sid, '')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text, encoding="utf-8")
        print(f"wrote {RESULTS}")
    print(f"report: {out}")


if __name__ == "__main__":
    main()
