"""Time the five-stage analyses on a generated store.

    python benchmarks/stages_timing.py --events 1000000 [--db /tmp/stages_1m.duckdb]

Uses the sample store generator (``shopfunnel.sample.write_sample``) when it is
available, else a quick synthetic log (uniform times over a year, persons drawn from a
skewed distribution, events drawn with funnel-like frequencies). Prints a Markdown table
row per measured call; the results live in benchmarks/results/stages.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from shopfunnel.stages.placement import placement
from shopfunnel.stages.summary import stage_flow, stage_summary
from shopfunnel.store.store import Store

EVENTS = {
    "page_view": 0.45, "view_item_list": 0.10, "view_item": 0.20, "search": 0.03,
    "add_to_cart": 0.08, "view_cart": 0.04, "begin_checkout": 0.03, "add_payment_info": 0.015,
    "purchase": 0.02, "scroll": 0.035,
}


def synthetic(n_events: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_persons = max(n_events // 10, 1)
    person = rng.integers(0, n_persons, n_events)
    names = np.array(list(EVENTS))
    probs = np.array(list(EVENTS.values()))
    event = names[rng.choice(len(names), n_events, p=probs / probs.sum())]
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    ts = start + rng.integers(0, 365 * 86_400 * 1_000_000, n_events)
    is_order = event == "purchase"
    order_id = np.where(is_order, np.char.add("o", np.arange(n_events).astype(str)), None)
    value = np.where(is_order, rng.gamma(2.0, 40.0, n_events).round(2), np.nan)
    channels = np.array(["direct", "organic search", "paid search", "email", "organic social"])
    return pd.DataFrame({
        "event_id": np.char.add("e", np.arange(n_events).astype(str)),
        "ts": pd.to_datetime(ts.astype("datetime64[us]")),
        "event": event,
        "anonymous_id": np.char.add("p", person.astype(str)),
        "session_id": np.char.add(np.char.add("s", person.astype(str)), np.char.add(
            "-", (ts // (86_400 * 1_000_000)).astype(str))),
        "channel": channels[rng.integers(0, len(channels), n_events)],
        "order_id": order_id,
        "value": value,
    })


def build(db: str, n_events: int) -> str:
    if Path(db).exists():
        return "existing file"
    try:
        from shopfunnel.sample import write_sample
    except ImportError:
        write_sample = None
    if write_sample is not None:
        parquet = Path(db).with_suffix(".parquet")
        write_sample(parquet, n_events, seed=7)
        with Store(db) as store:
            store.load(str(parquet))
        return f"shopfunnel.sample.write_sample(seed=7) via {parquet}"
    with Store(db) as store:
        store.load(synthetic(n_events))
    return "synthetic (benchmarks/stages_timing.py)"


def timed(label: str, fn) -> float:
    """Wall time, and CPU time of this process (all threads; not the CLI's subprocess)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    took, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"| {label} | {took:.2f} s | {cpu:.2f} s |")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    db = args.db or f"/tmp/stages_{args.events}.duckdb"
    t = time.perf_counter()
    source = build(db, args.events)
    print(f"store {db} from {source} in {time.perf_counter() - t:.1f} s")
    with Store(db, read_only=True) as store:
        info = store.info()
        print(f"{info['events']:,} events, {info['persons']:,} persons, {info['orders']:,} orders,"
              f" {info['first_event']} to {info['last_event']}")
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        print("| call | wall | CPU (this process) |\n|---|---|---|")
        placed = None

        def run_placement() -> None:
            nonlocal placed
            placed = placement(store)

        timed("placement(store) (place_persons)", run_placement)
        timed("stage_summary(store)", lambda: stage_summary(store))
        last = pd.Timestamp(info["last_event"])
        timed("stage_flow(store, last - 7d, last)",
              lambda: stage_flow(store, last - pd.Timedelta(days=7), last))
    cmd = [sys.executable, "-m", "shopfunnel", "stages", "--db", db, "--format", "json"]
    timed("CLI `shopfunnel stages --format json` (process start included)",
          lambda: subprocess.run(cmd, check=True, capture_output=True))
    print(stage_summary_text(db))


def stage_summary_text(db: str) -> str:
    with Store(db, read_only=True) as store:
        return stage_summary(store).drop(columns=["threshold_source"]).to_string(index=False)


if __name__ == "__main__":
    main()
