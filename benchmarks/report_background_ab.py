"""The report built in one process with the diagnosis in the background (B) and in order (S),
alternating, after one warm-up build (imports, kernels), on a store of your choice.

    PYTHONPATH=src python benchmarks/report_background_ab.py STORE.duckdb [B,S,B,S,S,B]

Prints wall and CPU seconds of ``make_report`` per build, the load before it, and the
seconds of the diagnosis section (in the background: how long its analysis took there).
Both modes give the same page (tests/test_report_context.py); only the time differs.
"""

from __future__ import annotations

import os
import sys
import time

from shopfunnel.report import context, make_report
from shopfunnel.store.store import Store


def main() -> None:
    store_path = sys.argv[1]
    modes = (sys.argv[2] if len(sys.argv) > 2 else "B,S,B,S,S,B").split(",")
    background = context.second_connection
    with Store(store_path, read_only=True) as store:
        make_report(store)  # warm-up
        for mode in modes:
            context.second_connection = background if mode == "B" else (lambda s: None)
            load = os.getloadavg()[0]
            wall, cpu = time.perf_counter(), time.process_time()
            built = make_report(store)
            print(
                f"{mode} wall {time.perf_counter() - wall:6.2f} s  cpu {time.process_time() - cpu:6.2f} s"
                f"  load {load:.2f}  diagnosis {built.seconds['diagnosis']:.2f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
