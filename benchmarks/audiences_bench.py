"""How long audiences and flows take on a sample store: each built-in audience evaluated, a
first and a second refresh (with the membership history written), each built-in flow run, and
one scheduled round as the server runs it every minute (docs/audiences.md, ADR 0113).

    PYTHONPATH=src python benchmarks/audiences_bench.py --events 1000000 --out benchmarks/results/audiences.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from machine import cpu_name, ram_gib

from shopfunnel.audiences.definitions import builtin_audiences
from shopfunnel.audiences.flows import builtin_flows, due_now
from shopfunnel.audiences.membership import refresh_audience
from shopfunnel.audiences.saved import audience_members
from shopfunnel.audiences.schedule import run_scheduled
from shopfunnel.model import Model, model_from_dict
from shopfunnel.sample import write_sample
from shopfunnel.store.store import Store


def timed(fn):  # type: ignore[no-untyped-def]
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = Model()
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "sample.parquet"
        db = Path(tmp) / "shop.duckdb"
        write_sample(parquet, args.events, seed=5)
        with Store(db) as store:
            store.load(str(parquet))
            latest = store.db.scalar("SELECT max(ts) FROM events")
            for audience in builtin_audiences(model):
                found, wall, cpu = timed(
                    lambda a=audience: audience_members(store, a.name, model=model)
                )
                rows.append((f"evaluate `{audience.name}`", f"{len(found):,} persons", wall, cpu))
            for label in ("first", "second"):
                done, wall, cpu = timed(
                    lambda: refresh_audience(store, "abandoned-carts", as_of=latest, model=model)
                )
                rows.append(
                    (
                        f"{label} refresh of `abandoned-carts`",
                        f"{done.entered:,} entered, {done.exited:,} left",
                        wall,
                        cpu,
                    )
                )
            for flow in builtin_flows():
                run, wall, cpu = timed(lambda f=flow: due_now(store, f.name, model=model))
                rows.append((f"flow `{flow.name}` (dry run)", f"{len(run.due):,} due", wall, cpu))
            scheduled = model_from_dict({"flows": {"cart-abandonment": {"schedule": True}}})
            done, wall, cpu = timed(lambda: run_scheduled(store, now=latest, model=scheduled))
            rows.append(
                (
                    "a scheduled round: refresh `abandoned-carts`, run `cart-abandonment`",
                    f"{done.sent:,} sent",
                    wall,
                    cpu,
                )
            )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        f"# Audiences and flows ({args.events:,} sample events)",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB; load average "
        f"{os.getloadavg()[0]:.1f} at the end; commit {commit}. Command: `PYTHONPATH=src python "
        f"benchmarks/audiences_bench.py --events {args.events}`.",
        "",
        "| step | result | wall s | CPU s |",
        "|---|---|---:|---:|",
        *(f"| {what} | {result} | {wall:.2f} | {cpu:.2f} |" for what, result, wall, cpu in rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
