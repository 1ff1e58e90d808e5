"""CPU per event of the collector's store append, in one process (no server, no load).

What the background writer does with a round of spool records (``Writer.load_now``: the
JSON lines read into Arrow, then ``Store.load_staged`` with the live timeline): the
records are the collector's own, converted from the load generator's Segment-shaped bodies
(``collector_load.segment_template``, 500 messages a request) by ``intake.prepare``.
A fresh file store receives ``--loads`` rounds of ``--batch`` events one after the other
(the store grows as a running collector's does); prints CPU and wall seconds per event
for each round, the median, and with ``--profile`` the SQL statements that took longest
(DuckDB's own timings, summed by statement).

    PYTHONPATH=src python benchmarks/collector_append.py --loads 12 --batch 10000 [--base 1000000]
    PYTHONPATH=src python benchmarks/collector_append.py --loads 6 --batch 20000 --base 300000 --threads 1

``--base`` first stores that many events (in loads of 100,000, not timed): a collector that
has run for a while appends to a large table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector_load import SEQ, segment_template  # noqa: E402


def main() -> None:
    from shopfunnel.server import intake
    from shopfunnel.server.writer import Writer
    from shopfunnel.store.store import Store

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--loads", type=int, default=12)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--base", type=int, default=0, help="events stored before the timed rounds")
    ap.add_argument("--profile", action="store_true", help="print the slowest SQL statements")
    ap.add_argument("--threads", type=int, default=0,
                    help="DuckDB threads for the timed rounds (the server's writer uses 1 while "
                         "events arrive, ADR 0184; 0: DuckDB's default)")
    ap.add_argument("--checkpoint-threshold", default=None,
                    help="DuckDB's checkpoint_threshold for the timed rounds (e.g. 1GB: deferred "
                         "checkpoints); the final CHECKPOINT is timed "
                         "and counted in the mean either way")
    args = ap.parse_args()

    template = segment_template(0, 500)
    now = datetime.now(UTC)
    rounds = []
    for r in range(args.loads):
        data = b"".join(
            intake.prepare(
                template.replace(SEQ.encode(), f"{r}x{i}".encode()), "batch", now, 32 * 1024
            ).data
            for i in range(args.batch // 500)
        )
        rounds.append(data)
    timings: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "live.duckdb")
        writer = Writer(store, spool=None, store_lock=threading.Lock())  # type: ignore[arg-type]
        for b in range(args.base // 100_000):  # earlier traffic: other visitors, other ids
            writer.load_now(
                b"".join(
                    intake.prepare(
                        template.replace(SEQ.encode(), f"base{b}x{i}".encode()),
                        "batch",
                        now,
                        32 * 1024,
                    ).data
                    for i in range(200)
                )
            )
        if args.threads:
            store.db.execute(f"SET threads = {int(args.threads)}")
        store.db.execute("CHECKPOINT")  # the timed rounds start from a checkpointed store
        if args.checkpoint_threshold:
            from shopfunnel.store.db import quote_literal

            store.db.execute(f"SET checkpoint_threshold = {quote_literal(args.checkpoint_threshold)}")
        if args.profile:
            _trace(store, timings)
        per_event = []
        total_cpu, total_events = 0.0, 0
        for r, data in enumerate(rounds):
            t, c = time.perf_counter(), time.process_time()
            writer.load_now(data)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            n = data.count(b"\n")
            per_event.append(cpu / n * 1e6)
            total_cpu, total_events = total_cpu + cpu, total_events + n
            print(
                json.dumps(
                    {
                        "round": r,
                        "events": n,
                        "wall_us_per_event": round(wall / n * 1e6, 1),
                        "cpu_us_per_event": round(cpu / n * 1e6, 1),
                        "stored": writer.loaded,
                    }
                )
            )
        c = time.process_time()
        store.db.execute("CHECKPOINT")  # what a later checkpoint would still owe
        final = time.process_time() - c
        store.close()
    print(
        json.dumps(
            {
                "median_cpu_us_per_event_after_first": round(statistics.median(per_event[1:]), 1),
                "final_checkpoint_cpu_s": round(final, 3),
                "mean_cpu_us_per_event_with_final_checkpoint": round(
                    (total_cpu + final) / total_events * 1e6, 1
                ),
            }
        )
    )
    if args.profile:
        total = sum(sum(v) for v in timings.values())
        for sql, ts in sorted(timings.items(), key=lambda kv: -sum(kv[1]))[:15]:
            print(
                f"{sum(ts):7.3f} s {sum(ts) / total:5.1%} x{len(ts):3d}  {' '.join(sql.split())[:150]}"
            )


def _trace(store, timings: dict[str, list[float]]) -> None:
    """Wrap the store's DuckDB calls to sum wall time by statement (first 300 chars)."""
    db = store.db
    for name in ("execute", "rows", "scalar"):
        orig = getattr(db, name)

        def wrapped(sql, *a, _orig=orig, **k):
            t = time.perf_counter()
            try:
                return _orig(sql, *a, **k)
            finally:
                timings.setdefault(str(sql)[:300], []).append(time.perf_counter() - t)

        setattr(db, name, wrapped)


if __name__ == "__main__":
    main()
