"""How well do the recommendations predict what a person views next? Hit rate on each
person's held-out last session, on the sample store, against a most-popular baseline.

Run from the repository root:

    PYTHONPATH=src .venv/bin/python benchmarks/recommend_quality.py [--events 1000000] [--seed 1] [--write]

It writes a sample store of ``--events`` events to a temporary DuckDB file and runs
:func:`shopfunnel.programs.recommend.evaluate_recommendations` (definitions in
docs/programs.md, "Recommendations") for viewed-together with cosine and with lift, and for
bought-together, each against the most-popular baseline at k = 5 and 10. The same figures
come from ``shopfunnel recommend --evaluate --db FILE``. ``--write`` puts the table in
benchmarks/results/recommend.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    import pandas as pd

    from shopfunnel.programs.recommend import evaluate_recommendations
    from shopfunnel.sample import generate_sample
    from shopfunnel.store.store import Store

    variants = [("viewed", "cosine", 3), ("viewed", "lift", 3), ("bought", "cosine", 2)]
    tables = []
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.duckdb") as store:
        store.load(generate_sample(args.events, seed=args.seed))
        for kind, score, support in variants:
            t = time.perf_counter()
            table = evaluate_recommendations(
                store,
                ks=(5, 10),
                kind=kind,
                score=score,  # type: ignore[arg-type]
                min_support=support,
            )
            seconds = time.perf_counter() - t
            table.insert(0, "model", f"{kind} together, {score}, min support {support}")
            table["seconds"] = round(seconds, 2)
            tables.append(table)
    result = pd.concat(tables, ignore_index=True)
    result["hit_rate"] = result["hit_rate"].map(lambda x: f"{100 * x:.1f}%")
    print(result.to_string(index=False))
    if args.write:
        lines = [
            "# Recommendation hit rate on the sample store",
            "",
            f"Measured {dt.date.today()} with `PYTHONPATH=src .venv/bin/python benchmarks/recommend_quality.py "
            f"--events {args.events} --seed {args.seed} --write` on {platform.machine()}, Python "
            f"{platform.python_version()}. Leave-last-session-out: each person with two or more sessions that "
            "viewed an item has their last such session held out; a hit at k is one of the top-k items "
            "recommended from their earlier events viewed in it (docs/programs.md). The baseline "
            "(`most popular`) recommends the items viewed in the most training sessions, with the same "
            "exclusions (items bought, items already viewed). `seconds` times the whole evaluation.",
            "",
            "| model | method | k | persons | covered | hits | hit rate | seconds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.model} | {r.method} | {r.k} | {r.persons:,} | {r.covered:,} | {r.hits:,} | "
            f"{r.hit_rate} | {r.seconds} |"
            for r in result.itertuples()
        ]
        out = HERE / "results" / "recommend.md"
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
