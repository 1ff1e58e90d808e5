"""Time the diagnosis on a sample store with the three planted incidents.

    python benchmarks/diagnose_timing.py --events 1000000 [--db /tmp/diag_1m.duckdb] [--runs 3] [--process]

Builds the store with the sample generator (seed 1; a mobile checkout failure on
2024-02-10 for 3 days, a 12-hour payment outage on 2024-03-05 10:00, a 4x traffic spike
of campaign flash_promo on paid social on 2024-03-20 for 2 days) unless ``--db`` already
holds events, then times each part and the whole ``diagnose()`` call and checks that
the incidents found are the planted ones. With ``--process``, the totals are whole
processes instead: ``python -m shopfunnel diagnose --db DB --format json`` (start-up,
imports, the store opened read-only, every analysis and the JSON), wall clock.
Results: benchmarks/RESULTS.md ("Diagnosis timing").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from shopfunnel.diagnosis.baselines import period_over_period, segment_gaps
from shopfunnel.diagnosis.checkout import checkout_findings
from shopfunnel.diagnosis.correlation import correlation_findings
from shopfunnel.diagnosis.diagnose import diagnose
from shopfunnel.diagnosis.incidents import find_incidents
from shopfunnel.diagnosis.level_shifts import find_level_shifts
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.sample import CheckoutFailure, PaymentOutage, TrafficSpike, generate_sample
from shopfunnel.store.store import Store

INCIDENTS = [CheckoutFailure("2024-02-10", 3, "mobile", "add_payment_info"), PaymentOutage("2024-03-05T10:00", 12),
             TrafficSpike("2024-03-20", 2, "flash_promo", "paid social", 4.0)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--process", action="store_true", help="time whole `shopfunnel diagnose` processes")
    args = ap.parse_args()
    db = Path(args.db or f"/tmp/diag_{args.events}.duckdb")
    if not db.exists():
        with Store(db) as store:
            store.load(generate_sample(args.events, seed=1, incidents=INCIDENTS))
    with Store(db, read_only=True) as store:
        n = store.db.scalar("SELECT count(*) FROM events")
        totals = []
        result = None
        for _ in range(args.runs):
            t = time.perf_counter()
            if args.process:
                subprocess.run([sys.executable, "-m", "shopfunnel", "diagnose", "--db", str(db), "--format", "json"],
                               check=True, stdout=subprocess.DEVNULL)
            else:
                result = diagnose(store, model={})
            totals.append(time.perf_counter() - t)
        if result is None:
            result = diagnose(store, model={})
        levels = SessionLevels(store)
        parts = {}
        for name, fn in [
            ("incident scan", lambda: find_incidents(levels)),
            ("lasting incidents (365 days)", lambda: _lasting(store, result.end)),
            ("period over period", lambda: period_over_period(levels, result.end)),
            ("segments", lambda: segment_gaps(levels, None, None)),
            ("checkout", lambda: checkout_findings(store, levels)),
            ("correlation", lambda: correlation_findings(store, levels)),
        ]:
            t = time.perf_counter()
            fn()
            parts[name] = time.perf_counter() - t
        levels.close()
    print(f"| events | {n:,} |\n|---|---|")
    what = "`shopfunnel diagnose` process" if args.process else "diagnose()"
    print(f"| {what} median of {args.runs} | {statistics.median(totals):.2f} s (runs {', '.join(f'{x:.2f}' for x in totals)}) |")
    for name, secs in parts.items():
        print(f"| {name} | {secs:.2f} s |")
    print(f"| findings | {len(result.findings)} |")
    for r in result.incidents.itertuples():
        print(f"| incident | {r.kind} {r.step} {r.segment} {r.start} to {r.end} (z = {r.z:.1f}) |")


def _lasting(store, end):
    with SessionLevels(store, start=end - timedelta(days=365), end=end) as wide:
        return find_level_shifts(wide)


if __name__ == "__main__":
    main()
