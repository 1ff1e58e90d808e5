"""The result of a funnel: tables built from the engine's per-unit facts.

Every number here is defined in :mod:`shopfunnel.funnel.api`; this module only aggregates
:class:`~shopfunnel.funnel.plan.EngineOutput` (per unit and step: reached, previous
step, anchor, breakdown codes) into tables.

The tables are computed as columns (NumPy arrays and lists) and become DataFrames when
first read: a command that prints a funnel never imports pandas (about 0.35 s of every
call, docs/adr/0158); ``steps``, ``breakdown``, ``total_conversions`` and ``trend`` are
DataFrames for everyone who reads them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shopfunnel import format as fmt
from shopfunnel.errors import ConfigError
from shopfunnel.funnel.kernel import NONE, durations_by_step, furthest_codes, group_counts
from shopfunnel.funnel.plan import EngineOutput, FunnelPlan

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
# Histogram edges for time to convert, in seconds: 10 s … 30 days.
BIN_EDGES = [
    0,
    10,
    60,
    300,
    900,
    3600,
    3 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    3 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
]
NONE_LABEL = "(none)"
OTHER_LABEL = "other"
TOTAL_LABEL = "total"
TREND_NOTE = (
    "each period counts the units whose attempt starts in it, and a unit with "
    "attempts in several periods counts in each: periods do not add up; the total "
    "row is the funnel itself"
)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = num.astype(float)
    den = den.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _human_seconds(s: float) -> str:
    return fmt.duration(s)


def _count_columns(reached: np.ndarray, names: list[str], events: list[str]) -> Columns:
    """step, name, event, persons and conversions for a boolean (units × steps) matrix."""
    persons = reached.sum(axis=0).astype(np.int64)
    prev = np.r_[persons[:1], persons[:-1]]
    first = np.full_like(persons, persons[0] if len(persons) else 0)
    return {
        "step": np.arange(1, len(names) + 1, dtype=np.int64),
        "name": list(names),
        "event": list(events),
        "persons": persons,
        "conversion_from_previous": _ratio(persons, prev),
        "conversion_from_start": _ratio(persons, first),
    }


def _frame(cols: Columns) -> pd.DataFrame:
    """The DataFrame of a table's columns (an empty table keeps its column names)."""
    import pandas as pd

    if not len(next(iter(cols.values()), [])):
        return pd.DataFrame(columns=list(cols))
    return pd.DataFrame(cols)


def _column_records(cols: Columns) -> list[dict[str, Any]]:
    """JSON-ready records of a table's columns: NaN becomes None, NumPy scalars Python
    values (what ``_records`` gives for the same table as a DataFrame)."""
    names = list(cols)
    values = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in cols.values()]
    return [
        {
            k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in zip(names, row, strict=True)
        }
        for row in zip(*values, strict=True)
    ]


