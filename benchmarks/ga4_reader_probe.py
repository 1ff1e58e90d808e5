"""Issue 17 probe: CPU of DuckDB reading a GA4 export three ways (lines only; lines +
json_transform, as ga4_bulk.convert_file does; read_json with columns= declared for only the
fields the mapping reads). Writes /tmp/s8b/ga4_200k.ndjson once (about 195 MB: delete it after).

    PYTHONPATH=src python benchmarks/ga4_reader_probe.py
"""

import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from importers_bench import write_ga4

from shopfunnel.ingest import ga4_bulk

p = Path("/tmp/s8b/ga4_200k.ndjson")
if not p.exists():
    write_ga4(p, 200_000, random.Random(1))


def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


con = ga4_bulk.connect()
s = ga4_bulk.STRUCTURE.replace("'", "''")
q = {
    "csv_split": f"SELECT count(raw) FROM read_csv('{p}', columns={{'raw':'VARCHAR'}}, delim=chr(1), quote='', escape='', header=false, auto_detect=false, max_line_size=1000000000)",
    "csv+json_transform": f"SELECT count(json_transform(raw, '{s}')) FROM read_csv('{p}', columns={{'raw':'VARCHAR'}}, delim=chr(1), quote='', escape='', header=false, auto_detect=false, max_line_size=1000000000)",
    "read_json_columns": f"SELECT count(*), count(event_params), count(items) FROM read_json('{p}', format='newline_delimited', columns=json_structure_to_columns) ",
}
import json

struct = json.loads(ga4_bulk.STRUCTURE)


def ddl(t):
    if isinstance(t, str):
        return t
    if isinstance(t, list):
        return ddl(t[0]) + "[]"
    return "STRUCT(" + ", ".join(f'"{k}" {ddl(v)}' for k, v in t.items()) + ")"


cols = "{" + ", ".join(f"'{k}': '{ddl(v)}'" for k, v in struct.items()) + "}"
q["read_json_columns"] = (
    f"SELECT count(*), count(event_params), count(items) FROM read_json('{p}', format='newline_delimited', columns={cols}, auto_detect=false)"
)
for k, sql in q.items():
    t0, c0 = time.perf_counter(), cpu()
    r = con.sql(sql).fetchall()
    print(k, r, f"wall {time.perf_counter() - t0:.2f}s cpu {cpu() - c0:.2f}s", flush=True)
