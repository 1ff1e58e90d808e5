"""Issue 17 probe: CPU of DuckDB reading a GA4 export three ways (lines only; lines +
``json_transform``, as ``ga4_bulk.convert_file`` does; ``read_json`` with ``columns=`` declared
for only the fields the mapping reads). Writes /tmp/s8b/ga4_200k.ndjson once (about 195 MB:
delete it after).

    PYTHONPATH=src python benchmarks/ga4_reader_probe.py
"""

from __future__ import annotations

import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from importers_bench import write_ga4  # noqa: E402

from shopfunnel.ingest import ga4_bulk  # noqa: E402

PATH = Path("/tmp/s8b/ga4_200k.ndjson")
LINES = (
    "read_csv('{p}', columns = {{'raw': 'VARCHAR'}}, delim = chr(1), quote = '', escape = '', "
    "header = false, auto_detect = false, max_line_size = 1000000000)"
)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    if not PATH.exists():
        PATH.parent.mkdir(parents=True, exist_ok=True)
        write_ga4(PATH, 200_000, random.Random(1))
    con = ga4_bulk.connect()
    structure = ga4_bulk.STRUCTURE.replace("'", "''")
    lines = LINES.format(p=PATH)
    cols = ga4_bulk.COLUMNS  # STRUCTURE as read_json's declared columns
    queries = {
        "csv_split": f"SELECT count(raw) FROM {lines}",
        "csv+json_transform": f"SELECT count(json_transform(raw, '{structure}')) FROM {lines}",
        "read_json_columns": (
            "SELECT count(*), count(event_params), count(items) FROM read_json("
            f"'{PATH}', format = 'newline_delimited', columns = {cols}, auto_detect = false)"
        ),
    }
    for label, sql in queries.items():
        t0, c0 = time.perf_counter(), cpu()
        result = con.sql(sql).fetchall()
        print(
            label, result, f"wall {time.perf_counter() - t0:.2f}s cpu {cpu() - c0:.2f}s", flush=True
        )


if __name__ == "__main__":
    main()
