"""Exact order statistics of an integer column on Spark, without sorting or gathering it.

The value at rank *r* (0-based, ascending) of a column of integers is found with three
histograms, each one Spark job (the first also counts the values, so the ranks a quantile
needs can depend on how many there are): by ``value >> 32`` over the whole column (the bucket that
holds rank *r*, counting from the smallest), by ``value >> 16`` within that bucket, and by
the value itself within that sub-bucket. Each histogram returns at most 65,536 rows for
values under 2^48 in magnitude (microseconds: 8.9 years), so what reaches the driver does
not grow with the data. Ranks of several groups (a ``group`` column: the steps of a funnel,
the stages of the placement) are found in the same three jobs. Integer shifts round towards
minus infinity, so negative values sort as they should.

The quantiles built on these ranks are NumPy's (:mod:`shopfunnel.stages.quantiles`,
:func:`shopfunnel.funnel.tables.median_and_p90_at`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

SHIFTS = (32, 16, 0)  # the histograms' bucket widths: 2^32, 2^16, 1


def order_statistics(
    df: DataFrame,
    column: str,
    group: str | None,
    ranks_of: Callable[[Any, int], Sequence[int]],
) -> tuple[dict[Any, int], dict[Any, dict[int, int]]]:
    """Per value of ``group`` (``None``: one group keyed ``None``), the number of values
    and the value at each rank ``ranks_of(group, number)`` asks for: the first histogram
    gives the numbers too, so three Spark jobs in all (module docstring)."""
    from pyspark.sql import functions as F

    x = F.col(column)
    g_col = F.col(group) if group is not None else F.lit(None)
    scope_all = df.where(x.isNotNull())
    sizes: dict[Any, int] = {}
    bucket: dict[tuple[Hashable, int], int | None] = {}
    left: dict[tuple[Hashable, int], int] = {}  # the rank within the current bucket
    wanted: list[tuple[Hashable, int]] = []
    for level, shift in enumerate(SHIFTS):
        key = F.shiftright(x, shift) if shift else x
        scope = scope_all
        if level:
            if not wanted:
                break
            parent = F.shiftright(x, SHIFTS[level - 1])
            pairs = sorted({(g, b) for (g, _), b in bucket.items()}, key=str)
            cond = F.lit(False)
            for g, b in pairs:
                one = parent == F.lit(b) if group is None else (g_col == F.lit(g)) & (parent == b)
                cond = cond | one
            scope = scope.where(cond)
        hist: dict[Any, list[tuple[int, int]]] = {}
        for row in (
            scope.groupBy(g_col.alias("g"), key.alias("k"))
            .agg(F.count(F.lit(1)).alias("n"))
            .collect()
        ):
            hist.setdefault(row["g"], []).append((int(row["k"]), int(row["n"])))
        if not level:
            sizes = {g: sum(n for _, n in h) for g, h in hist.items()}
            wanted = list(
                dict.fromkeys((g, int(r)) for g, n in sizes.items() for r in ranks_of(g, n))
            )
            bucket = {w: None for w in wanted}
            left = {w: w[1] for w in wanted}
        step = SHIFTS[level - 1] - shift if level else 0
        for w in wanted:
            g, _ = w
            parent_bucket = bucket[w]
            before = 0
            for k, n in sorted(hist.get(g, [])):
                if level and (k >> step) != parent_bucket:
                    continue
                if left[w] < before + n:
                    bucket[w], left[w] = k, left[w] - before
                    break
                before += n
            else:
                raise ValueError(f"rank {w[1]} is past the {before:,} values of {column!r}")
    out: dict[Any, dict[int, int]] = {}
    for (g, r), v in bucket.items():
        out.setdefault(g, {})[r] = int(v)  # type: ignore[arg-type]
    return sizes, out
