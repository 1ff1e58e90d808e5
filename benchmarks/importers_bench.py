"""Time the GA4 and REES46 importers: staging (``read``) and the store's load.

    python benchmarks/importers_bench.py --rees46-rows 2000000 --ga4-rows 300000

Writes synthetic files in a temporary folder (REES46: ~140 bytes a row, sessions of ~10
events; GA4: ~820 bytes a row with five params and one item) and prints one line per format.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
import uuid
from pathlib import Path

from shopfunnel.ingest import read
from shopfunnel.store.store import Store


def write_rees46(path: Path, n: int, rng: random.Random) -> None:
    types = ["view"] * 20 + ["cart"] * 3 + ["remove_from_cart", "purchase"]
    sessions = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(max(n // 10, 1))]
    with open(path, "w") as f:
        f.write("event_time,event_type,product_id,category_id,category_code,brand,price,"
                "user_id,user_session\n")
        for i in range(n):
            s = rng.randrange(len(sessions))
            ts = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(1572566400 + i // 20))
            f.write(f"{ts},{rng.choice(types)},{rng.randrange(1_000_000, 2_000_000)},"
                    f"{2053013555631882655 + rng.randrange(1000)},electronics.smartphone,"
                    f"brand{rng.randrange(50)},{rng.randrange(100, 100000) / 100},"
                    f"{500000000 + s // 3},{sessions[s]}\n")


def write_ga4(path: Path, n: int, rng: random.Random) -> None:
    with open(path, "w") as f:
        for i in range(n):
            u = rng.randrange(max(n // 20, 1))
            row = {
                "event_date": "20240315", "event_timestamp": str(1710513005123456 + i * 1_000_000),
                "event_name": rng.choice(["page_view", "view_item", "add_to_cart", "session_start"]),
                # the event's identity in the export (docs/adr/0168), as BigQuery writes it
                "event_bundle_sequence_id": str(1000 + i // 4), "batch_page_id": str(1710513005000 + u),
                "batch_ordering_id": str(1 + i // 4), "batch_event_index": str(i % 4),
                "stream_id": "4179374125",
                "event_params": [
                    {"key": "ga_session_id", "value": {"int_value": str(1710511960 + u)}},
                    {"key": "page_location", "value": {"string_value": f"https://shop.example/p/{i % 500}"}},
                    {"key": "page_referrer", "value": {"string_value": "https://www.google.com/"}},
                    {"key": "engagement_time_msec", "value": {"int_value": "1234"}},
                    {"key": "session_engaged", "value": {"string_value": "1"}},
                ],
                "user_pseudo_id": f"{u}.1710511960", "user_id": None,
                "device": {"category": "mobile"}, "geo": {"country": "Germany"},
                "traffic_source": {"source": "google", "medium": "organic", "name": "(organic)"},
                "collected_traffic_source": (
                    {"manual_source": "google", "manual_medium": "cpc"} if i % 7 == 0 else None),
                "items": [{"item_id": f"SKU-{i % 300}", "item_name": "Tee", "item_category": "Apparel",
                           "price": 25.0, "quantity": "1"}],
            }
            f.write(json.dumps(row) + "\n")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench(fmt: str, path: Path, folder: Path) -> None:
    """Wall and CPU seconds (CPU is steadier when other jobs share the machine)."""
    t0, c0 = time.perf_counter(), _cpu()
    staged = read(path, format=fmt)
    t1, c1 = time.perf_counter(), _cpu()
    with Store(folder / f"{fmt}.duckdb") as store:
        result = store.load_staged(staged)
    t2, c2 = time.perf_counter(), _cpu()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{fmt}: {result.rows_read:,} rows, {path.stat().st_size / 1e6:,.0f} MB; "
          f"read {t1 - t0:.1f} s wall / {c1 - c0:.1f} s CPU "
          f"({result.rows_read / (t1 - t0):,.0f} rows/s), "
          f"store load {t2 - t1:.1f} s wall / {c2 - c1:.1f} s CPU, "
          f"total {result.rows_read / (t2 - t0):,.0f} rows/s; "
          f"staged via {'temporary Parquet' if staged.sql else 'Arrow'}; peak RSS {rss:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rees46-rows", type=int, default=2_000_000)
    parser.add_argument("--ga4-rows", type=int, default=300_000)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_rees46(folder / "rees.csv", args.rees46_rows, rng)
        write_ga4(folder / "ga4.json", args.ga4_rows, rng)
        bench("rees46", folder / "rees.csv", folder)
        bench("ga4", folder / "ga4.json", folder)


if __name__ == "__main__":
    main()
