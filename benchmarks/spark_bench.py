"""The analyses on Spark (local mode) beside the local engine, whole process, same data.

    PYTHONPATH=src python benchmarks/spark_bench.py --events /work/bench/s10m.parquet \
        --db /work/bench/s10m.duckdb [--master 'local[2]'] [--commands funnel,stages,...] \
        [--cache /work/bench/spark_cache]

``--events`` is the raw Parquet file (no ``person_id``) and ``--db`` the DuckDB store loaded
from it (never written to). Each command runs as its own process twice: ``python -m
shopfunnel CMD --db DB`` and ``python -m shopfunnel CMD --engine spark --events FILE``, so
Spark's times include starting its JVM and session, reading the raw file and applying the
store's load rules (stitching, sessions, channels) before the analysis. Peak memory is the
peak of the summed RSS of the process and all its children (the JVM, the Python workers),
sampled every 0.2 s from /proc. The JSON outputs of the two engines are compared (floats to
9 significant digits) and the table says whether they are equal.

``--cache DIR`` keeps the prepared events (``SHOPFUNNEL_SPARK_CACHE``) in DIR between runs:
the entry is keyed by the source's path, size and mtime and the rules' code
(:mod:`shopfunnel.store.spark_cache`), so pass the raw file by the same path every time
(``/work/bench/s10m.parquet``, ``/work/bench/s100m.parquet``). With an entry already there
the ``prepare`` row only reads it and says so; without ``--cache`` a fresh temporary dir
is used and removed at the end (every run prepares again).

Writes ``benchmarks/results/spark.md`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import cpu_name, ram_gib  # benchmarks/machine.py, beside this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
STEPS = "view_item,add_to_cart,begin_checkout,add_payment_info,purchase"
# "prepare" applies the store's load rules once and keeps the prepared events as Parquet
# (shopfunnel.store.spark_cache, in --cache DIR or a fresh dir per run); the commands after it
# read them.
PREPARE = ("from shopfunnel.store.spark import spark_session; "
           "from shopfunnel.store.spark_cache import prepared_events; "
           "import sys; prepared_events(spark_session(), sys.argv[1]).count()")
COMMANDS: dict[str, list[str]] = {
    "prepare": [],
    "funnel": ["funnel", "--steps", STEPS],
    "retention": ["retention"],
    "rfm --by-group": ["rfm", "--by-group"],
    "flow": ["flow", "--from", "2024-03-01", "--to", "2024-04-01"],
    "stages": ["stages"],
    "persons --stage decision --status stalled": ["persons", "--stage", "decision", "--status",
                                                   "stalled"],
    "diagnose": ["diagnose"],
    "funnel --by channel --order strict": ["funnel", "--steps", STEPS, "--by", "channel",
                                           "--order", "strict"],
    "report": ["report"],
    "audience show vip": ["audience", "show", "vip"],
}
# Commands whose output is not JSON: timed only (their equality is in tests/test_spark_report.py).
HTML = {"report"}


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


TICKS = os.sysconf("SC_CLK_TCK")


def tree_sample(pid: int, cpu: dict[int, float], own: list[float] | None = None) -> float:
    """Summed RSS of ``pid`` and its descendants in MiB; records each one's CPU seconds
    (user + system) so far in ``cpu``, and ``pid``'s own peak RSS (VmHWM, MiB) in ``own``."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        todo += tree.get(p, [])
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu[p] = (int(fields[11]) + int(fields[12])) / TICKS
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                elif line.startswith("VmHWM:") and p == pid and own is not None:
                    own[0] = max(own[0], int(line.split()[1]) / 1024)
        except (OSError, IndexError, ValueError):
            pass
    return total / 1024


