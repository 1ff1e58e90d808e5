"""Where `Store.load` spends its time on a Parquet file, and the floor a bare copy sets.

    PYTHONPATH=src python benchmarks/store_load_profile.py events.parquet [--top 8]

Times every SQL statement the store runs (by wrapping ``Database.execute``, ``rows`` and
``scalar``) while loading the file into a new DuckDB file, then times
``CREATE TABLE AS SELECT * FROM read_parquet(...)`` of the same file into a new file and
into memory. Wall and CPU (user + system of this process, all threads) are printed, with
the cores used (CPU / wall: near 2 on this machine only when nothing else runs) and the
1-minute load average before each step. ``--runs N`` repeats the whole measurement.
Used for the notes in benchmarks/results/store.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from shopfunnel.store import db as dbmod
from shopfunnel.store.store import Store


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("parquet")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    for _ in range(args.runs):
        run_once(args.parquet, args.top)


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def _report(what: str, rows: int, wall: float, cpu: float, load: str) -> None:
    print(f"{what}: wall {wall:.1f} s, cpu {cpu:.1f} s ({rows / wall:,.0f} events/s, "
          f"cores {cpu / wall:.2f}, load average {load})")


def run_once(parquet: str, top: int) -> None:
    timings: list[tuple[float, float, str]] = []

    def timed(method):
        def wrapper(self, sql, params=None):
            w0, c0 = time.perf_counter(), _cpu()
            out = method(self, sql, params)
            timings.append((time.perf_counter() - w0, _cpu() - c0, " ".join(sql.split())[:140]))
            return out

        return wrapper

    originals = {name: getattr(dbmod.Database, name) for name in ("execute", "rows", "scalar")}
    for name, method in originals.items():
        setattr(dbmod.Database, name, timed(method))

    with tempfile.TemporaryDirectory() as tmp:
        load = _load()
        w0, c0 = time.perf_counter(), _cpu()
        with Store(Path(tmp) / "load.duckdb") as store:
            result = store.load(parquet)
        _report(f"Store.load {result.rows_added:,} rows", result.rows_added,
                time.perf_counter() - w0, _cpu() - c0, load)
        for name, method in originals.items():
            setattr(dbmod.Database, name, method)
        for wall, cpu, sql in sorted(timings, reverse=True)[:top]:
            print(f"  {wall:7.1f} {cpu:7.1f}  {sql}")
        for target in (str(Path(tmp) / "copy.duckdb"), ":memory:"):
            con = duckdb.connect(target)
            load = _load()
            w0, c0 = time.perf_counter(), _cpu()
            con.execute(
                "CREATE TABLE x AS SELECT * FROM read_parquet(?)", [os.fspath(parquet)]
            ).fetchall()
            _report(f"bare copy into {'a file' if target != ':memory:' else 'memory'}",
                    result.rows_added, time.perf_counter() - w0, _cpu() - c0, load)
            con.close()


if __name__ == "__main__":
    main()
