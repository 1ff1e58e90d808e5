"""The tables of a funnel as columns: steps, total conversions, breakdown and trend, and the
JSON records of any of them.

Each table is a dict of equal-length columns (NumPy arrays or lists) built from the engine's
per-unit arrays (:class:`~shopfunnel.funnel.plan.EngineOutput`); every number is defined in
:mod:`shopfunnel.funnel.api`. :class:`~shopfunnel.funnel.result.FunnelResult` holds them and
turns them into DataFrames when read, so pandas is imported only inside the functions that
build a DataFrame (a printed funnel never loads it, docs/adr/0158).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from shopfunnel.funnel.kernel import NONE
from shopfunnel.funnel.plan import EngineOutput
from shopfunnel.funnel.tallies import durations_by_step, furthest_codes, group_counts

if TYPE_CHECKING:
    import pandas as pd

Columns = dict[str, Any]  # column name → a list or a 1-D array, every column one length

STEP_COLUMNS = [
    "step",
    "name",
    "event",
    "persons",
    "conversion_from_previous",
    "conversion_from_start",
    "drop_off",
    "drop_off_rate",
    "median_seconds_from_previous",
    "p90_seconds_from_previous",
]
BREAKDOWN_COLUMNS = (
    "step",
    "name",
    "event",
    "persons",
    "conversion_from_previous",
    "conversion_from_start",
)
NONE_LABEL = "(none)"
OTHER_LABEL = "other"


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as floats, NaN where ``den`` is 0."""
    num = num.astype(float)
    den = den.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def counted_columns(persons: np.ndarray, names: list[str], events: list[str]) -> Columns:
    """step, name, event, persons and conversions from the units reaching each step."""
    persons = np.asarray(persons, dtype=np.int64)
    prev = np.r_[persons[:1], persons[:-1]]
    first = np.full_like(persons, persons[0] if len(persons) else 0)
    return {
        "step": np.arange(1, len(names) + 1, dtype=np.int64),
        "name": list(names),
        "event": list(events),
        "persons": persons,
        "conversion_from_previous": ratio(persons, prev),
        "conversion_from_start": ratio(persons, first),
    }


def step_columns(
    reached: np.ndarray, prev: np.ndarray, names: list[str], events: list[str]
) -> Columns:
    """The steps table (:data:`STEP_COLUMNS`): persons and conversions, the drop-off from
    the previous step, and the median and 90th percentile of the seconds from the previous
    step among the units that reached the step (NaN when none did)."""
    flat, offsets = durations_by_step(reached, prev)
    times = [
        median_and_p90(flat[offsets[k] : offsets[k + 1]])
        if offsets[k + 1] > offsets[k]
        else (math.nan, math.nan)
        for k in range(len(names))
    ]
    return step_columns_from((reached != NONE).sum(axis=0), times, names, events)


def step_columns_from(
    persons: np.ndarray, times: list[tuple[float, float]], names: list[str], events: list[str]
) -> Columns:
    """The steps table from the units reaching each step and each step's median and 90th
    percentile of seconds from the previous step (NaN when no unit has one)."""
    steps = counted_columns(persons, names, events)
    persons = steps["persons"]
    prev_persons = np.r_[persons[:1], persons[:-1]]
    steps["drop_off"] = (prev_persons - persons).astype(np.int64)
    steps["drop_off_rate"] = ratio(prev_persons - persons, prev_persons)
    steps["median_seconds_from_previous"] = [m for m, _ in times]
    steps["p90_seconds_from_previous"] = [p for _, p in times]
    return {c: steps[c] for c in STEP_COLUMNS}


def median_and_p90(d: np.ndarray) -> tuple[float, float]:
    """``np.median(d)`` and ``np.percentile(d, 90)`` (linear interpolation), to the bit, from
    one partition: numpy's own functions import ``numpy.ma`` to check for NaN, 0.1 s of
    every funnel command. A NaN in ``d`` gives NaN for both, as numpy does. ``d`` is not
    empty."""
    if np.isnan(d).any():
        return math.nan, math.nan
    part = np.partition(d, median_and_p90_ranks(len(d)))
    return median_and_p90_at(len(d), lambda ranks: {r: part[r] for r in ranks})


def median_and_p90_ranks(n: int) -> list[int]:
    """The ranks (0-based, ascending) :func:`median_and_p90_at` reads in a sample of ``n``."""
    k = n // 2
    lo = int(math.floor((n - 1) * 0.9))
    return sorted({k - 1 if n % 2 == 0 else k, k, lo, min(lo + 1, n - 1)})


def median_and_p90_at(
    n: int, values_at: Callable[[list[int]], dict[int, Any]]
) -> tuple[float, float]:
    """NumPy's median and 90th percentile of a sample of ``n`` values (``n ≥ 1``) from the
    values at a few ranks of the sorted sample (``values_at(ranks)``; the ranks are
    :func:`median_and_p90_ranks`): the same arithmetic as NumPy, so the same bits, whether
    the ranks come from a partition here or from Spark (:mod:`shopfunnel.store.spark_ranks`)."""
    v = values_at(median_and_p90_ranks(n))
    k = n // 2
    virtual = (n - 1) * 0.9  # numpy's virtual index for the 90th percentile, "linear"
    lo = int(math.floor(virtual))
    hi = min(lo + 1, n - 1)
    gamma = virtual - lo
    median = float(v[k]) if n % 2 else float((v[k - 1] + v[k]) / 2)
    a, b = v[lo], v[hi]
    diff = b - a
    p90 = float(b - diff * (1 - gamma)) if gamma >= 0.5 else float(a + diff * gamma)
    return median, p90


