"""How long the HTML report takes for a 1M-event sample store, and how big it is.

Target (issue 6): under 30 s and under 10 MB for a store of 1,000,000 events.

    PYTHONPATH=src python benchmarks/report_bench.py [--events 1000000] [--runs 3] [--keep DIR]

Steps: write the sample store's events (seed 0, no planted incident) to Parquet, load them
into a DuckDB store file (timed apart, not part of the report), then run
``shopfunnel report --db … -o …`` ``--runs`` times, each in a new process, and time each run
end to end (Python start-up and imports included: what a user waits for). One more run in
this process gives the seconds per section. Prints a Markdown table and writes it to
``benchmarks/results/report.md``.
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
    parser.add_argument("--note", default="", help="a line added to the results (what code was measured)")
    args = parser.parse_args()

    import duckdb

    from shopfunnel.report import make_report
    from shopfunnel.sample import write_sample
    from shopfunnel.store.store import Store

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

    out = folder / "report.html"
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1] / "src"))
    runs = []
    for i in range(args.runs):
        out.unlink(missing_ok=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "shopfunnel", "report", "--db", str(db), "-o", str(out),
                        "--title", "Sample store"], check=True, env=env, stdout=subprocess.DEVNULL)
        runs.append(time.perf_counter() - t)
        print(f"run {i + 1}: {runs[-1]:.2f} s")
    size_mb = out.stat().st_size / 1e6
    with Store(db, read_only=True) as store:
        t = time.perf_counter()
        report = make_report(store, title="Sample store")
        in_process = time.perf_counter() - t
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
        *([args.note] if args.note else []),
        "",
        "| measure | result | target | met |",
        "|---|---|---|---|",
        f"| `shopfunnel report` end to end, new process each run (median of {len(runs)}; runs "
        f"{', '.join(f'{r:.1f}' for r in runs)} s) "
        f"| {median:.1f} s | < {TARGET_SECONDS:.0f} s | {'yes' if median < TARGET_SECONDS else 'NO'} |",
        f"| report file size | {size_mb:.2f} MB (of which plotly.js {plotly_mb:.2f} MB) | < {TARGET_MB:.0f} MB "
        f"| {'yes' if size_mb < TARGET_MB else 'NO'} |",
        "",
        "The first run after an install also compiles the funnel's numba kernels (cached on disk "
        "for later runs), so it is the slowest.",
        "",
        f"Seconds per section (one more run inside the benchmark process, {in_process:.1f} s in all):",
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
