"""Fresh funnels while events arrive: the live timeline at 10M stored + 100,000 fresh events.

    PYTHONPATH=src python benchmarks/live_bench.py [--source /work/bench/s10m.duckdb]
        [--fresh 100000] [--batches 2] [--runs 5] [--out benchmarks/results/live.md]

1. Copies the source store and its timeline folder to ``/work/bench/live-<pid>.duckdb``
   (the source is never opened for writing) and checks the copy's timeline is current.
2. Counts the 5-step funnel over the base (in process, median of ``--runs``).
3. Generates ``--fresh`` events the way a live shop sends them: returning visitors of the
   store (anonymous ids from the base, no ``session_id``: the store continues their
   sessions), some of whom sign in (an identify that stitches their base history to a new
   user id), and new visitors; all after the store's last event. They are appended with
   :meth:`Store.load` in ``--batches`` batches (the collector's writer loads up to 50,000
   events a batch), each writing its delta segment: the cost of an append.
4. Counts funnels on the live timeline: the first one after the appends (which makes the
   view: base + delta), then ``--runs`` of each plan, and checks the 5-step funnel against
   the SQL path over the same store (it must include the fresh events, and it must count
   them as a rebuild would).
5. Compacts the delta into a new base (the cost of a compaction) and counts again; a full
   rebuild of the timeline from the store is timed for comparison.

Writes the figures, machine, versions and commit to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from machine import cpu_name, ram_gib  # benchmarks/machine.py, beside this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = ["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"]
PLANS = {
    "5 steps, ordered, persons": {},
    "5 steps, ordered, sessions": {"count_by": "session"},
    "5 steps, by channel": {"by": "channel"},
    "5 steps, strict": {"order": "strict"},
    "5 steps, any order, weekly trend": {"order": "any", "trend": "week"},
}


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def fresh_events(store, n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` events after the store's last one: 60% from returning visitors (5% of those
    not signed in yet sign in as a new user, which stitches their stored history), 40% from
    new visitors; a visit is a run of funnel steps."""
    rng = np.random.default_rng(seed)
    last = store.db.scalar("SELECT max(ts) FROM events")
    sample = store.db.rows(
        "SELECT anonymous_id, bool_and(person_id = anonymous_id) FROM events WHERE user_id "
        "IS NULL GROUP BY 1 USING SAMPLE 20000 ROWS (reservoir, 7)")
    returning = [r[0] for r in sample]
    anonymous = {r[0] for r in sample if r[1]}  # not signed in yet: may sign in now
    names = ["page_view", *STEPS]
    keep = [1.0, 0.9, 0.45, 0.6, 0.8, 0.7]  # chance to go on to the next step
    rows: list[dict] = []
    visitor = 0
    while len(rows) < n:
        if rng.random() < 0.6:
            anon = returning[int(rng.integers(len(returning)))]
        else:
            anon, visitor = f"live-a{visitor}", visitor + 1
        t = last + dt.timedelta(seconds=float(rng.uniform(0, 7200)))
        channel = ["organic search", "paid search", "email", "direct", None][int(rng.integers(5))]
        device = ["mobile", "desktop", "tablet"][int(rng.integers(3))]
        user = f"live-u-{anon}" if anon in anonymous and rng.random() < 0.05 else None
        for i, name in enumerate(names):
            if rng.random() > keep[i]:
                break
            rows.append({"event_id": f"live-{len(rows)}", "ts": t, "event": name,
                         "anonymous_id": anon, "user_id": None, "session_id": None,
                         "channel": channel, "device": device, "country": "US"})
            t += dt.timedelta(seconds=float(rng.uniform(5, 120)))
            if user is not None and i == 2:  # signs in at the cart: stitches the history
                rows.append({**rows[-1], "event_id": f"live-{len(rows)}", "event": "login",
                             "user_id": user})
    return pd.DataFrame(rows[:n])


