"""A synthetic clickstream for the funnel benchmark, written by DuckDB in one pass.

Used until (and alongside) :mod:`shopfunnel.sample`: it needs no Python per row, so 100M
events take minutes, not hours. Each person has a home day and does ~20 events within
ten days of it; events are drawn with GA4-like frequencies; sessions are person-days and
each session has one channel. Timestamps are random microseconds, so ties are rare but
possible. The file is ordered by time, as an event log arrives.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

EVENTS = [
    ("page_view", 300), ("view_item", 250), ("add_to_cart", 110), ("view_cart", 70),
    ("begin_checkout", 70), ("add_shipping_info", 50), ("add_payment_info", 50),
    ("purchase", 40), ("remove_from_cart", 40), ("view_promotion", 20),
]
CHANNELS = ["direct", "organic search", "paid search", "organic social", "paid social",
            "email", "referral", "affiliates", "video", "display"]


def write_synthetic(path: str | Path, n_events: int, *, seed: int = 1,
                    memory_limit: str = "6GB") -> Path:
    path = Path(path)
    persons = max(1, n_events // 20)
    cum, case = 0, []
    for name, weight in EVENTS:
        cum += weight
        case.append(f"WHEN r < {cum} THEN '{name}'")
    chan = "[" + ", ".join(f"'{c}'" for c in CHANNELS) + "]"
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    day_us = 86_400_000_000
    con.execute(
        f"""
        COPY (
          WITH e AS (
            SELECT hash(i, {seed}) % {persons} AS p,
                   hash(i, {seed} + 1) % {10 * day_us} AS off,
                   hash(i, {seed} + 2) % {cum} AS r
            FROM range({n_events}) t(i)
          ), t AS (
            SELECT p, r, make_timestamp(CAST(1704067200000000
                                             + (hash(p, {seed} + 3) % 80) * {day_us}
                                             + off AS BIGINT)) AS ts
            FROM e
          )
          SELECT 'p' || lpad(CAST(p AS VARCHAR), 9, '0') AS person_id, ts,
                 CASE {' '.join(case)} END AS event,
                 'p' || CAST(p AS VARCHAR) || '-' || CAST(epoch_us(ts) // {day_us} AS VARCHAR)
                    AS session_id,
                 list_extract({chan}, CAST(1 + least(hash(p, epoch_us(ts) // {day_us}) % 16, 9)
                                          AS INTEGER)) AS channel,
                 list_extract(['desktop', 'mobile', 'tablet'],
                              CAST(1 + hash(p, 7) % 3 AS INTEGER)) AS device
          FROM t ORDER BY ts
        ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1000000, COMPRESSION zstd)
        """
    )
    con.close()
    return path


if __name__ == "__main__":
    n = int(float(sys.argv[1]))
    write_synthetic(sys.argv[2], n)
