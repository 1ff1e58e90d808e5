"""`shopfunnel diagnose` from two source trees, runs interleaved: a fair before/after on a busy machine.

    git archive BASE src | tar -x -C /tmp/before
    python benchmarks/diagnose_ab.py STORE --before /tmp/before/src --after src [--pairs 3]

Each pair runs ``python -m shopfunnel diagnose --db STORE`` once with each tree on
``PYTHONPATH`` (the order alternating from pair to pair), so both see the same load; prints
wall and CPU time (user + system of the process and its threads, from ``wait4``) of every
run and their medians. Nothing is written: quote the output where it is used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def run(store: str, src: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": src}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfunnel", "diagnose", "--db", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"diagnose failed with PYTHONPATH={src}")
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--before", required=True, help="source tree (the folder holding shopfunnel/)")
    ap.add_argument("--after", required=True)
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    trees = [("before", args.before), ("after", args.after)]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in trees}
    for i in range(args.pairs):
        for name, src in trees if i % 2 == 0 else trees[::-1]:
            load = os.getloadavg()[0]
            wall, cpu = run(args.store, src)
            results[name].append((wall, cpu))
            print(
                f"{name}: wall {wall:.2f} s, CPU {cpu:.2f} s (load before {load:.1f})", flush=True
            )
    for name, runs in results.items():
        print(
            f"{name}: median wall {statistics.median(r[0] for r in runs):.2f} s, "
            f"median CPU {statistics.median(r[1] for r in runs):.2f} s"
        )


if __name__ == "__main__":
    main()
