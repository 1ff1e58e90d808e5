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


def count_columns(reached: np.ndarray, names: list[str], events: list[str]) -> Columns:
    """step, name, event, persons and conversions for a boolean (units × steps) matrix."""
    persons = reached.sum(axis=0).astype(np.int64)
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
    steps = count_columns(reached != NONE, names, events)
    persons = steps["persons"]
    prev_persons = np.r_[persons[:1], persons[:-1]]
    steps["drop_off"] = (prev_persons - persons).astype(np.int64)
    steps["drop_off_rate"] = ratio(prev_persons - persons, prev_persons)
    medians, p90s = [], []
    flat, offsets = durations_by_step(reached, prev)
    for k in range(len(names)):
        d = flat[offsets[k] : offsets[k + 1]]
        median, p90 = median_and_p90(d) if len(d) else (math.nan, math.nan)
        medians.append(median)
        p90s.append(p90)
    steps["median_seconds_from_previous"] = medians
    steps["p90_seconds_from_previous"] = p90s
    return {c: steps[c] for c in STEP_COLUMNS}


def median_and_p90(d: np.ndarray) -> tuple[float, float]:
    """``np.median(d)`` and ``np.percentile(d, 90)`` (linear interpolation), to the bit, from
    one partition: numpy's own functions import ``numpy.ma`` to check for NaN, 0.1 s of
    every funnel command. A NaN in ``d`` gives NaN for both, as numpy does. ``d`` is not
    empty."""
    n = len(d)
    if np.isnan(d).any():
        return math.nan, math.nan
    k = n // 2
    virtual = (n - 1) * 0.9  # numpy's virtual index for the 90th percentile, "linear"
    lo = int(math.floor(virtual))
    hi = min(lo + 1, n - 1)
    gamma = virtual - lo
    part = np.partition(d, sorted({k - 1 if n % 2 == 0 else k, k, lo, hi}))
    median = float(part[k]) if n % 2 else float((part[k - 1] + part[k]) / 2)
    a, b = part[lo], part[hi]
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
    n = len(names)
    by = breakdown_column(by)
    cols = [by, *BREAKDOWN_COLUMNS]
    n_labels = len(labels) + 1  # the last code is "(none)"
    if attribution == "per_step":
        codes = np.asarray(sattr)
    else:  # one code per unit: the anchor's (first) or the furthest step's (last)
        codes = furthest_codes(reached, np.asarray(aattr if attribution == "first" else sattr))
    identity = np.arange(n_labels, dtype=np.int64)
    entry = group_counts(reached, codes, identity, n_labels)[:, 0]
    all_labels = [*labels, NONE_LABEL]
    ranked = sorted(
        (c for c in range(n_labels) if entry[c]), key=lambda c: (-entry[c], all_labels[c])
    )
    kept = ranked[:top]
    lut = np.full(n_labels, len(kept), dtype=np.int64)  # everything else → "other"
    lut[kept] = np.arange(len(kept))
    counts = group_counts(reached, codes, lut, len(kept) + 1)
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
    import pandas as pd

    frames = []
    hit = out.reached != NONE
    for p in np.unique(out.period):
        sel = out.period == p
        t = pd.DataFrame(count_columns(hit[sel], names, events))
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
