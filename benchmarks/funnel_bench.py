"""Funnel benchmark: shopfunnel vs chDB's windowFunnel vs a plain column scan.

    python benchmarks/funnel_bench.py 1m 10m [100m] [--runs 3] [--data sample|synth]

For each size it makes (or reuses, from ``benchmarks/data/``, git-ignored) a Parquet log,
then times, in the same run on the same file, each in its own subprocess so that its
peak RSS is its own:

* ``scan``: pyarrow reads the needed columns (person, ts, event) — the floor;
* ``chdb``: ClickHouse's ``windowFunnel`` (embedded chDB) over the Parquet file;
* ``chdb_table``: the same query over a chDB MergeTree table ordered by person and time,
  made from the file before timing (chDB with its best storage layout);
* ``ordered``, ``by_channel``, ``strict``, ``session``: shopfunnel's funnel (5 steps,
  7 days) over the same file, by SQL (what a one-off funnel over a file costs);
* ``timeline``: the one-time build of shopfunnel's timeline of the file (sorted, coded,
  saved beside it as a store saves its own);
* ``t_ordered``, ``t_by_channel``, ``t_strict``, ``t_session``: the same funnels over the
  saved timeline (what a funnel over a store costs once its timeline is built).

Each subprocess loads its libraries (and numba's cached kernels) on a tiny input first,
then times ``--runs`` runs and reports the median. The counts of ``ordered`` must equal
chDB's; the breakdown must add up to the ordered counts; strict must not exceed ordered.
Writes ``benchmarks/results/funnel.md`` (and the raw figures in ``funnel.json``, merged
with earlier runs of other sizes, so ``100m`` can be run on its own).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_name, ram_gib  # benchmarks/machine.py, beside this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "results"
STEPS = ["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"]
WINDOW_S = 7 * 86400
SIZES = {"1m": 1_000_000, "10m": 10_000_000, "100m": 100_000_000}
MEMORY_LIMIT = "2GB"  # DuckDB's limit for shopfunnel's query (it spills beyond)
ENGINES = ["scan", "chdb", "chdb_table", "ordered", "by_channel", "strict", "session",
           "timeline", "t_ordered", "t_by_channel", "t_strict", "t_session"]
SHOPFUNNEL = {  # engine → funnel() arguments
    "ordered": {}, "by_channel": {"by": "channel"}, "strict": {"order": "strict"},
    "session": {"count_by": "session"},
}


# -- data ---------------------------------------------------------------------------------
def data_file(size: str, kind: str) -> Path:
    path = DATA / f"{kind}_{size}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    n = SIZES[size]
    t0 = time.time()
    if kind == "sample":
        sys.path.insert(0, str(ROOT / "src"))
        from shopfunnel.sample import write_sample

        write_sample(path, n, seed=1)
    else:
        sys.path.insert(0, str(HERE))
        from synth import write_synthetic

        write_synthetic(path, n)
    print(f"generated {path.name} in {time.time() - t0:.0f}s", file=sys.stderr)
    return path


def timeline_key(path: str) -> str:
    st = os.stat(path)
    return f"{Path(path).name}:{st.st_size}:{st.st_mtime_ns}"


def person_column(path: Path) -> str:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    return "person_id" if "person_id" in names else "anonymous_id"


# -- workers (run in a subprocess) --------------------------------------------------------
def worker(engine: str, path: str, runs: int) -> None:
    times, counts, extra = [], None, {}
    person = person_column(Path(path))
    if engine == "scan":
        import pyarrow.parquet as pq

        def once():
            table = pq.read_table(path, columns=[person, "ts", "event"])
            return [table.num_rows]
    elif engine == "chdb_table":
        # chDB given its best layout: a MergeTree table sorted by person and time, built
        # once (not timed), as a ClickHouse user would keep events
        import tempfile

        from chdb import session as chs
        tmp = tempfile.mkdtemp(prefix="chdb_bench_")
        sess = chs.Session(tmp)
        sess.query(
            f"CREATE TABLE ev ENGINE = MergeTree ORDER BY ({person}, t) "
            "SETTINGS allow_nullable_key = 1 AS SELECT "
            f"assumeNotNull({person}) AS {person}, "
            f"toUInt64(toUnixTimestamp64Micro(ts)) AS t, toLowCardinality(event) AS event "
            f"FROM file('{path}', Parquet)")
        conds = ", ".join(f"event = '{s}'" for s in STEPS)
        sql = (f"SELECT level, count() AS n FROM (SELECT {person}, "
               f"windowFunnel({WINDOW_S * 1_000_000})(t, {conds}) AS level FROM ev "
               f"GROUP BY {person}) GROUP BY level")

        def once():
            df = sess.query(sql, "DataFrame")
            levels = dict(zip(df["level"].astype(int), df["n"].astype(int), strict=True))
            return [sum(v for lv, v in levels.items() if lv >= k) for k in range(1, 6)]
    elif engine == "timeline":
        # the one-time build of the timeline (sorted, coded copy), saved beside the data
        sys.path.insert(0, str(ROOT / "src"))
        from shopfunnel.funnel.engine import LocalEngine
        from shopfunnel.store.timeline import build
        folder = Path(path + ".timeline")

        def once():
            engine_ = LocalEngine(path, memory_limit=MEMORY_LIMIT)
            tl = build(engine_.db, engine_.relation, engine_.person, engine_.columns,
                       key=timeline_key(path), folder=folder)
            return [len(tl)]
    elif engine.startswith("t_"):
        # the funnel over the saved timeline (memory-mapped, as a store's)
        sys.path.insert(0, str(ROOT / "src"))
        import pandas as pd

        from shopfunnel.funnel.api import funnel
        from shopfunnel.funnel.engine import LocalEngine
        from shopfunnel.store.timeline import Timeline
        kwargs = SHOPFUNNEL[engine[2:]]
        tiny = pd.DataFrame({"anonymous_id": ["p"], "ts": [pd.Timestamp("2024-01-01")],
                             "event": ["view_item"], "channel": ["x"], "session_id": ["s"]})
        funnel(tiny, STEPS, engine=LocalEngine(tiny, timeline=True), **kwargs)  # kernels

        # opened once, as a store and its timeline are (opening: about 2 ms, the engine's
        # description of the Parquet file about 20 ms, which a store does not pay)
        tl = Timeline.open(path + ".timeline", timeline_key(path))
        if tl is None:
            raise SystemExit("no timeline: run the 'timeline' engine first")
        engine_ = LocalEngine(path, timeline=tl)

        def once():
            result = funnel(path, STEPS, window="7d", engine=engine_, **kwargs)
            if result.breakdown is not None:
                extra["breakdown_sum"] = (
                    result.breakdown.groupby("step")["persons"].sum().astype(int).tolist())
            return result.steps["persons"].astype(int).tolist()
    elif engine == "chdb":
        import chdb

        conds = ", ".join(f"event = '{s}'" for s in STEPS)
        sql = (
            f"SELECT level, count() AS n FROM (SELECT {person}, "
            f"windowFunnel({WINDOW_S * 1_000_000})(toUInt64(toUnixTimestamp64Micro(ts)), {conds})"
            f" AS level FROM file('{path}', Parquet) GROUP BY {person}) GROUP BY level"
        )

        def once():
            df = chdb.query(sql, "DataFrame")
            levels = dict(zip(df["level"].astype(int), df["n"].astype(int), strict=True))
            return [sum(v for lv, v in levels.items() if lv >= k) for k in range(1, 6)]
    else:
        sys.path.insert(0, str(ROOT / "src"))
        import pandas as pd

        from shopfunnel.funnel.api import funnel
        from shopfunnel.funnel.engine import LocalEngine

        kwargs = SHOPFUNNEL[engine]
        tiny = pd.DataFrame({"anonymous_id": ["p"], "ts": [pd.Timestamp("2024-01-01")],
                             "event": ["view_item"], "channel": ["x"], "session_id": ["s"]})
        funnel(tiny, STEPS, **kwargs)  # load the cached kernels

        def once():
            engine_ = LocalEngine(path, memory_limit=MEMORY_LIMIT)
            result = funnel(path, STEPS, window="7d", engine=engine_, **kwargs)
            if result.breakdown is not None:
                extra["breakdown_sum"] = (
                    result.breakdown.groupby("step")["persons"].sum().astype(int).tolist())
            return result.steps["persons"].astype(int).tolist()
    for _ in range(runs):
        t0 = time.perf_counter()
        got = once()
        times.append(time.perf_counter() - t0)
        if counts is not None and got != counts:
            raise SystemExit(f"{engine}: counts changed between runs: {counts} → {got}")
        counts = got
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"times": times, "counts": counts, "rss": rss, **extra}))


def measure(engine: str, path: Path, runs: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", engine, str(path), "--runs", str(runs)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["median"] = statistics.median(out["times"])
    return out


# -- report -------------------------------------------------------------------------------
def machine() -> dict:
    import chdb
    import duckdb
    import numba
    import numpy
    import pyarrow

    cpu, mem = cpu_name(), ram_gib()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem, 1),
        "python": platform.python_version(), "duckdb": duckdb.__version__,
        "numba": numba.__version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__,
        "chdb": chdb.__version__, "load": os.getloadavg(),
    }


def write_report(rows: list[dict], info: dict, kind: str, runs: int) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "funnel.md"
    lines = [
        "# Funnel benchmark",
        "",
        f"5-step ordered funnel ({', '.join(STEPS)}), 7-day window, over a Parquet file of "
        f"`{kind}` events (`benchmarks/funnel_bench.py`). Median of the runs listed in each row, each engine "
        "in its own process (peak RSS is that process's). Ratios: chDB time / shopfunnel "
        "time, shopfunnel time / scan time.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB; Python "
        f"{info['python']}, DuckDB {info['duckdb']}, numba {info['numba']}, NumPy "
        f"{info['numpy']}, pyarrow {info['pyarrow']}, chDB {info['chdb']}. Load average at "
        f"start {info['load'][0]:.1f} (the machine is shared with other jobs: expect noise).",
        "",
        "| events | engine | median s | runs (s) | peak RSS GiB | vs chDB | vs scan | counts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        res = row["results"]
        for engine in ENGINES:
            if engine not in res:
                continue
            r = res[engine]
            vs_chdb = (f"{res['chdb']['median'] / r['median']:.1f}×"
                       if "chdb" in res and engine not in ("chdb", "scan", "timeline") else "")
            vs_scan = (f"{r['median'] / res['scan']['median']:.1f}×"
                       if "scan" in res and engine not in ("scan", "timeline") else "")
            runs_s = ", ".join(f"{t:.2f}" for t in r["times"])
            counts = ("" if engine == "scan" else f"{r['counts'][0]:,} rows"
                      if engine == "timeline" else ", ".join(f"{c:,}" for c in r["counts"]))
            lines.append(
                f"| {row['size']} | {engine} | {r['median']:.2f} | {runs_s} | "
                f"{r['rss'] / 2**30:.2f} | {vs_chdb} | {vs_scan} | {counts} |")
        for prefix in ("", "t_"):
            o = res.get(prefix + "ordered")
            if o:
                notes = []
                for name in ("by_channel", "strict", "session"):
                    if prefix + name in res:
                        ratio = res[prefix + name]["median"] / o["median"]
                        notes.append(f"{prefix}{name} / {prefix}ordered = {ratio:.2f}")
                lines.append(f"| {row['size']} | *ratios* | | | | | | {'; '.join(notes)} |")
    lines += ["", f"Load average at the end: {os.getloadavg()[0]:.1f}.", ""]
    notes = ""
    if path.exists() and "## Reading the figures" in path.read_text(encoding="utf-8"):
        # the hand-written analysis below the tables is kept (update it by hand)
        notes = "## Reading the figures" + path.read_text(encoding="utf-8").split(
            "## Reading the figures", 1)[1]
    path.write_text("\n".join(lines) + notes, encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", default=["1m", "10m"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", choices=["sample", "synth"], default="sample")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--worker")
    args, rest = ap.parse_known_args()
    if args.worker:
        worker(args.worker, rest[0] if rest else args.sizes[0], args.runs)
        return
    info = machine()
    # results of earlier invocations (other sizes) are kept, so sizes can be run apart
    raw = RESULTS / "funnel.json"
    rows = json.loads(raw.read_text()) if raw.exists() else []
    order = list(SIZES)
    rows.sort(key=lambda r: order.index(r["size"]))
    for size in args.sizes:
        path = data_file(size, args.data)
        # engines not re-run keep their earlier figures (same file); --engines picks
        earlier = next((r["results"] for r in rows if r["size"] == size), {})
        results = dict(earlier)
        for engine in args.engines.split(","):
            results[engine] = measure(engine, path, args.runs)
            r = results[engine]
            print(f"{size} {engine}: median {r['median']:.2f}s, rss {r['rss'] / 2**30:.2f} GiB,"
                  f" counts {r['counts']}", file=sys.stderr, flush=True)
        for ours in ("ordered", "t_ordered", "chdb_table"):
            if "chdb" in results and ours in results:
                assert results[ours]["counts"] == results["chdb"]["counts"], (
                    f"{size}: {ours} {results[ours]['counts']} != chDB "
                    f"{results['chdb']['counts']}")
        for prefix in ("", "t_"):
            ordered = results.get(prefix + "ordered")
            if ordered is None:
                continue
            if "breakdown_sum" in results.get(prefix + "by_channel", {}):
                assert results[prefix + "by_channel"]["breakdown_sum"] == ordered["counts"]
            if prefix + "strict" in results:
                assert all(s <= o for s, o in zip(results[prefix + "strict"]["counts"],
                                                  ordered["counts"], strict=True))
        for name in ("by_channel", "strict", "session"):  # the two paths count alike
            if name in results and "t_" + name in results:
                assert results[name]["counts"] == results["t_" + name]["counts"], name
        rows = [r for r in rows if r["size"] != size] + [{"size": size, "results": results}]
        rows.sort(key=lambda r: order.index(r["size"]))
        raw.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        print(f"wrote {write_report(rows, info, args.data, args.runs)}", file=sys.stderr)


if __name__ == "__main__":
    main()
