"""One command as whole processes, two code trees alternating in the same run.

    python benchmarks/process_ab.py "python -m shopfunnel funnel --db STORE --steps ... --format json" \
        before=/path/to/old/src after=src [--runs 10]

Each ``NAME=PYTHONPATH`` runs the command with that ``PYTHONPATH`` (a tree's ``src``, optionally
with a directory of other library versions in front, e.g. ``/tmp/typer29:/tmp/old/src``;
``NAME=PYTHONPATH,VAR=VALUE,...`` also sets environment variables, e.g.
``hugepages=src,NUMPY_MADVISE_HUGEPAGE=1 default=src``);
the variants alternate run after run, so a loaded machine weighs on both alike. Prints the
median and minimum wall and CPU (user + system of the process, from ``wait4``) and the
median peak RSS per variant, and the load average. CPU seconds are the figure to compare on a
shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("command")
    parser.add_argument("variants", nargs="+", help="NAME=PYTHONPATH")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    variants = dict(v.split("=", 1) for v in args.variants)
    extra = {
        name: dict(kv.split("=", 1) for kv in spec.split(",")[1:]) for name, spec in variants.items()
    }
    variants = {name: spec.split(",")[0] for name, spec in variants.items()}
    env0 = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, path in variants.items():
            started = time.perf_counter()
            proc = subprocess.Popen(
                args.command,
                shell=True,
                env={**env0, "PYTHONPATH": path, **extra[name]},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            if status != 0:
                raise SystemExit(f"{name}: the command failed (status {status})")
            runs[name].append(
                (time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
            )
    for name, got in runs.items():
        wall = [w for w, _, _ in got]
        cpu = [c for _, c, _ in got]
        peak = [m for _, _, m in got]
        print(
            f"{name:12s} wall median {statistics.median(wall):.3f} s (min {min(wall):.3f})  "
            f"CPU median {statistics.median(cpu):.3f} s (min {min(cpu):.3f})  "
            f"peak RSS median {statistics.median(peak):.0f} MiB  load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