def run(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float, int, float]:
    """Wall seconds, CPU seconds and peak RSS MiB of the process tree, exit code, and the
    peak RSS MiB of the command's own process (the Python driver: its ``VmHWM``, sampled
    with the rest). The command's whole stderr is kept in ``log``."""
    started = time.perf_counter()
    # a failed command's last stderr lines are printed; all of them are in the log (the
    # JVM's own last words come before the Python traceback that ends it)
    with open(log, "w+b") as errors:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        peak = [0.0]
        own_peak = [0.0]
        cpu: dict[int, float] = {}
        done = threading.Event()

        def sample() -> None:  # never reaps the child: wait4 below does
            while not done.is_set():
                peak[0] = max(peak[0], tree_sample(proc.pid, cpu, own_peak))
                done.wait(0.2)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        thread.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").splitlines()[-20:]
            print(f"{' '.join(argv[:6])} ... exit {proc.returncode}; all its stderr is in {log};"
                  " its last lines:",
                  *tail, sep="\n", file=sys.stderr, flush=True)
        # the direct child's own CPU is exact from wait4; its descendants' as last sampled
        own = usage.ru_utime + usage.ru_stime
        cpu[proc.pid] = max(cpu.get(proc.pid, 0.0), own)
    return wall, sum(cpu.values()), peak[0], proc.returncode, own_peak[0]


def log_of(args: argparse.Namespace, command: str, engine: str) -> Path:
    """Where a command's stderr is kept: beside ``--out``, ``OUT.COMMAND.ENGINE.log``."""
    out = Path(args.out)
    return out.with_name(f"{out.stem}.{command}.{engine}.log")


def entry_exists(cache: Path, events: str) -> bool:
    """Whether ``cache`` already holds the complete prepared events of ``events``."""
    sys.path.insert(0, str(ROOT / "src"))
    from shopfunnel.store.spark_cache import cache_key

    return (cache / cache_key(events) / "_SUCCESS").exists()


def versions() -> str:
    import duckdb
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    java_line = java.splitlines()[0] if java else "java ?"
    return (f"Python {platform.python_version()}, PySpark {pyspark.__version__}, "
            f"DuckDB {duckdb.__version__}, {java_line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", required=True, help="the raw Parquet file")
    ap.add_argument("--db", required=True, help="the store loaded from it (read only)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--commands", default=",".join(COMMANDS))
    ap.add_argument("--out", default=str(HERE / "results" / "spark.md"))
    ap.add_argument("--cache", default=None,
                    help="keep the prepared events in this dir between runs (default: a fresh "
                    "temporary dir per run)")
    args = ap.parse_args()
    env = {**os.environ, "SHOPFUNNEL_SPARK_MASTER": args.master,
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)}
    env.pop("SPARK_REMOTE", None)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    events = subprocess.run([PY, "-c", f"import pyarrow.parquet as pq; print(pq.ParquetFile({args.events!r}).metadata.num_rows)"],
                            capture_output=True, text=True).stdout.strip()
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp) / "spark-cache"
        env["SHOPFUNNEL_SPARK_CACHE"] = str(cache)
        for name in args.commands.split(","):
            cmd = COMMANDS[name]
            if name == "prepare":
                cached = entry_exists(cache, args.events)
                wall, cpu, peak, code, _ = run([PY, "-c", PREPARE, args.events], env,
                                               log_of(args, name, "spark"))
                name = "prepare (cached: read only)" if cached else name
                rows.append((name, "spark", (wall, cpu, peak, code, 0.0)))
                print(f"{name:40s} spark  {wall:8.1f} s {cpu:8.1f} cpu-s {peak:8.0f} MiB "
                      f"exit {code}", flush=True)
                write(args, rows, commit, events, load_before)
                continue
            outputs = []
            for engine, extra in (("local", ["--db", args.db]),
                                  ("spark", ["--engine", "spark", "--events", args.events])):
                out_file = Path(tmp) / f"{engine}.json"
                fmt = [] if name in HTML else ["--format", "json"]
                argv = [PY, "-m", "shopfunnel", *cmd, *extra, *fmt, "--out", str(out_file)]
                wall, cpu, peak, code, driver = run(argv, env, log_of(args, name, engine))
                text = out_file.read_text() if out_file.exists() else "null"
                outputs.append(None if code != 0 else text if name in HTML else
                               json.loads(text, parse_float=lambda t: float(f"{float(t):.9g}")))
                rows.append((name, engine, (wall, cpu, peak, code, driver)))
                print(f"{name:40s} {engine:6s} {wall:8.1f} s {cpu:8.1f} cpu-s {peak:8.0f} MiB "
                      f"(own process {driver:,.0f} MiB) exit {code}", flush=True)
                out_file.unlink(missing_ok=True)
            same = (None if name in HTML and None not in outputs
                    else outputs[0] is not None and outputs[0] == outputs[1])
            rows.append((name, "same", (same,)))
            write(args, rows, commit, events, load_before)  # after each command: partial results survive


