"""Every command as a user runs it: whole process, warm store, with peak memory.

    PYTHONPATH=src python benchmarks/commands_bench.py 1m 10m [30m] [100m] [--runs 3] [--label after]
        [--commands funnel,stages,...]

``demo`` (a fresh store generated, loaded and analysed: ``demo --events N --fresh``) runs
only when named in ``--commands``, and so do the one-time steps after a load (ADR 0172),
each timed on a store of its own in ``benchmarks/data/out_<size>/fresh.duckdb``:

* ``ingest``: ``shopfunnel ingest`` of the sample's Parquet file into an empty store;
* ``first funnel``: the first funnel after the load, which builds the sorted timeline;
* ``first stages``: the first ``stages`` after it, which builds the person index and the
  purchases kept beside the timeline.

Each run of these starts from the state before the step (the store deleted, the timeline
deleted, the index and caches deleted: untimed), and they have no untimed warm-up run.

For each size it builds (or reuses, from ``benchmarks/data/``, git-ignored) a sample store:
``shopfunnel sample --events N --seed 1`` into Parquet, ``shopfunnel ingest`` into a DuckDB
file, and one funnel to build the sorted timeline (so every timing is on a warm store).
Then it runs each command ``--runs`` times as its own process (``python -m shopfunnel ...``)
and reports the median and range of wall time and the peak RSS of the process (from
``wait4``). Beside them, for reference on the same data and in the same run:

* ``import``: ``python -c "import shopfunnel"`` (what every call pays at least);
* ``help``: ``shopfunnel --help``;
* ``chdb``: ClickHouse's ``windowFunnel`` through chDB over the Parquet file, whole process,
  the same 5 steps and 7-day window as ``funnel`` (by ``anonymous_id``: the raw file has no
  stitched persons, so its counts differ slightly from the store's; the work is the same).

Writes ``benchmarks/results/commands.md`` (keeping earlier sections with other labels, so a
"before" and an "after" table can sit side by side) — ``benchmarks/run.py --collect`` puts it
in ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_name, ram_gib  # benchmarks/machine.py, beside this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
SIZES = {"1m": 1_000_000, "10m": 10_000_000, "30m": 30_000_000, "100m": 100_000_000}
STEPS = "view_item,add_to_cart,begin_checkout,add_payment_info,purchase"
# the sample store spans 2024-01-01 to 2024-04-29 at every size: its last 30 days
FLOW = ("2024-03-30", "2024-04-29")
ONE_TIME = ("ingest", "first funnel", "first stages")
OPT_IN = {"demo", *ONE_TIME}
PY = sys.executable
SF = [PY, "-m", "shopfunnel"]


def commands(db: Path, parquet: Path, out: Path, events: int) -> dict[str, list[str]]:
    d = ["--db", str(db)]
    chdb_sql = (
        "import chdb; print(chdb.query(\"SELECT level, count() FROM (SELECT anonymous_id, "
        "windowFunnel(604800000000)(toUInt64(toUnixTimestamp64Micro(ts)), " +
        ", ".join(f"event = '{s}'" for s in STEPS.split(",")) +
        f") AS level FROM file('{parquet}', Parquet) GROUP BY anonymous_id) GROUP BY level\", 'CSV'))"
    )
    return {
        "import": [PY, "-c", "import shopfunnel"],
        "help": [*SF, "--help"],
        "funnel": [*SF, "funnel", *d, "--steps", STEPS, "--format", "json"],
        "funnel --by channel": [*SF, "funnel", *d, "--steps", STEPS, "--by", "channel", "--format", "json"],
        "chdb windowFunnel": [PY, "-c", chdb_sql],
        "info": [*SF, "info", *d],
        "stages": [*SF, "stages", *d],
        "retention": [*SF, "retention", *d],
        "rfm --format json": [*SF, "rfm", *d, "--format", "json", "--out", str(out / "rfm.json")],
        "diagnose": [*SF, "diagnose", *d],
        "flow": [*SF, "flow", *d, "--from", FLOW[0], "--to", FLOW[1]],
        "report": [*SF, "report", *d, "-o", str(out / "report.html")],
        # opt-in (--commands ...): the one-time steps, on a fresh store (see prepare())
        "ingest": [*SF, "ingest", str(parquet), "--db", str(out / "fresh.duckdb")],
        "first funnel": [*SF, "funnel", "--db", str(out / "fresh.duckdb"), "--steps", STEPS,
                         "--format", "json"],
        "first stages": [*SF, "stages", "--db", str(out / "fresh.duckdb")],
        # opt-in (--commands demo): generates, loads and analyses a fresh store of that size
        "demo": [*SF, "demo", "--db", str(out / "demo.duckdb"), "--events", str(events),
                 "--fresh", "--report", str(out / "demo.html")],
    }


def build(size: str, *, store: bool = True) -> tuple[Path, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    parquet = DATA / f"sample_{size}.parquet"
    db = DATA / f"store_{size}.duckdb"
    if not parquet.exists():
        subprocess.run([*SF, "sample", "--events", str(SIZES[size]), "--seed", "1", "--out", str(parquet)],
                       check=True, stdout=subprocess.DEVNULL)
    if not store:  # only one-time steps asked for: they make their own store
        return db, parquet
    if not db.exists():
        subprocess.run([*SF, "ingest", str(parquet), "--db", str(db)], check=True,
                       stdout=subprocess.DEVNULL)
    # warm: the first funnel builds the sorted timeline beside the store
    subprocess.run([*SF, "funnel", "--db", str(db), "--steps", STEPS, "--format", "json"],
                   check=True, stdout=subprocess.DEVNULL)
    return db, parquet


# Commands run as on a user's machine: Python keeps the bytecode of the modules it imports
# (a development shell may set PYTHONDONTWRITEBYTECODE, which makes every call compile
# shopfunnel's sources again: about 0.15 s), and one untimed run before the timed ones
# writes that bytecode and numba's kernel cache, as any earlier call would have.
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def prepare(name: str, argvs: dict[str, list[str]], out: Path) -> None:
    """Put the fresh store in the state before the one-time step ``name`` (untimed)."""
    fresh = out / "fresh.duckdb"
    folder = Path(f"{fresh}.timeline")
    if name == "ingest":
        for path in (fresh, Path(f"{fresh}.wal"), folder, Path(f"{fresh}.tmp")):
            if path.is_dir():
                shutil.rmtree(path)
            path.unlink(missing_ok=True)
        return
    if not fresh.exists():
        subprocess.run(argvs["ingest"], check=True, stdout=subprocess.DEVNULL)
    if name == "first funnel":
        shutil.rmtree(folder, ignore_errors=True)
        return
    if not folder.is_dir():
        subprocess.run(argvs["first funnel"], check=True, stdout=subprocess.DEVNULL)
    for kept in folder.glob("*.arrow"):  # the person index and the caches of one scan
        kept.unlink()


def timed(argv: list[str]) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds (user + system), peak RSS in MiB, exit code of one whole
    process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=USER_ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        err = proc.stderr.read().decode(errors="replace")[-400:] if proc.stderr else ""
        print(f"  failed ({proc.returncode}): {' '.join(argv[:6])}…\n{err}", file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="+", choices=list(SIZES))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--label", default="now", help="a name for this table (before, after, …)")
    ap.add_argument("--commands", default="", help="comma-separated subset of the commands")
    args = ap.parse_args()
    env_note = f"load average before: {os.getloadavg()[0]:.2f}"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    rows = []
    wanted = [c.strip() for c in args.commands.split(",") if c.strip()]
    for size in args.sizes:
        db, parquet = build(size, store=not wanted or any(c not in ONE_TIME for c in wanted))
        out = DATA / f"out_{size}"
        out.mkdir(exist_ok=True)
        argvs = commands(db, parquet, out, SIZES[size])
        for name, argv in argvs.items():
            if (wanted and name not in wanted) or (not wanted and name in OPT_IN):
                continue
            walls, cpus, peaks, failed = [], [], [], False
            if name not in ONE_TIME:
                timed(argv)  # untimed: bytecode and kernel caches, as after any earlier call
            load = os.getloadavg()[0]
            for _ in range(args.runs):
                if name in ONE_TIME:
                    prepare(name, argvs, out)
                wall, cpu, peak, code = timed(argv)
                failed |= code != 0
                walls.append(wall)
                cpus.append(cpu)
                peaks.append(peak)
            med, cpu = statistics.median(walls), statistics.median(cpus)
            rows.append((size, name, med, min(walls), max(walls), cpu, max(peaks), load, failed))
            print(f"{size:>5} {name:<22} {med:7.2f} s ({min(walls):.2f}–{max(walls):.2f})"
                  f" cpu {cpu:6.2f} s {max(peaks):8.0f} MiB load {load:.2f}"
                  f"{'  FAILED' if failed else ''}", flush=True)
    env_note += f", after: {os.getloadavg()[0]:.2f}"
    write(rows, args, commit, env_note)


def write(rows: list[tuple], args: argparse.Namespace, commit: str, env_note: str) -> None:
    path = HERE / "results" / "commands.md"
    head = "# Every command, whole process, warm store\n"
    sections: dict[str, str] = {}
    if path.exists():
        text = path.read_text(encoding="utf-8")
        for block in text.split("\n### ")[1:]:
            title, _, body = block.partition("\n")
            sections[title.strip()] = body.strip()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"{when} UTC, commit {commit}; {cpu_name()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB; "
        f"Python {sys.version.split()[0]}; {env_note}.",
        f"`PYTHONPATH=src python benchmarks/commands_bench.py {' '.join(args.sizes)} --runs {args.runs}"
        + (f" --commands '{args.commands}'" if args.commands else "")
        + f" --label {args.label}`",
        "",
        "| events | command | median s | range s | CPU s | peak RSS MiB | load |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for size, name, med, lo, hi, cpu, peak, load, failed in rows:
        lines.append(f"| {size} | `{name}` | {med:.2f}{' (failed)' if failed else ''} | "
                     f"{lo:.2f}–{hi:.2f} | {cpu:.2f} | {peak:,.0f} | {load:.2f} |")
    sections[args.label] = "\n".join(lines)
    body = [head, "The sample store (`shopfunnel sample --seed 1`), loaded, its timeline built; each "
            "command run as its own process (`python -m shopfunnel …`); CPU s is the median user + "
            "system time of the process (all its threads: steadier than wall time on a shared "
            "machine); peak RSS of that process; load is the 1-minute load average before the "
            "command's runs. "
            "`chdb windowFunnel` is the same 5-step, 7-day funnel through chDB over the Parquet file.", ""]
    for title, text in sections.items():
        body += [f"### {title}", "", text, ""]
    path.write_text("\n".join(body), encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
