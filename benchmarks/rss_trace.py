"""Where a command's memory goes: run one shopfunnel command in this process and sample, every
100 ms, its RSS (anonymous and file-backed), DuckDB's own memory (``duckdb_memory()``) and
the shopfunnel frames of every thread; the samples where RSS moved by more than 150 MiB or
the code moved are written to ``TRACE_OUT`` (default ``rss_trace.txt``), the peak to stderr.

    PYTHONPATH=src TRACE_OUT=/tmp/report.txt python benchmarks/rss_trace.py report \
        --db benchmarks/data/store_100m.duckdb -o /tmp/report.html

``CAP=1500MB`` sets DuckDB's ``memory_limit`` on every store connection (an experiment). The
sampling itself costs a little CPU; time commands with ``commands_bench.py``, not with this.
(Session 9, issue 19: the profiles behind ADR 0180 and 0181.)"""

import os
import sys
import threading
import time
import traceback

from shopfunnel.store import db as dbm

DBS = []
_init = dbm.Database.__init__


def init(self, *a, **k):
    _init(self, *a, **k)
    if self.path != ":memory:" and not DBS:
        DBS.append(self._con.cursor())


dbm.Database.__init__ = init
if os.environ.get("CAP"):
    orig = dbm.Database._configure

    def conf(self):
        orig(self)
        if self.path != ":memory:":
            self._con.execute(f"SET memory_limit = '{os.environ['CAP']}'")

    dbm.Database._configure = conf
samples = []
stop = False


def rss():
    d = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "RssAnon", "RssFile")):
                k, v = line.split(":")
                d[k] = int(v.split()[0]) // 1024
    return d


def duck():
    if not DBS:
        return 0
    try:
        return int(
            DBS[0]
            .execute("SELECT sum(memory_usage_bytes)//1048576 FROM duckdb_memory()")
            .fetchone()[0]
            or 0
        )
    except Exception:
        return -1


def where():
    out = []
    for tid, fr in sys._current_frames().items():
        if tid == threading.get_ident():
            continue
        st = [
            f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}"
            for f in traceback.extract_stack(fr)
            if "shopfunnel" in f.filename
        ]
        if st:
            out.append(" > ".join(st[-3:]))
    return " || ".join(out)


def sampler():
    t0 = time.time()
    while not stop:
        r = rss()
        samples.append((time.time() - t0, r["VmRSS"], r["RssAnon"], r["RssFile"], duck(), where()))
        time.sleep(0.1)


th = threading.Thread(target=sampler, daemon=True)
th.start()
from shopfunnel.cli import main  # noqa: E402  (after the patches above)

sys.argv = ["shopfunnel"] + sys.argv[1:]
try:
    main()
except SystemExit:
    pass
finally:
    stop = True
    time.sleep(0.2)
    peak = max(samples, key=lambda s: s[1])
    with open(os.environ.get("TRACE_OUT", "rss_trace.txt"), "w") as f:
        last = None
        lastw = None
        for t, r, a, fi, d, w in samples:
            if last is None or abs(r - last) > 150 or w != lastw:
                f.write(f"{t:7.2f} rss={r:6d} anon={a:6d} file={fi:6d} duck={d:6d} {w[:220]}\n")
                last = r
            lastw = w
    print(f"PEAK {peak[:5]} {peak[5][:300]}", file=sys.stderr)
