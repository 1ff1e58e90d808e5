"""Calibrate the sample store's step intercepts to the published session rates.

Generates a default sample (no incidents), measures the share of sessions reaching
each level, and moves each step's log-odds intercept by the gap between the target
and the measured conditional rate; repeats. Prints the intercepts to paste into
``shopfunnel/sample/model.py`` (INTERCEPTS) and the rates before and after.

    PYTHONPATH=src python benchmarks/calibrate_sample.py [--events 2000000] [--rounds 4]
"""

from __future__ import annotations

import argparse

import duckdb
import numpy as np

from shopfunnel.sample import generate_sample
from shopfunnel.sample import model as m

LEVEL_SQL = """
SELECT {cols} FROM (
  SELECT session_id,
         {flags}
  FROM t GROUP BY session_id)
"""


def session_rates(table, by: str | None = None):
    """Share of sessions with at least one event of each step (by a column if given)."""
    con = duckdb.connect()
    con.register("t", table)
    flags = ", ".join(f"bool_or(event = '{s}') AS {s}" for s in m.STEPS)
    group = f", arg_min({by}, ts) AS g" if by else ""
    cols = ", ".join(f"avg({s}::INT) AS {s}" for s in m.STEPS)
    sql = (
        f"SELECT {'g, ' if by else ''}count(*) AS sessions, {cols} FROM (SELECT session_id, "
        f"{flags}{group} FROM t WHERE session_id NOT LIKE '%-refund' GROUP BY session_id)"
        f"{' GROUP BY g ORDER BY purchase DESC' if by else ''}"
    )
    return con.sql(sql).df()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    for r in range(args.rounds):
        rates = session_rates(generate_sample(args.events, seed=args.seed)).iloc[0]
        reached = np.array([1.0] + [rates[s] for s in m.STEPS])
        target = np.array([1.0] + [m.TARGETS[s] for s in m.STEPS])
        cond = reached[1:] / reached[:-1]
        want = target[1:] / target[:-1]
        print(
            f"round {r}: sessions {int(rates['sessions']):,}",
            " ".join(f"{s}={rates[s]:.4f}" for s in m.STEPS),
        )
        m.INTERCEPTS[:] = m.INTERCEPTS + (logit(want) - logit(cond))
        print("  intercepts ->", np.round(m.INTERCEPTS, 3).tolist())
    print(session_rates(generate_sample(args.events, seed=args.seed)).T)


if __name__ == "__main__":
    main()
