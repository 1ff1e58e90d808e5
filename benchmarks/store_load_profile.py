"""Where `Store.load` spends its time on a Parquet file, and the floor a bare copy sets.

    PYTHONPATH=src python benchmarks/store_load_profile.py events.parquet [--top 8]

Times every SQL statement the store runs (by wrapping ``Database.execute``, ``rows`` and
``scalar``) while loading the file into a new DuckDB file, then times
``CREATE TABLE AS SELECT * FROM read_parquet(...)`` of the same file into a new file and
into memory. Wall and CPU (user + system of this process, all threads) are printed.
Used for the notes in benchmarks/results/sample.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from shopfunnel import db as dbmod
from shopfunnel.store import Store


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("parquet")
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    timings: list[tuple[float, float, str]] = []

    def timed(method):
        def wrapper(self, sql, params=None):
            w0, c0 = time.perf_counter(), _cpu()
            out = method(self, sql, params)
            timings.append((time.perf_counter() - w0, _cpu() - c0, " ".join(sql.split())[:140]))
            return out

        return wrapper

    for name in ("execute", "rows", "scalar"):
        setattr(dbmod.Database, name, timed(getattr(dbmod.Database, name)))

    with tempfile.TemporaryDirectory() as tmp:
        w0, c0 = time.perf_counter(), _cpu()
        with Store(Path(tmp) / "load.duckdb") as store:
            result = store.load(args.parquet)
        print(
            f"Store.load: {result.rows_added:,} rows, wall {time.perf_counter() - w0:.1f} s, "
            f"cpu {_cpu() - c0:.1f} s"
        )
        for wall, cpu, sql in sorted(timings, reverse=True)[: args.top]:
            print(f"  {wall:7.1f} {cpu:7.1f}  {sql}")
        for target in (str(Path(tmp) / "copy.duckdb"), ":memory:"):
            con = duckdb.connect(target)
            w0, c0 = time.perf_counter(), _cpu()
            con.execute(
                "CREATE TABLE x AS SELECT * FROM read_parquet(?)", [os.fspath(args.parquet)]
            ).fetchall()
            print(
                f"bare copy into {'a file' if target != ':memory:' else 'memory'}: wall "
                f"{time.perf_counter() - w0:.1f} s, cpu {_cpu() - c0:.1f} s"
            )
            con.close()


if __name__ == "__main__":
    main()