@dataclass
class FunnelResult:
    """A counted funnel.

    ``steps``: one row per step (see ``STEP_COLUMNS``); ``breakdown``: per breakdown value
    and step (or None); ``trend``: per period of the attempt's start and step (or None);
    ``total_conversions``: per step, every event that reached it in a valid attempt.

    The breakdown's column of values is named after ``by`` (``by_column``; ``"<by> (by)"``
    when ``by`` is one of the table's own column names).

    ``steps``, ``breakdown`` and ``total_conversions`` are the same whatever ``trend`` and
    ``by`` add. The periods of ``trend`` do not add up to them: a unit with attempts
    starting in several periods counts in each (:meth:`trend_with_total` gives the table
    with the funnel itself as its ``total`` row).
    """

    _steps: Columns
    _breakdown: Columns | None
    trend: pd.DataFrame | None
    _totals: Columns
    window_seconds: float
    order: str
    count_by: str
    by: str | None = None
    attribution: str = "first"
    _reached: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    _prev: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    _anchor: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    _owner: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    _lookup: Callable[[np.ndarray], pd.DataFrame] | None = field(default=None, repr=False)
    _frames: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    # -- the tables ---------------------------------------------------------------------
    @property
    def steps(self) -> pd.DataFrame:
        """One row per step: the columns of ``STEP_COLUMNS``."""
        return self._table("steps", self._steps)

    @property
    def breakdown(self) -> pd.DataFrame | None:
        """Per breakdown value and step (None without ``by``)."""
        return None if self._breakdown is None else self._table("breakdown", self._breakdown)

    @property
    def total_conversions(self) -> pd.DataFrame:
        """Per step, every event that reached it in a valid attempt."""
        return self._table("total_conversions", self._totals)

    def _table(self, name: str, cols: Columns) -> pd.DataFrame:
        if name not in self._frames:
            self._frames[name] = _frame(cols)
        return self._frames[name]

    # -- building -----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        out: EngineOutput,
        *,
        names: list[str],
        events: list[str],
        plan: FunnelPlan,
        attribution: str = "first",
        top: int = 10,
        trend_output: EngineOutput | None = None,
    ) -> FunnelResult:
        """The tables of a count: ``out`` is the plain count (no trend) every table but the
        trend comes from; ``trend_output`` (required with ``plan.trend``) the count by
        period of the attempts' start, which only the trend table reads.

        The plain tables are never taken from the count by period: there an attempt may
        only start in its period, so a unit's rows per period hold other attempts (and
        other times) than its funnel's, and an event reached from attempts that start in
        two periods is counted in both (docs/adr/0022)."""
        n = len(names)
        trend_df = None
        if plan.trend:
            if trend_output is None:
                raise ValueError(
                    "a trend needs the count by period (trend_output) beside the plain count"
                )
            trend_df = _trend_table(trend_output, names, events)
        owner, reached, prev, anchor, sattr, aattr = (
            out.owner,
            out.reached,
            out.prev,
            out.anchor,
            out.sattr,
            out.aattr,
        )
        hit = reached != NONE
        steps = _count_columns(hit, names, events)
        persons = steps["persons"]
        prev_persons = np.r_[persons[:1], persons[:-1]]
        steps["drop_off"] = (prev_persons - persons).astype(np.int64)
        steps["drop_off_rate"] = _ratio(prev_persons - persons, prev_persons)
        medians, p90s = [], []
        flat, offsets = durations_by_step(reached, prev)
        for k in range(n):
            d = flat[offsets[k] : offsets[k + 1]]
            medians.append(float(np.median(d)) if len(d) else math.nan)
            p90s.append(float(np.percentile(d, 90)) if len(d) else math.nan)
        steps["median_seconds_from_previous"] = medians
        steps["p90_seconds_from_previous"] = p90s
        steps = {c: steps[c] for c in STEP_COLUMNS}
        breakdown = None
        if plan.by is not None:
            breakdown = _breakdown_columns(
                reached, sattr, aattr, out.labels, names, events, plan.by, attribution, top
            )
        totals = {
            "step": np.arange(1, n + 1, dtype=np.int64),
            "name": list(names),
            "event": list(events),
            "conversions": out.totals.astype(np.int64),
        }
        return cls(
            _steps=steps,
            _breakdown=breakdown,
            trend=trend_df,
            _totals=totals,
            window_seconds=plan.window_us / 1e6,
            order=plan.order,
            count_by=plan.count_by,
            by=plan.by,
            attribution=attribution,
            _reached=reached,
            _prev=prev,
            _anchor=anchor,
            _owner=owner,
            _lookup=out.lookup,
        )

    # -- drill-down -----------------------------------------------------------------------
    def time_to_convert(self, step: int | None = None) -> pd.DataFrame:
        """Histogram of seconds from the previous step to ``step`` (2..n), or end to end
        (step 1 to the last step) when ``step`` is None; one row per bin with the number
        and share of units, bins from 10 s to 30 days (the last bin is open)."""
        import pandas as pd

        n = len(self._steps["step"])
        if step is None:
            d = _durations(self._reached[:, n - 1], self._anchor[:, n - 1])
        else:
            if not (isinstance(step, int) and 2 <= step <= n):
                raise ConfigError(f"step={step!r} is not valid: give a step from 2 to {n}, or None")
            d = _durations(self._reached[:, step - 1], self._prev[:, step - 1])
        edges = np.array(BIN_EDGES + [math.inf], dtype=float)
        counts, _ = np.histogram(d, bins=edges)
        labels = [
            f"{_human_seconds(a)}–{_human_seconds(b)}"
            if math.isfinite(b)
            else f"≥ {_human_seconds(a)}"
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
        total = counts.sum()
        return pd.DataFrame(
            {
                "bin": labels,
                "from_seconds": edges[:-1],
                "to_seconds": edges[1:],
                "persons": counts.astype(np.int64),
                "share": counts / total if total else np.full(len(counts), math.nan),
            }
        )

    def dropped(self, k: int) -> pd.DataFrame:
        """The units that reached step ``k`` and not step ``k + 1``: ``person_id`` (and
        ``session_id`` when counting sessions), ``reached_at`` (when they reached step k in
        the attempt that first did) and ``started_at`` (that attempt's step-1 time)."""
        import pandas as pd

        n = len(self._steps["step"])
        if not (isinstance(k, int) and 1 <= k < n):
            raise ConfigError(f"k={k!r} is not valid: give a step from 1 to {n - 1}")
        hit = self._reached != NONE
        mask = hit[:, k - 1] & ~hit[:, k]
        owners = self._owner[mask]
        frame = pd.DataFrame(
            {
                "h": owners,
                "reached_at": pd.to_datetime(self._reached[mask, k - 1], unit="us"),
                "started_at": pd.to_datetime(self._anchor[mask, k - 1], unit="us"),
            }
        )
        if self._lookup is None or not len(owners):
            ids = pd.DataFrame(
                {"h": pd.Series([], dtype="uint64"), "person_id": pd.Series([], dtype=object)}
            )
            if self.count_by == "session":
                ids["session_id"] = pd.Series([], dtype=object)
        else:
            ids = self._lookup(owners)
            ids["h"] = ids["h"].astype("uint64")
        frame = frame.merge(ids, on="h", how="left").drop(columns="h")
        first = ["session_id", "person_id"] if self.count_by == "session" else ["person_id"]
        frame = frame[first + ["reached_at", "started_at"]]
        return frame.sort_values(["reached_at", *first], kind="stable").reset_index(drop=True)

    @property
    def by_column(self) -> str | None:
        """The name of the breakdown table's column of values (None without ``by``)."""
        return None if self.by is None else breakdown_column(self.by)

    # -- output ---------------------------------------------------------------------------
    def trend_with_total(self) -> pd.DataFrame | None:
        """The trend as people read it (None without a trend): ``period`` as the date its
        period starts (``2024-03-04``), then a ``total`` row per step that is the funnel
        itself (``steps``) — not the sum of the periods, which counts a unit once per
        period its attempts start in (:data:`TREND_NOTE`)."""
        if self.trend is None:
            return None
        import pandas as pd

        per = self.trend.copy()
        per["period"] = [fmt.timestamp(p) for p in per["period"]]
        total = self.steps[
            [
                "step",
                "name",
                "event",
                "persons",
                "conversion_from_previous",
                "conversion_from_start",
            ]
        ].assign(period=TOTAL_LABEL)
        total["conversion"] = total["conversion_from_start"]
        return pd.concat([per, total[per.columns]], ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, ``steps`` (records), ``total_conversions``, ``breakdown``
        and ``trend`` (records of :meth:`trend_with_total`, with ``trend_note`` saying how
        periods count; or None); NaN becomes None."""
        trend = self.trend_with_total()
        return {
            "order": self.order,
            "window_seconds": self.window_seconds,
            "count_by": self.count_by,
            "by": self.by,
            "attribution": self.attribution if self.by is not None else None,
            "steps": _column_records(self._steps),
            "total_conversions": _column_records(self._totals),
            "breakdown": None if self._breakdown is None else _column_records(self._breakdown),
            "trend": None if trend is None else _records(trend),
            "trend_note": None if trend is None else TREND_NOTE,
        }

    def _display_columns(self) -> Columns:
        """The step table as people read it: percents and durations as text."""
        s = self._steps
        return {
            "step": s["step"],
            "name": s["name"],
            "persons": s["persons"],
            "from start": [fmt.pct(v) for v in s["conversion_from_start"]],
            "from previous": [fmt.pct(v) for v in s["conversion_from_previous"]],
            "drop-off": s["drop_off"],
            "median time": [
                "–" if math.isnan(v) else _human_seconds(round(v))
                for v in s["median_seconds_from_previous"]
            ],
        }

    def _display(self) -> pd.DataFrame:
        return _frame(self._display_columns())

    def _title(self) -> str:
        unit = "sessions" if self.count_by == "session" else "persons"
        return f"Funnel ({self.order}, window {_human_seconds(self.window_seconds)}, {unit})"

    def __repr__(self) -> str:
        return f"{self._title()}\n{self._display().to_string(index=False)}"

    def _repr_html_(self) -> str:
        return f"<p><b>{html.escape(self._title())}</b></p>" + self._display().to_html(index=False)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    import pandas as pd

    out = []
    for rec in df.to_dict(orient="records"):
        clean = {}
        for key, value in rec.items():
            if isinstance(value, float) and math.isnan(value):
                value = None
            elif isinstance(value, pd.Timestamp):
                value = value.isoformat()
            elif hasattr(value, "item"):
                value = value.item()
            clean[key] = value
        out.append(clean)
    return out


def _durations(reached: np.ndarray, start: np.ndarray) -> np.ndarray:
    ok = (reached != NONE) & (start != NONE)
    return (reached[ok] - start[ok]) / 1e6


def _trend_table(out: EngineOutput, names: list[str], events: list[str]) -> pd.DataFrame:
    import pandas as pd

    frames = []
    hit = out.reached != NONE
    for p in np.unique(out.period):
        sel = out.period == p
        t = pd.DataFrame(_count_columns(hit[sel], names, events))
        t.insert(0, "period", pd.Timestamp(int(p), unit="us"))
        frames.append(t)
    cols = [
        "period",
        "step",
        "name",
        "event",
        "persons",
        "conversion_from_previous",
        "conversion_from_start",
    ]
    if not frames:
        return pd.DataFrame(columns=cols)
    df = pd.concat(frames, ignore_index=True)[cols]
    df["conversion"] = df["conversion_from_start"]
    return df


BREAKDOWN_COLUMNS = (
    "step",
    "name",
    "event",
    "persons",
    "conversion_from_previous",
    "conversion_from_start",
)


def breakdown_column(by: str) -> str:
    """The breakdown table's column of values: named after ``by``, unless ``by`` is one of
    the table's own columns (a property called ``name``), then ``"<by> (by)"``."""
    return f"{by} (by)" if by in BREAKDOWN_COLUMNS else by


def _breakdown_columns(
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
    n = len(names)
    by = breakdown_column(by)
    cols = [
        by,
        "step",
        "name",
        "event",
        "persons",
        "conversion_from_previous",
        "conversion_from_start",
    ]
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
        "conversion_from_previous": _ratio(persons, prev).ravel(),
        "conversion_from_start": _ratio(persons, first).ravel(),
    }
