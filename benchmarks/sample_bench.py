"""Throughput of the sample store generator, and of loading its output into the store.

Each measurement runs in a fresh Python process so its peak RSS is its own:

    PYTHONPATH=src python benchmarks/sample_bench.py                 # 1M, 10M, ingest 10M
    PYTHONPATH=src python benchmarks/sample_bench.py --big           # also 100M to Parquet
    PYTHONPATH=src python benchmarks/sample_bench.py --stage write --events 1000000

Stages: ``generate`` (events produced in memory block by block, nothing kept),
``write`` (write_sample to Parquet), ``ingest`` (Store(file).load(parquet) into a
new DuckDB file, with the time of each phase of the load).
Writes a Markdown table to benchmarks/results/sample.md unless --stage is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name, ram_gib  # benchmarks/machine.py, beside this script

HERE = Path(__file__).resolve().parent


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stage_generate(events: int, seed: int) -> dict:
    from shopfunnel.sample.engine import iter_blocks, make_plan

    t0, c0 = time.perf_counter(), _cpu()
    rows = sum(t.num_rows for t in iter_blocks(events, make_plan(seed, "2024-01-01", 120, ())))
    wall = time.perf_counter() - t0
    return {"rows": rows, "wall_s": wall, "cpu_s": _cpu() - c0}


def stage_write(events: int, seed: int, out: str) -> dict:
    from shopfunnel.sample import write_sample

    t0, c0 = time.perf_counter(), _cpu()
    write_sample(out, events, seed=seed)
    wall = time.perf_counter() - t0
    return {
        "rows": events,
        "wall_s": wall,
        "cpu_s": _cpu() - c0,
        "file_mib": os.path.getsize(out) / 2**20,
    }


def stage_ingest(parquet: str, db: str) -> dict:
    from shopfunnel.ingest import read
    from shopfunnel.store.store import Store

    phases: dict[str, float] = {}
    last = [time.perf_counter(), "staging"]

    def note(msg: str) -> None:
        now = time.perf_counter()
        phases[last[1]] = phases.get(last[1], 0.0) + now - last[0]
        last[:] = [now, msg]

    t0, c0 = time.perf_counter(), _cpu()
    with Store(db) as store:
        result = store.load_staged(read(parquet), progress=note)
        note("done")
        wall = time.perf_counter() - t0
        events = store.info()["events"]
    return {
        "rows": result.rows_added,
        "stored": events,
        "wall_s": wall,
        "cpu_s": _cpu() - c0,
        "phases_s": phases,
    }


def run_stage(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    import duckdb
    import numpy
    import pyarrow

    cpu, mem = cpu_name(), ram_gib()
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; Python {platform.python_version()}, "
        f"NumPy {numpy.__version__}, PyArrow {pyarrow.__version__}, DuckDB {duckdb.__version__}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=["generate", "write", "ingest"])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--db")
    ap.add_argument("--big", action="store_true", help="also write 100M events")
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    args = ap.parse_args()
    if args.stage:
        if args.stage == "generate":
            res = stage_generate(args.events, args.seed)
        elif args.stage == "write":
            res = stage_write(args.events, args.seed, args.out)
        else:
            res = stage_ingest(args.out, args.db)
        res["peak_rss_mib"] = _peak_rss_mib()
        print(json.dumps(res))
        return

    tmp = Path(args.tmp)
    rows = []
    sizes = [1_000_000, 10_000_000] + ([100_000_000] if args.big else [])
    for n in sizes[:2]:
        r = run_stage(["--stage", "generate", "--events", str(n)])
        rows.append(("generate (in memory)", n, r))
        print(rows[-1], flush=True)
    for n in sizes:
        out = tmp / f"sample_bench_{n}.parquet"
        r = run_stage(["--stage", "write", "--events", str(n), "--out", str(out)])
        rows.append(("write_sample → Parquet", n, r))
        print(rows[-1], flush=True)
    parquet = tmp / "sample_bench_10000000.parquet"
    db = tmp / "sample_bench.duckdb"
    for suffix in ("", ".wal"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    r = run_stage(["--stage", "ingest", "--out", str(parquet), "--db", str(db)])
    rows.append(("Store.load(parquet) into a new file", 10_000_000, r))
    print(rows[-1], flush=True)

    lines = [
        "# Sample store generator: throughput",
        "",
        f"Machine: {machine()}.",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
        "`PYTHONPATH=src python benchmarks/sample_bench.py"
        + (" --big" if args.big else "")
        + "` (each row a fresh process; the machine was "
        "shared with other jobs, so wall times are noisy: CPU time is given too).",
        "",
        "| what | events | wall s | CPU s | events/s (wall) | peak RSS MiB | notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for what, n, r in rows:
        notes = ""
        if "file_mib" in r:
            notes = f"{r['file_mib']:.0f} MiB Parquet (zstd)"
        if "phases_s" in r:
            notes = "phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["phases_s"].items())
        lines.append(
            f"| {what} | {n:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{n / r['wall_s']:,.0f} | {r['peak_rss_mib']:,.0f} | {notes} |"
        )
    out = HERE / "results" / "sample.md"
    out.parent.mkdir(exist_ok=True)
    existing = out.read_text() if out.exists() else ""
    marker = "\n## Notes\n"
    tail = existing[existing.index(marker) :] if marker in existing else ""
    out.write_text("\n".join(lines) + "\n" + tail)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