def write(args: argparse.Namespace, rows: list[tuple], commit: str, events: str,
          load_before: float) -> None:
    load_after = os.getloadavg()[0]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# The analyses on Spark (local mode) beside the local engine",
        "",
        f"`PYTHONPATH=src python benchmarks/spark_bench.py --events {args.events} --db {args.db} "
        f"--master '{args.master}' --commands {args.commands}"
        + (f" --cache {args.cache}" if args.cache else "") + "`",
        "",
        f"{now}, commit {commit}; {cpu_name()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB; "
        f"{versions()}. Load average (1 min) before: {load_before:.2f}, after: {load_after:.2f} "
        "(the machine is shared by other developers: figures are noisy).",
        "",
        f"Data: {int(events):,} raw events from the sample store generator (devices, sign-ins, "
        "no person_id), and the DuckDB store loaded from the same file (its sorted timeline "
        "built). Each cell is one run of the whole process: `local` reads the store; `prepare` "
        "starts Spark, reads the raw Parquet file, applies the store's load rules (identity "
        "stitching, sessions, channels) once and writes the prepared events as Parquet to the "
        "cache (shopfunnel.store.spark_cache); each `spark` command then starts a JVM and a "
        "local Spark session, reads the prepared events from the cache and runs the analysis. Peak "
        "memory: summed RSS of the process and its children (JVM, Python workers), sampled "
        "every 0.2 s; CPU: user + system seconds of the same processes (the steadier figure "
        "on a shared machine); the Python driver's own peak (`VmHWM` of the command's "
        "process, without the JVM and the Python workers) is what comes back to the driver. "
        "`same output` compares the two JSON outputs (floats to 9 significant "
        "digits).",
        "",
        "| command | local wall s | local CPU s | local peak MiB | Spark wall s | Spark CPU s "
        "| Spark peak MiB | Spark's Python driver peak MiB | same output |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    table: dict[str, dict[str, tuple]] = {}
    for name, engine, cell in rows:
        table.setdefault(name, {})[engine] = cell
    for name, cells in table.items():
        if "local" not in cells:  # the one-time preparation: Spark only
            wall, cpu, peak, code, _ = cells["spark"]
            label = f"`{name}`" if "cached" in name else f"`{name}` (once per source)"
            lines.append(f"| {label} | – | – | – | {wall:.1f}"
                         + ("" if code == 0 else f" (exit {code})")
                         + f" | {cpu:.1f} | {peak:,.0f} | – | – |")
            continue
        same = cells["same"][0]
        status = "HTML (tests compare)" if same is None else "yes" if same else "**no**"
        parts = []
        for engine in ("local", "spark"):
            wall, cpu, peak, code, driver = cells[engine]
            parts += [f"{wall:.1f}" + ("" if code == 0 else f" (exit {code})"), f"{cpu:.1f}",
                      f"{peak:,.0f}"]
        parts.append(f"{cells['spark'][4]:,.0f}")
        lines.append(f"| `{name}` | {' | '.join(parts)} | {status} |")
    lines += [
        "",
        "On 2 cores Spark in local mode is slower than the embedded engine and uses more "
        "memory: it pays for starting a JVM (15–30 s), shuffles through local disk, Python "
        "workers. It is there for data that needs a cluster, where the same plan "
        "spreads over many executors; the point of this table is that it runs at this size "
        "and gives the same output.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
