"""Time the GA4 importer's staging: the bulk path (DuckDB) against the row-by-row reference.

    PYTHONPATH=src python benchmarks/ga4_bench.py --rows 300000 [--reference] [--out FILE]

Writes a synthetic export (``importers_bench.write_ga4``: about 820 bytes a row, five
params and one item, as BigQuery writes them) to a temporary folder, stages it with
``read_ga4`` (and with ``read_ga4_reference`` when asked), and prints wall and CPU seconds,
rows per second of each, and the load average before and after: on a shared machine the
CPU figure is the steadier one. Both must stage the same number of rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from importers_bench import write_ga4  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, reader, path: Path) -> dict[str, object]:
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), _cpu()
    staged = reader(path)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    rows = staged.table.num_rows
    return {"path": label, "rows": rows, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "rows_per_s": round(rows / wall), "rows_per_cpu_s": round(rows / cpu),
            "load_1min_before": round(load_before, 1), "load_1min_after": round(os.getloadavg()[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--reference", action="store_true", help="also time the row-by-row reference")
    parser.add_argument("--out", type=Path, help="append the results (JSON lines) here")
    args = parser.parse_args()

    from shopfunnel.ingest.ga4 import read_ga4, read_ga4_reference

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events_20240315.json"
        write_ga4(path, args.rows, random.Random(1))
        size_mb = path.stat().st_size / 1e6
        results = [timed("bulk (DuckDB)", read_ga4, path)]
        if args.reference:
            results.append(timed("reference (Python per row)", read_ga4_reference, path))
    for r in results:
        r.update(file_mb=round(size_mb), cpus=os.cpu_count(), python=platform.python_version())
        print(json.dumps(r))
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(r) + "\n")
    assert len({r["rows"] for r in results}) == 1, "the two paths staged different row counts"


if __name__ == "__main__":
    main()
