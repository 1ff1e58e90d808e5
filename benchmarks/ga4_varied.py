"""Write a varied GA4 export for comparing two importers row by row (issue 17).

    PYTHONPATH=src python benchmarks/ga4_varied.py OUT.json [--rows 200000] [--seed 1]

The synthetic export of ``importers_bench.write_ga4`` is uniform (five params, one item,
no user ids, no purchases, no bad lines). This one mixes it with rows drawn from the random
row strategy of ``tests/ingest/test_ga4_bulk.py`` (numbers as text and as JSON numbers, blank
and odd texts, duplicated and unmapped params, purchases with ecommerce, campaigns and
last-click records, experiment events, bad timestamps and names), plus bad lines (not JSON,
a JSON array, a blank line) every few thousand rows. Drawn rows are reused with their
``batch_event_index`` set to their copy's number, so copies are distinct events; a share of
them keep no identity fields at all (the line hash, docs/adr/0168).

Compare the whole ``events`` table that two importers write from it (``--on-error skip``),
sorted, and their rejects.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "ingest"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BAD = ['{"event_name": "x"', "[1, 2]", "", "   ", '{"event_timestamp": "soon", "event_name": "a"}']


def drawn_rows(count: int, seed: int) -> list[dict]:
    """``count`` rows from the test suite's random GA4 row strategy (hypothesis)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed
    from test_ga4_bulk import row  # the test strategy

    out: list[dict] = []

    @hseed(seed)
    @settings(
        max_examples=count, database=None, suppress_health_check=list(HealthCheck), deadline=None
    )
    @given(row)
    def collect(r: dict) -> None:
        out.append(r)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collect()
    return out


def _fits(row: dict, scratch: Path) -> bool:
    """Whether DuckDB's JSON reader takes the row into the importer's declared columns."""
    import duckdb

    from shopfunnel.ingest.ga4_bulk import COLUMNS

    scratch.write_text(json.dumps(row) + "\n")
    try:
        duckdb.sql(
            f"SELECT * FROM read_json($1, format = 'newline_delimited', columns = {COLUMNS}, "
            "auto_detect = false)",
            params=[str(scratch)],
        ).fetchall()
    except duckdb.Error:
        return False
    return True


def write_varied(path: Path, rows: int, seed: int = 1, *, clean: bool = False) -> None:
    """Write ``rows`` lines: uniform synthetic rows, drawn rows and bad lines, mixed (no bad
    or blank lines with ``clean``: a file DuckDB's JSON reader takes whole, docs/adr/0182)."""
    from importers_bench import write_ga4

    rng = random.Random(seed)
    uniform = path.with_suffix(".uniform.tmp")
    write_ga4(uniform, rows, rng)
    pool = drawn_rows(2000, seed)
    if clean:
        scratch = path.with_suffix(".row.tmp")
        pool = [r for r in pool if _fits(r, scratch)]
        scratch.unlink()
    with open(uniform, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as out:
        for i, line in enumerate(src):
            if i % 5000 == 4999 and not clean:
                out.write(BAD[(i // 5000) % len(BAD)] + "\n")
            elif i % (10 if clean else 3) == 1:
                r = dict(pool[i % len(pool)])
                if i % 9 == 1:  # no identity fields: the line's md5 keys the event
                    for k in (
                        "event_bundle_sequence_id",
                        "batch_page_id",
                        "batch_ordering_id",
                        "batch_event_index",
                        "stream_id",
                    ):
                        r.pop(k, None)
                    r["event_date"] = str(i)  # a distinct line
                else:
                    r["batch_event_index"] = str(i)
                out.write(json.dumps(r) + "\n")
            else:
                out.write(line)
    uniform.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clean", action="store_true", help="no bad or blank lines")
    args = parser.parse_args()
    write_varied(args.out, args.rows, args.seed, clean=args.clean)


if __name__ == "__main__":
    main()
