"""Time the diagnosis on a sample store with the three planted incidents.

    python benchmarks/diagnose_timing.py --events 1000000 [--db /tmp/diag_1m.duckdb] [--runs 3]

Builds the store with the sample generator (seed 1; a mobile checkout failure on
2024-02-10 for 3 days, a 12-hour payment outage on 2024-03-05 10:00, a 4x traffic spike
of campaign flash_promo on paid social on 2024-03-20 for 2 days) unless ``--db`` already
holds events, then times each part and the whole ``diagnose()`` call and checks that
the incidents found are the planted ones. Results: benchmarks/results/diagnose.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from shopfunnel.diagnosis.baselines import period_over_period, segment_gaps
from shopfunnel.diagnosis.checkout import checkout_findings
from shopfunnel.diagnosis.correlation import correlation_findings
from shopfunnel.diagnosis.diagnose import diagnose
from shopfunnel.diagnosis.incidents import find_incidents
from shopfunnel.sample import CheckoutFailure, PaymentOutage, TrafficSpike, generate_sample
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.store.store import Store

INCIDENTS = [CheckoutFailure("2024-02-10", 3, "mobile", "add_payment_info"), PaymentOutage("2024-03-05T10:00", 12),
             TrafficSpike("2024-03-20", 2, "flash_promo", "paid social", 4.0)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    db = Path(args.db or f"/tmp/diag_{args.events}.duckdb")
    if not db.exists():
        with Store(db) as store:
            store.load(generate_sample(args.events, seed=1, incidents=INCIDENTS))
    with Store(db, read_only=True) as store:
        n = store.db.scalar("SELECT count(*) FROM events")
        totals = []
        for _ in range(args.runs):
            t = time.perf_counter()
            result = diagnose(store, model={})
            totals.append(time.perf_counter() - t)
        levels = SessionLevels(store)
        parts = {}
        for name, fn in [
            ("incident scan", lambda: find_incidents(levels)),
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
    print(f"| diagnose() median of {args.runs} | {statistics.median(totals):.2f} s (runs {', '.join(f'{x:.2f}' for x in totals)}) |")
    for name, secs in parts.items():
        print(f"| {name} | {secs:.2f} s |")
    print(f"| findings | {len(result.findings)} |")
    for r in result.incidents.itertuples():
        print(f"| incident | {r.kind} {r.step} {r.segment} {r.start} to {r.end} (z = {r.z:.1f}) |")


if __name__ == "__main__":
    main()
