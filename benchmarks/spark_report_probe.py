"""Build the report on a local Spark and log, every 15 s, the JVM's heap and the blocks Spark
holds persisted, with the section being computed: where a report's JVM runs out of memory,
and what it held then (issue 18, ADR 0192).

    PYTHONPATH=src python benchmarks/spark_report_probe.py --events /work/bench/s100m.parquet \
        --db /work/bench/s100m.duckdb [--master 'local[2]'] [--driver-memory 4g] [--gc-log FILE]

Lines go to stderr: ``[seconds] SECTION name`` when a section starts, ``[seconds] heap used
… cached (rdd id, MiB in memory, MiB on disk)`` every 15 s. ``--gc-log`` keeps the JVM's
garbage-collector log (``-Xlog:gc*``): the humongous regions and the full pauses before a death.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from shopfunnel.cli.engine import open_source
from shopfunnel.report import make_report
from shopfunnel.store.spark import local_spark_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", required=True)
    parser.add_argument("--db", required=True, help="unused by Spark; the store's path")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--gc-log", default=None)
    args = parser.parse_args()
    started = time.time()

    def log(*parts: object) -> None:
        print(f"[{time.time() - started:7.1f}s]", *parts, file=sys.stderr, flush=True)

    java = "-XX:+ExitOnOutOfMemoryError"  # as the command line's own session
    if args.gc_log:
        java += f" -Xlog:gc*:file={args.gc_log}"
    spark = local_spark_session(
        args.master,
        driver_memory=args.driver_memory,
        conf={"spark.driver.extraJavaOptions": java},
    )

    def poll() -> None:
        runtime = spark._jvm.java.lang.Runtime.getRuntime()
        while True:
            try:
                used = (runtime.totalMemory() - runtime.freeMemory()) / 2**20
                infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()
                held = [(i.id(), i.memSize() // 2**20, i.diskSize() // 2**20) for i in infos]
                log(
                    f"heap used {used:.0f} MiB of {runtime.maxMemory() / 2**20:.0f}; "
                    f"cached (id, mem MiB, disk MiB): {held}"
                )
            except Exception as exc:  # the JVM is gone: say so once
                log("poll failed:", type(exc).__name__, exc)
                return
            time.sleep(15)

    threading.Thread(target=poll, daemon=True).start()
    with open_source(args.db, "spark", args.events, None) as source:
        built = make_report(source, title="probe", progress=lambda name: log("SECTION", name))
    log("done; problems:", built.problems)
    for sid, seconds in sorted(built.seconds.items(), key=lambda kv: -kv[1]):
        log(f"section {sid} {seconds:.1f} s")


if __name__ == "__main__":
    main()