def _verdict(plan_runs: dict[str, list[tuple[float, float]]], load: float) -> str:
    """The target (under 0.5 s, in process) read against the live runs: wall time when the
    machine was quiet enough to show it, else CPU time over the two counting threads."""
    walls = [r[0] for runs in plan_runs.values() for r in runs]
    cpus = {name: statistics.median(r[1] for r in runs) for name, runs in plan_runs.items()}
    worst = max(cpus, key=cpus.get)
    threads = os.cpu_count() or 1
    text = (f"**Target (under 0.5 s in process, fresh events included).** Slowest live plan by "
            f"CPU: {worst}, {cpus[worst]:.3f} s of CPU over {threads} counting threads; with "
            "the files in the page cache and the cores free, its wall time would lie between "
            f"{cpus[worst] / threads:.2f} s and {cpus[worst]:.2f} s. ")
    if statistics.median(walls) < 0.5:
        return text + f"Measured wall times: median {statistics.median(walls):.3f} s: met."
    return text + (f"The median wall time above is {statistics.median(walls):.2f} s: not "
                   f"shown here. The machine's load average was {load:.1f} on {threads} cores "
                   "(shared by other jobs), so each thread got a fraction of a core; the funnel "
                   "over the base alone took about as long in the same conditions. Re-run on a "
                   "quiet machine to read the target in wall time.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="/work/bench/s10m.duckdb")
    ap.add_argument("--fresh", type=int, default=100_000)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "live.md"))
    ap.add_argument("--keep", action="store_true", help="keep the copy afterwards")
    args = ap.parse_args()

    from shopfunnel.funnel.api import funnel
    from shopfunnel.funnel.engine import LocalEngine
    from shopfunnel.store import live, segments
    from shopfunnel.store import timeline as tl_mod
    from shopfunnel.store.store import Store

    load_before = os.getloadavg()[0]
    src = Path(args.source)
    dst = Path(f"/work/bench/live-{os.getpid()}.duckdb")
    shutil.copy2(src, dst)
    shutil.copytree(str(src) + ".timeline", str(dst) + ".timeline")
    lines: list[str] = []
    try:
        store = Store(dst)
        if not tl_mod.is_current(store):
            sys.exit(f"the timeline beside {src} is not current: count a funnel on it first")
        base = LocalEngine(store).timeline()
        n_base = len(base)

        def count(**kw):
            return funnel(store, STEPS, **kw)

        before = count()  # compile and warm the page cache
        base_runs = {}
        for name, kw in PLANS.items():
            count(**kw)
            base_runs[name] = [timed(lambda k=kw: count(**k))[1:] for _ in range(args.runs)]

        fresh = fresh_events(store, args.fresh)
        appended = []
        segment_s: list[float] = []
        real_append = segments.append

        def traced(*a, **k):
            out, w, _ = timed(lambda: real_append(*a, **k))
            segment_s.append(w)
            return out

        segments.append = traced
        try:
            for part in np.array_split(np.arange(len(fresh)), args.batches):
                batch = fresh.iloc[part]
                result, w, c = timed(lambda b=batch: store.load(b))
                appended.append((len(batch), result.rows_added, w, c))
        finally:
            segments.append = real_append
        tl_mod._CACHE.pop(store, None)  # time the view from the files
        current, view_s, view_cpu = timed(lambda: tl_mod.is_current(store))
        assert current, "the appends must extend the timeline"
        view = LocalEngine(store).timeline()
        assert view.side is not None
        tl_mod._CACHE.pop(store, None)
        first, first_s, first_cpu = timed(count)  # the view made again, then the funnel
        plan_runs = {}
        results = {}
        for name, kw in PLANS.items():
            results[name] = count(**kw)
            plan_runs[name] = [timed(lambda k=kw: count(**k))[1:] for _ in range(args.runs)]
        sql, sql_s, _ = timed(lambda: funnel(store, STEPS, engine=LocalEngine(store, timeline=False)))
        same = sql.steps["persons"].tolist() == first.steps["persons"].tolist()
        grew = [a - b for a, b in zip(first.steps["persons"], before.steps["persons"], strict=True)]

        folded, compact_s, compact_cpu = timed(lambda: live.compact(store))
        assert folded is not None and folded.side is None
        after_runs = [timed(count)[1] for _ in range(args.runs)]
        after = count()
        assert after.steps["persons"].tolist() == first.steps["persons"].tolist()
        columns = {row[0]: row[1] for row in store.db.rows("DESCRIBE events")}
        _, rebuild_s, rebuild_cpu = timed(lambda: tl_mod.build(
            store.db, "events", '"person_id"', columns, key="reference"))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        store.close()
    finally:
        if not args.keep:
            Path(dst).unlink(missing_ok=True)
            Path(str(dst) + ".wal").unlink(missing_ok=True)
            for suffix in (".timeline", ".timeline.delta"):
                shutil.rmtree(str(dst) + suffix, ignore_errors=True)
            for left in Path("/work/bench").glob(f"{dst.name}.timeline.*"):
                shutil.rmtree(left, ignore_errors=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("duckdb", "numba", "numpy",
                                                                 "pyarrow", "pandas"))
    med = statistics.median
    lines += [
        "# The live timeline: fresh funnels while events arrive",
        "",
        "Issue 17: a funnel over 10M events plus 100,000 fresh ones in under 0.5 s, in "
        "process, including the fresh ones (`benchmarks/results/live.md`, written by "
        "`benchmarks/live_bench.py`; design in `docs/store.md`, ADRs 0150–0153).",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}; {cpu_name()}, "
        f"{os.cpu_count()} cores, {ram_gib():.0f} GiB; Linux {platform.release()}; Python "
        f"{platform.python_version()}; {versions}; load average before: {load_before:.2f}.",
        f"`PYTHONPATH=src python benchmarks/live_bench.py --source {src} --fresh {args.fresh} "
        f"--batches {args.batches} --runs {args.runs}`",
        "",
        f"A copy of the prebuilt {n_base:,}-event store with its timeline; {len(fresh):,} fresh "
        "events appended with `Store.load` (60% from returning visitors of the store, without a "
        "session id; 5% of those never signed in sign in as a new user, which stitches their "
        "stored history; "
        "40% from new visitors). Funnels in process, the 5 steps "
        f"{', '.join(STEPS)}, 7-day window. Wall seconds (CPU seconds where given); "
        "medians of the runs with their range.",
        "",
        "| what | wall s | CPU s | notes |",
        "|---|---:|---:|---|",
    ]
    for name, runs in base_runs.items():
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        lines.append(f"| {name}, base only (before the appends) | {med(walls):.3f} "
                     f"({min(walls):.3f}–{max(walls):.3f}) | {med(cpus):.3f} | {args.runs} runs |")
    for i, (rows, added, w, c) in enumerate(appended, 1):
        lines.append(f"| append batch {i}: `Store.load` of {rows:,} events | {w:.3f} | {c:.3f} | "
                     f"{added:,} added; of which writing the delta segment {segment_s[i - 1]:.3f} s |")
    state = view.live
    lines += [
        f"| making the view (base + delta, from the files) | {view_s:.3f} | {view_cpu:.3f} | "
        f"side: {len(view.side):,} rows ({state.delta_rows:,} delta rows, "
        f"{state.moved_rows:,} base rows of their persons) |",
        f"| first funnel after the appends | {first_s:.3f} | {first_cpu:.3f} | making the view "
        "included |",
    ]
    for name, runs in plan_runs.items():
        walls = [r[0] for r in runs]
        cpus = [r[1] for r in runs]
        lines.append(f"| {name}, live | {med(walls):.3f} ({min(walls):.3f}–{max(walls):.3f}) | "
                     f"{med(cpus):.3f} | {args.runs} runs |")
    lines += [
        f"| the same 5-step funnel by SQL (reference) | {sql_s:.3f} | | equal counts: {same} |",
        f"| compaction into a new base | {compact_s:.3f} | {compact_cpu:.3f} | "
        f"{len(folded):,} rows written, renamed into place |",
        f"| funnel after the compaction | {med(after_runs):.3f} "
        f"({min(after_runs):.3f}–{max(after_runs):.3f}) | | {args.runs} runs |",
        f"| full rebuild of the timeline from the store (for comparison) | {rebuild_s:.3f} | "
        f"{rebuild_cpu:.3f} | what a load without a delta costs the next funnel |",
        "",
        f"Persons per step before the appends: {before.steps['persons'].tolist()}; after: "
        f"{first.steps['persons'].tolist()} (the fresh events add {grew}); the SQL path over the "
        f"same store: {sql.steps['persons'].tolist()}. Peak RSS of the process: {rss:,.0f} MiB.",
        "",
        _verdict(plan_runs, load_before),
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
