"""Exact order statistics of an integer column on Spark, without sorting or gathering it.

The value at rank *r* (0-based, ascending) of a column of integers is found with three
histograms, each one Spark job: by ``value >> 32`` over the whole column (the bucket that
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

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

SHIFTS = (32, 16, 0)  # the histograms' bucket widths: 2^32, 2^16, 1


def values_at_ranks(df: DataFrame, column: str, ranks: Sequence[int]) -> dict[int, int]:
    """The value at each rank (0-based) of the integer ``column`` sorted ascending (nulls
    left out), exactly. Ranks must be below the number of values."""
    found = grouped_values_at_ranks(df, column, None, {None: list(ranks)})
    return found.get(None, {})


def grouped_values_at_ranks(
    df: DataFrame, column: str, group: str | None, ranks: Mapping[Any, Sequence[int]]
) -> dict[Any, dict[int, int]]:
    """Per value of the ``group`` column (``None``: the whole column is one group, keyed
    ``None``), the value at each of its ranks (module docstring), from three Spark jobs."""
    from pyspark.sql import functions as F

    x = F.col(column)
    wanted = list(dict.fromkeys((g, int(r)) for g, rs in ranks.items() for r in rs))
    if not wanted:
        return {}
    bucket: dict[tuple[Hashable, int], int | None] = {w: None for w in wanted}
    left = {w: w[1] for w in wanted}  # the rank within the current bucket
    g_col = F.col(group) if group is not None else F.lit(None)
    scope_all = df.where(x.isNotNull())
    if group is not None:
        scope_all = scope_all.where(g_col.isin([g for g in ranks]))
    for level, shift in enumerate(SHIFTS):
        key = F.shiftright(x, shift) if shift else x
        scope = scope_all
        if level:
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
    return out
