"""Time the GA4 importer's staging: the bulk path (DuckDB) against the row-by-row reference.

    PYTHONPATH=src python benchmarks/ga4_bench.py --rows 300000 [--reference] [--out FILE]
    PYTHONPATH=src python benchmarks/ga4_bench.py --rows 1000000 --parts [--file PATH]
    PYTHONPATH=src python benchmarks/ga4_bench.py --cli --file PATH [--src DIR]
    PYTHONPATH=src python benchmarks/ga4_bench.py --parquet --write PATH --rows 1000000
    PYTHONPATH=src python benchmarks/ga4_bench.py --parquet --rows 100000 --reference
    PYTHONPATH=src python benchmarks/ga4_bench.py --floor --file PATH
    PYTHONPATH=src python benchmarks/ga4_bench.py --days FOLDER --file PATH

``--cli`` times the whole import as a user runs it: a new process running
``python -m shopfunnel ingest PATH --format ga4`` (a folder: every ``*.parquet`` in it, in
name order, in one command; ``--days FOLDER`` writes one) into a new store (the file read, mapped
and loaded: ids, dedup, stitching), wall and CPU seconds of the child (``RUSAGE_CHILDREN``)
and rows per second of each; ``--src`` puts another checkout's ``src`` first on the path
(e.g. main's, for a before/after pair); ``--store`` imports into a copy of a store instead
of a new one (a later day's export).

Writes a synthetic export (``importers_bench.write_ga4``: about 820 bytes a row, five
params and one item, as BigQuery writes them) to a temporary folder, stages it with
``read_ga4`` (and with ``read_ga4_reference`` when asked), and prints wall and CPU seconds,
rows per second of each, and the load average before and after: on a shared machine the
CPU figure is the steadier one. Both must stage the same number of rows.

``--parts`` times the readers the importer could use instead, each alone on the same file
(issue 17, docs/adr/0149): DuckDB splitting the lines (``read_csv``, one text column, as
``ga4_bulk.convert_file`` reads them), plus the md5 of every line, plus ``json_transform``
into the importer's structure; hashlib md5 of every line on one and on two threads;
pyarrow's ``read_json`` and polars' ``read_ndjson`` with an explicit schema of the fields
the mapping reads. ``--file`` reuses an export already written (``--rows`` is then ignored).

``--parquet`` writes the same synthetic export as Parquet, with BigQuery's types (INT64 as
integers, FLOAT64 as doubles; DuckDB ``COPY`` of the JSON rows: snappy, its row groups):
with ``--write`` only the file (for ``--cli --file``, which sniffs the format), else a
temporary one whose staging is timed (bulk, and the reference with ``--reference``; issue 17,
docs/adr/0193).

``--floor`` measures what the whole import could not go below while it does the same work:
a new process that only imports the command's modules, the mapping query alone
of a Parquet export (``ga4_parquet.convert_parquet``: DuckDB reading and mapping every
row), and a bare write of the staged rows into a new store's ``events``, closed (only the
casts the table needs: no checks, no channel, no stitching, no duplicate count). Their sum,
the floor, is printed beside the whole import (``--cli``), median of ``--repeat`` runs each
(issue 17: what 300,000 rows/s would need on this machine). Beside them, not a part of the
floor: the mapping without the event ids' md5 and without the properties text, and the whole
import with the time that would save taken off (what those two product changes could give;
ADR 0197).
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

# The synthetic export's fields with BigQuery's types (its Parquet export).
_PARQUET_COLUMNS = {
    "event_date": "VARCHAR", "event_timestamp": "BIGINT", "event_name": "VARCHAR",
    "event_bundle_sequence_id": "BIGINT", "batch_page_id": "BIGINT", "batch_ordering_id": "BIGINT",
    "batch_event_index": "BIGINT", "stream_id": "VARCHAR",
    "event_params": "STRUCT(key VARCHAR, value STRUCT(string_value VARCHAR, int_value BIGINT, "
                    "float_value DOUBLE, double_value DOUBLE))[]",
    "user_pseudo_id": "VARCHAR", "user_id": "VARCHAR",
    "device": "STRUCT(category VARCHAR)", "geo": "STRUCT(country VARCHAR)",
    "traffic_source": "STRUCT(source VARCHAR, medium VARCHAR, name VARCHAR)",
    "collected_traffic_source": "STRUCT(manual_source VARCHAR, manual_medium VARCHAR, "
                                "manual_campaign_name VARCHAR, gclid VARCHAR)",
    "items": "STRUCT(item_id VARCHAR, item_name VARCHAR, item_category VARCHAR, price DOUBLE, "
             "quantity BIGINT)[]",
}


def write_ga4_parquet(path: Path, n: int, rng: random.Random) -> None:
    """``write_ga4``'s export as BigQuery's Parquet export types it."""
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "rows.json"
        write_ga4(rows, n, rng)
        columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in _PARQUET_COLUMNS.items()) + "}"
        con = duckdb.connect()
        con.execute(f"COPY (SELECT * FROM read_json('{rows}', format = 'newline_delimited', "
                    f"columns = {columns})) TO '{path}' (FORMAT parquet)")
        con.close()


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


def cli(path: Path, src: Path | None, store: Path | None = None) -> dict[str, object]:
    """The whole import of ``path`` in a new process (see the module docstring), into a new
    store or into a copy of ``store`` (a later day's export into a store that holds some)."""
    import shutil
    import subprocess

    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ga4.duckdb"
        if store is not None:
            shutil.copy(store, db)
        load_before = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        files = sorted(map(str, path.glob("*.parquet"))) if path.is_dir() else [str(path)]
        out = subprocess.run(
            [sys.executable, "-m", "shopfunnel", "ingest", *files, "--db", str(db), "--format", "ga4"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rows = sum(int(part.split(" rows")[0].replace(",", "")) for part in out.split("read ")[1:])
    into = "" if store is None else f" into a copy of {store.name}"
    return {"path": f"whole import ({src or 'PYTHONPATH'}){into}", "rows": rows, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "rows_per_s": round(rows / wall), "rows_per_cpu_s": round(rows / cpu),
            "cpu_us_per_row": round(cpu / rows * 1e6, 2), "peak_rss_mb": round(after.ru_maxrss / 1024),
            "load_1min_before": round(load_before, 1), "load_1min_after": round(os.getloadavg()[0], 1)}


def split_days(path: Path, folder: Path) -> None:
    """Write an export as daily files (``events_<day>.parquet``, one per UTC day of
    ``event_timestamp``, each in time order), as BigQuery exports a day a table: for
    ``--cli --file FOLDER``, which imports them all in one command (ADR 0198)."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    src = f"read_parquet('{path}')"
    days = [d for (d,) in con.sql(f"SELECT DISTINCT event_timestamp // 86400000000 FROM {src} ORDER BY 1").fetchall()]
    for day in days:
        con.execute(f"COPY (SELECT * FROM {src} WHERE event_timestamp // 86400000000 = {day} "
                    f"ORDER BY event_timestamp) TO '{folder / f'events_{day}.parquet'}'")
    print(json.dumps({"days": len(days), "folder": str(folder)}))


def _median_run(fn, repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds (this process) of ``repeat`` calls of ``fn``."""
    import statistics

    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    return statistics.median(walls), statistics.median(cpus)


def _without_ids_and_properties(sql: str) -> str:
    """The mapping query with the event id's md5 and the properties text left out (the
    event's key as its id, no properties): the bound ``--floor`` prints."""
    md5 = ("md5(coalesce(pseudo, '') || chr(31) || CAST(us AS VARCHAR) || chr(31) || name\n"
           "                                || chr(31) || content)")
    props = "CASE WHEN len(props) > 0 THEN '{{' || array_to_string(props, ', ') || '}}' END"
    if md5 not in sql or props not in sql:
        raise SystemExit("ga4_bulk._SQL changed: update _without_ids_and_properties")
    return sql.replace(md5, "content").replace(props, "NULL::VARCHAR")


def floor(path: Path, repeat: int) -> list[dict[str, object]]:
    """The import's parts that any version of it doing the same work pays (see the module
    docstring), and their sum beside the whole import."""
    import statistics
    import subprocess

    from shopfunnel.ingest import ga4, ga4_bulk, ga4_lines, ga4_parquet
    from shopfunnel.store.memory import bulk_memory
    from shopfunnel.store.store import Store

    out: list[dict[str, object]] = []

    def row(part: str, wall: float, cpu: float) -> None:
        out.append({"part": part, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                    "load_1min": round(os.getloadavg()[0], 1)})
        print(json.dumps(out[-1]), flush=True)

    starts, start_cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import shopfunnel.cli, shopfunnel.cli.data, "
                        "shopfunnel.ingest.ga4, shopfunnel.store.store"], check=True)
        starts.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        start_cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    row("a new process importing the command's modules", statistics.median(starts),
        statistics.median(start_cpus))

    rules = ga4._RULES
    shape = ga4_lines.parquet_shape(path)
    con = ga4_bulk.connect()
    if shape is None:
        raise SystemExit(f"--floor reads a Parquet export; {path} is not one")
    row("the mapping query alone", *_median_run(
        lambda: ga4_parquet.convert_parquet(con, str(path), shape[0], **rules), repeat))
    # what two product changes would leave (not parts of the floor): the mapping without the
    # event ids' md5 (ADR 0168: ids must stay stable across imports) and without the
    # properties text (ADR 0197)
    mapping_sql = ga4_bulk._SQL
    try:
        ga4_bulk._SQL = _without_ids_and_properties(mapping_sql)
        bound = _median_run(
            lambda: ga4_parquet.convert_parquet(con, str(path), shape[0], **rules), repeat)
    finally:
        ga4_bulk._SQL = mapping_sql
    con.close()

    table = ga4.read_ga4(path).table
    casts = ("event_id, make_timestamp(epoch_us(ts)), event, anonymous_id, user_id, session_id, "
             "'direct', utm_source, utm_medium, utm_campaign, referrer, page, device, country, "
             "order_id, CAST(value AS DECIMAL(18,2)), currency, items, CAST(properties AS JSON), "
             "anonymous_id")
    with tempfile.TemporaryDirectory() as tmp:
        stores = iter(range(repeat))

        def write() -> None:
            # in one transaction under the load's memory cap, as a load writes; without
            # insertion order DuckDB writes the row groups as it inserts them (an ordered
            # insert of an Arrow scan leaves them to a checkpoint on one thread at close)
            with Store(Path(tmp) / f"floor{next(stores)}.duckdb") as store:
                store.db.register("__floor", table)
                store.db.execute("SET preserve_insertion_order = false")
                with bulk_memory(store.db), store.db.transaction():
                    store.db.execute(f"INSERT INTO events SELECT {casts} FROM __floor")

        row("a bare write of the staged rows into a new store", *_median_run(write, repeat))
    floor_s = sum(r["wall_s"] for r in out)
    mapping_s = out[1]["wall_s"]
    print(json.dumps({"part": "(not in the floor) the mapping without event ids and properties",
                      "wall_s": round(bound[0], 2), "cpu_s": round(bound[1], 2)}), flush=True)
    wholes = [cli(path, None) for _ in range(repeat)]
    rows = wholes[0]["rows"]
    whole = statistics.median(w["wall_s"] for w in wholes)
    # the whole import if both product changes were made and nothing else changed
    changed = whole - (mapping_s - bound[0])
    summary = {"floor_wall_s": round(floor_s, 2), "floor_rows_per_s": round(rows / floor_s),
               "whole_import_wall_s": round(whole, 2), "whole_rows_per_s": round(rows / whole),
               "mapping_without_ids_and_properties_wall_s": round(bound[0], 2),
               "mapping_without_ids_and_properties_cpu_s": round(bound[1], 2),
               "without_ids_and_properties_wall_s": round(changed, 2),
               "without_ids_and_properties_rows_per_s": round(rows / changed),
               "rows": rows, "repeat": repeat}
    print(json.dumps(summary), flush=True)
    return [*out, summary]


def parts(path: Path) -> list[dict[str, object]]:
    """Wall and CPU seconds of each candidate reader alone over ``path`` (see the docstring)."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    import duckdb
    import numpy as np
    import polars as pl
    import pyarrow as pa
    import pyarrow.json as pj

    from shopfunnel.ingest.ga4_bulk import STRUCTURE

    out: list[dict[str, object]] = []

    def part(label: str, fn):
        load_before = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), _cpu()
        value = fn()
        out.append({"part": label, "wall_s": round(time.perf_counter() - t0, 2),
                    "cpu_s": round(_cpu() - c0, 2), "load_1min_before": round(load_before, 1),
                    "load_1min_after": round(os.getloadavg()[0], 1)})
        print(json.dumps(out[-1]), flush=True)
        return value

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    lines = ("read_csv($1, columns = {'raw': 'VARCHAR'}, delim = chr(1), quote = '', escape = '', "
             "new_line = '\\n', header = false, auto_detect = false, strict_mode = true, "
             "max_line_size = 1000000000)")
    structure = STRUCTURE.replace("'", "''")
    # every part of the parsed row is read, so DuckDB cannot skip parsing any of it
    touched = ("sum(len(r.event_params) + len(r.items)), count(r.event_name), count(r.event_timestamp), "
               "count(r.user_pseudo_id), count(r.device.category), count(r.geo.country), "
               "count(r.ecommerce), count(r.collected_traffic_source), count(r.session_traffic_source_last_click)")
    part("duckdb: read_csv lines", lambda: con.execute(
        f"SELECT count(*), sum(length(raw)) FROM {lines}", [str(path)]).fetchall())
    part("duckdb: lines + md5", lambda: con.execute(
        f"SELECT count(*), max(md5(raw || chr(10))) FROM {lines}", [str(path)]).fetchall())
    part("duckdb: lines + json_transform", lambda: con.execute(
        f"SELECT count(*), {touched} FROM (SELECT json_transform(raw, '{structure}') AS r FROM {lines})",
        [str(path)]).fetchall())
    part("duckdb: lines + md5 + json_transform", lambda: con.execute(
        f"SELECT count(*), max(h), {touched} FROM (SELECT md5(raw || chr(10)) AS h, "
        f"json_transform(raw, '{structure}') AS r FROM {lines})", [str(path)]).fetchall())
    con.close()

    data = part("python: read the file's bytes", path.read_bytes)
    ends = part("numpy: newline search", lambda: np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + 1)
    view, starts = memoryview(data), np.concatenate([[0], ends[:-1]])

    def md5s(a: int, b: int) -> list[bytes]:
        return [hashlib.md5(view[s:e]).digest() for s, e in zip(starts[a:b].tolist(), ends[a:b].tolist(), strict=True)]

    n = len(ends)
    part("hashlib md5 per line, 1 thread", lambda: md5s(0, n))
    with ThreadPoolExecutor(2) as pool:
        part("hashlib md5 per line, 2 threads", lambda: list(pool.map(lambda i: md5s(i * n // 8, (i + 1) * n // 8), range(8))))

    value = pa.struct([(k, pa.string()) for k in ("string_value", "int_value", "double_value", "float_value")])
    item = pa.struct([(k, pa.string()) for k in ("item_id", "item_name", "item_category")]
                     + [("price", pa.float64()), ("quantity", pa.string())])
    schema = pa.schema(
        [(k, pa.string()) for k in ("event_timestamp", "event_name", "user_pseudo_id", "user_id")]
        + [("event_params", pa.list_(pa.struct([("key", pa.string()), ("value", value)]))),
           ("device", pa.struct([("category", pa.string())])), ("geo", pa.struct([("country", pa.string())])),
           ("collected_traffic_source", pa.struct([(k, pa.string()) for k in (
               "manual_source", "manual_medium", "manual_campaign_name", "gclid")])),
           ("items", pa.list_(item))])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    part("pyarrow read_json, explicit schema", lambda: pj.read_json(path, parse_options=options).num_rows)
    part("polars read_ndjson, explicit schema", lambda: pl.read_ndjson(path, schema=pl.Schema(schema)).height)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--reference", action="store_true", help="also time the row-by-row reference")
    parser.add_argument("--out", type=Path, help="append the results (JSON lines) here")
    parser.add_argument("--parts", action="store_true", help="time the candidate readers alone")
    parser.add_argument("--file", type=Path, help="an export already written (--rows is then ignored)")
    parser.add_argument("--write", type=Path, help="only write the synthetic export here (for --file)")
    parser.add_argument("--cli", action="store_true", help="time the whole import in a new process (needs --file)")
    parser.add_argument("--src", type=Path, help="with --cli: the src folder to import shopfunnel from")
    parser.add_argument("--store", type=Path, help="with --cli: import into a copy of this store")
    parser.add_argument("--parquet", action="store_true", help="the export as Parquet (BigQuery's types)")
    parser.add_argument("--floor", action="store_true", help="the import's floor beside the whole import (needs --file)")
    parser.add_argument("--repeat", type=int, default=3, help="with --floor: runs of each part (median)")
    parser.add_argument("--days", type=Path, help="write --file's export as daily files into this folder")
    args = parser.parse_args()
    write = write_ga4_parquet if args.parquet else write_ga4
    if args.write:
        write(args.write, args.rows, random.Random(1))
        return
    if args.days:
        if not args.file:
            parser.error("--days needs --file (a Parquet export to split)")
        split_days(args.file, args.days)
        return
    if args.cli:
        if not args.file:
            parser.error("--cli needs --file (write one with --write)")
        result = cli(args.file, args.src, args.store)
        print(json.dumps(result))
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(result) + "\n")
        return
    if args.parts and args.file:
        parts(args.file)
        return
    if args.floor:
        if not args.file:
            parser.error("--floor needs --file (write one with --write)")
        results = floor(args.file, args.repeat)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in results)
        return

    from shopfunnel.ingest.ga4 import read_ga4, read_ga4_reference

    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / f"events_20240315.{'parquet' if args.parquet else 'json'}"
        if not args.file:
            write(path, args.rows, random.Random(1))
        size_mb = path.stat().st_size / 1e6
        if args.parts:
            parts(path)
            return
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