def total_columns(totals: np.ndarray, names: list[str], events: list[str]) -> Columns:
    """The total conversions table: per step, every event that reached it in a valid attempt."""
    return {
        "step": np.arange(1, len(names) + 1, dtype=np.int64),
        "name": list(names),
        "event": list(events),
        "conversions": totals.astype(np.int64),
    }


def breakdown_column(by: str) -> str:
    """The breakdown table's column of values: named after ``by``, unless ``by`` is one of
    the table's own columns (a property called ``name``), then ``"<by> (by)"``."""
    return f"{by} (by)" if by in BREAKDOWN_COLUMNS else by


def breakdown_columns(
    reached: np.ndarray,
    sattr: np.ndarray,
    aattr: np.ndarray,
    labels: list[str],
    names: list[str],
    events: list[str],
    by: str,
    attribution: str,
    top: int,
) -> Columns:
    """The breakdown table: per value of ``by`` (the ``top`` values by units at step 1, then
    ``other``) and step, persons and conversions; ``attribution`` picks each unit's value
    (``first``: the anchor's, ``last``: the furthest step's, ``per_step``: each step's)."""
    n_labels = len(labels) + 1  # the last code is "(none)"
    if attribution == "per_step":
        codes = np.asarray(sattr)
    else:  # one code per unit: the anchor's (first) or the furthest step's (last)
        codes = furthest_codes(reached, np.asarray(aattr if attribution == "first" else sattr))
    identity = np.arange(n_labels, dtype=np.int64)
    per_code = group_counts(reached, codes, identity, n_labels)
    return breakdown_from_counts(per_code, labels, names, events, by, top)


def breakdown_from_counts(
    per_code: np.ndarray, labels: list[str], names: list[str], events: list[str], by: str, top: int
) -> Columns:
    """The breakdown table (:func:`breakdown_columns`) from the units reaching each step per
    breakdown value: ``per_code`` is (values + 1) × steps, its last row the units without a
    value, ``labels`` the values of the other rows."""
    n = len(names)
    by = breakdown_column(by)
    cols = [by, *BREAKDOWN_COLUMNS]
    n_labels = len(labels) + 1
    entry = per_code[:, 0] if n else np.zeros(n_labels, dtype=np.int64)
    all_labels = [*labels, NONE_LABEL]
    ranked = sorted(
        (c for c in range(n_labels) if entry[c]), key=lambda c: (-entry[c], all_labels[c])
    )
    kept = ranked[:top]
    lut = np.full(n_labels, len(kept), dtype=np.int64)  # everything else → "other"
    lut[kept] = np.arange(len(kept))
    counts = np.zeros((len(kept) + 1, n), dtype=np.int64)
    np.add.at(counts, lut, per_code)
    # "other" holds the long tail, and with per-step attribution also values first seen
    # after step 1 (they have no entry count to rank by).
    has_other = len(ranked) > top or bool(counts[len(kept)].any())
    group_names = [all_labels[c] for c in kept] + ([OTHER_LABEL] if has_other else [])
    if not group_names:
        return {c: [] for c in cols}
    persons = counts[: len(group_names)].astype(np.int64)  # groups × steps
    prev = np.concatenate([persons[:, :1], persons[:, :-1]], axis=1)
    first = np.repeat(persons[:, :1], n, axis=1)
    return {
        by: [value for value in group_names for _ in range(n)],
        "step": np.tile(np.arange(1, n + 1, dtype=np.int64), len(group_names)),
        "name": list(names) * len(group_names),
        "event": list(events) * len(group_names),
        "persons": persons.ravel(),
        "conversion_from_previous": ratio(persons, prev).ravel(),
        "conversion_from_start": ratio(persons, first).ravel(),
    }


def trend_table(out: EngineOutput, names: list[str], events: list[str]) -> pd.DataFrame:
    """The trend: per period of the attempts' start (``period``, its first instant) and step,
    persons and conversions (``conversion`` is ``conversion_from_start``)."""

    hit = out.reached != NONE
    periods = np.unique(out.period)
    per_period = np.array([hit[out.period == p].sum(axis=0) for p in periods], dtype=np.int64)
    return trend_from_counts(periods, per_period, names, events)


def trend_from_counts(
    periods: np.ndarray, persons: np.ndarray, names: list[str], events: list[str]
) -> pd.DataFrame:
    """The trend table (:func:`trend_table`) from the units reaching each step per period
    (``persons``: periods × steps; ``periods``: their starts in µs, ascending)."""
    import pandas as pd

    frames = []
    for p, row in zip(periods, persons, strict=True):
        t = pd.DataFrame(counted_columns(row, names, events))
        t.insert(0, "period", pd.Timestamp(int(p), unit="us"))
        frames.append(t)
    cols = ["period", *BREAKDOWN_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=cols)
    df = pd.concat(frames, ignore_index=True)[cols]
    df["conversion"] = df["conversion_from_start"]
    return df


def frame(cols: Columns) -> pd.DataFrame:
    """The DataFrame of a table's columns (an empty table keeps its column names)."""
    import pandas as pd

    if not len(next(iter(cols.values()), [])):
        return pd.DataFrame(columns=list(cols))
    return pd.DataFrame(cols)


def frame_columns(df: pd.DataFrame) -> Columns:
    """A DataFrame's columns as lists of Python values (for :func:`records`)."""
    return {name: df[name].tolist() for name in df.columns}


def records(cols: Columns) -> list[dict[str, Any]]:
    """JSON-ready records of a table's columns: NaN becomes None, a time ISO 8601 text, a
    NumPy scalar its Python value."""
    names = list(cols)
    values = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in cols.values()]
    return [
        {k: _plain(v) for k, v in zip(names, row, strict=True)} for row in zip(*values, strict=True)
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value
