"""CPU per event of the collector's conversion step, in one process (no server, no load).

What a conversion worker does with one request of the load generator's Segment-shaped
body (``collector_load.segment_template``: analytics.js page, identify and e-commerce track
calls, 500 messages): parse it (orjson), convert every message, write the spool lines.
Timed as CPU seconds (best of ``--runs``) over ``--requests`` different bodies, per
event, for the per-message reference (``ingest.segment.to_canonical``, one call per
message) and for the batch converter the collector runs (``ingest.segment_bulk``). This
figure does not depend on what else the machine runs, unlike events/s.

    PYTHONPATH=src python benchmarks/collector_convert.py --runs 7
    PYTHONPATH=src python benchmarks/collector_convert.py --runs 7 --shape sdk --batch 250
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector_load import SEQ, sdk_template, segment_template  # noqa: E402


def best(fn, runs: int) -> float:
    out = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn()
        out = min(out, time.process_time() - start)
    return out


def main() -> None:
    import orjson

    from shopfunnel.ingest.segment import to_canonical
    from shopfunnel.ingest.segment_bulk import to_canonical_many
    from shopfunnel.server import intake
    from shopfunnel.server.events import _spool_record

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--shape", choices=("segment", "sdk"), default="segment",
                    help="analytics.js-shaped messages, or segment-analytics-python's own upload "
                         "bodies (collector_load.sdk_template; use --batch 250, its upload_size)")
    args = ap.parse_args()

    template = sdk_template(args.batch) if args.shape == "sdk" else segment_template(0, args.batch)
    bodies = [template.replace(SEQ.encode(), f"0x{i}".encode()) for i in range(args.requests)]
    payloads = [orjson.loads(b) for b in bodies]
    now = datetime.now(UTC)
    events = args.requests * args.batch

    def reference() -> None:
        for p in payloads:
            for m in p["batch"]:
                _spool_record(to_canonical(m, received_at=now))

    def bulk() -> None:
        for p in payloads:
            to_canonical_many(p["batch"], received_at=now)

    def whole() -> None:
        for b in bodies:
            intake.prepare(b, "batch", now, 32 * 1024)

    per = {
        "parse (orjson)": best(lambda: [orjson.loads(b) for b in bodies], args.runs),
        "convert, per-message reference (to_canonical + spool record)": best(reference, args.runs),
        "convert, batch (to_canonical_many)": best(bulk, args.runs),
        "whole step (intake.prepare: parse, size check, convert, spool lines)": best(
            whole, args.runs
        ),
    }
    print(json.dumps({k: round(v / events * 1e6, 2) for k, v in per.items()}, indent=2))


if __name__ == "__main__":
    main()
