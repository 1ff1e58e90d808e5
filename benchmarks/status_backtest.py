"""What the statuses foretold: place everyone at a past date, then look at what they did next.

For each status at ``--as-of``: how many persons, the share who came back (any event in
``(as_of, as_of + horizon]``), the share who moved on to a later stage by ``as_of + horizon``
(placed again then, with the lookback stretched by the horizon so nobody's stage can fall
back), and the share who ordered in that time. A status a store can act on should sort
people: active come back more often than stalled, stalled more often than gone.

    PYTHONPATH=src python benchmarks/status_backtest.py --db shop.duckdb --as-of 2024-03-20 --horizon 40

Prints a Markdown table (results in benchmarks/results/status.md).
"""

from __future__ import annotations

import argparse
from datetime import timedelta

import pandas as pd

from shopfunnel.stages import placement
from shopfunnel.stages.status import STATUSES
from shopfunnel.store import Store


def backtest(
    store: Store, as_of: str, horizon_days: float, lookback_days: float = 365
) -> pd.DataFrame:
    """One row per status: persons, came_back, moved_on, ordered (shares of the persons)."""
    before = placement(store, as_of=as_of, lookback=f"{lookback_days}d")
    start = before.as_of
    if start is None:
        raise SystemExit("the store is empty")
    end = start + timedelta(days=horizon_days)
    after = placement(store, as_of=end, lookback=f"{lookback_days + horizon_days}d")
    p = before.persons.set_index("person_id")
    later = after.persons.set_index("person_id").reindex(p.index)
    active_after = store.db.df(
        "SELECT DISTINCT person_id FROM events WHERE ts > ? AND ts <= ?", [start, end]
    )
    p["came_back"] = p.index.isin(active_after["person_id"])
    p["moved_on"] = later["stage_index"].to_numpy() > p["stage_index"].to_numpy()
    p["ordered"] = later["orders"].to_numpy() > p["orders"].to_numpy()
    rows = []
    for status in STATUSES:
        group = p[p["status"] == status]
        n = len(group)
        rows.append(
            {
                "status": status,
                "persons": n,
                **{
                    c: (group[c].mean() if n else float("nan"))
                    for c in ("came_back", "moved_on", "ordered")
                },
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--as-of", required=True, help="the date to place persons at")
    parser.add_argument("--horizon", type=float, default=30, help="days to watch afterwards")
    args = parser.parse_args()
    with Store(args.db, read_only=True) as store:
        table = backtest(store, args.as_of, args.horizon)
    print(f"as of {args.as_of}, watched for {args.horizon:g} days\n")
    print("| status | persons | came back | moved on | ordered |")
    print("|---|---|---|---|---|")
    for r in table.itertuples(index=False):
        print(
            f"| {r.status} | {r.persons:,} | {r.came_back:.1%} | {r.moved_on:.1%} | {r.ordered:.1%} |"
        )


if __name__ == "__main__":
    main()
