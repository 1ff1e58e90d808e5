"""The result of a funnel: :class:`FunnelResult`, its tables, drill-downs and output.

Every number here is defined in :mod:`shopfunnel.funnel.api`; the tables are built by
:mod:`shopfunnel.funnel.tables` from :class:`~shopfunnel.funnel.plan.EngineOutput` (per
unit and step: reached, previous step, anchor, breakdown codes), which the result keeps for
the drill-downs (time to convert, who dropped).

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
from shopfunnel.funnel.kernel import NONE
from shopfunnel.funnel.plan import EngineOutput, FunnelPlan
from shopfunnel.funnel.tables import (
    STEP_COLUMNS,
    Columns,
    breakdown_column,
    breakdown_columns,
    frame,
    frame_columns,
    records,
    step_columns,
    total_columns,
    trend_table,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BIN_EDGES",
    "STEP_COLUMNS",
    "TOTAL_LABEL",
    "TREND_NOTE",
    "FunnelResult",
    "breakdown_column",
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
TOTAL_LABEL = "total"
TREND_NOTE = (
    "each period counts the units whose attempt starts in it, and a unit with "
    "attempts in several periods counts in each: periods do not add up; the total "
    "row is the funnel itself"
)


def _human_seconds(s: float) -> str:
    return fmt.duration(s)


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
    # counted on Spark (shopfunnel.funnel.spark_tables.SparkUnits): the units stay there and
    # the drill-downs ask for what they show; the arrays above are then empty
    _drill: Any = field(default=None, repr=False)
    _frames: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def release(self) -> None:
        """Let go of what a funnel counted on Spark keeps there for its drill-downs (its
        units, persisted): a drill-down after it counts them again. Nothing to do for a
        funnel counted here."""
        if self._drill is not None:
            self._drill.release()

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
            self._frames[name] = frame(cols)
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
        trend_df = None
        if plan.trend:
            if trend_output is None:
                raise ValueError(
                    "a trend needs the count by period (trend_output) beside the plain count"
                )
            trend_df = trend_table(trend_output, names, events)
        reached, prev, anchor = out.reached, out.prev, out.anchor
        breakdown = None
        if plan.by is not None:
            breakdown = breakdown_columns(
                reached, out.sattr, out.aattr, out.labels, names, events, plan.by, attribution, top
            )
        return cls(
            _steps=step_columns(reached, prev, names, events),
            _breakdown=breakdown,
            trend=trend_df,
            _totals=total_columns(out.totals, names, events),
            window_seconds=plan.window_us / 1e6,
            order=plan.order,
            count_by=plan.count_by,
            by=plan.by,
            attribution=attribution,
            _reached=reached,
            _prev=prev,
            _anchor=anchor,
            _owner=out.owner,
            _lookup=out.lookup,
        )

    # -- drill-down -----------------------------------------------------------------------
    def time_to_convert(self, step: int | None = None) -> pd.DataFrame:
        """Histogram of seconds from the previous step to ``step`` (2..n), or end to end
        (step 1 to the last step) when ``step`` is None; one row per bin with the number
        and share of units, bins from 10 s to 30 days (the last bin is open)."""
        import pandas as pd

        n = len(self._steps["step"])
        if step is not None and not (isinstance(step, int) and 2 <= step <= n):
            raise ConfigError(f"step={step!r} is not valid: give a step from 2 to {n}, or None")
        edges = np.array(BIN_EDGES + [math.inf], dtype=float)
        k, start = (n - 1, "n") if step is None else (step - 1, "v")
        if self._drill is not None:
            counts = self._drill.histogram(k, start, edges)
        else:
            times = self._anchor if start == "n" else self._prev
            counts, _ = np.histogram(_durations(self._reached[:, k], times[:, k]), bins=edges)
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
        if self._drill is not None:
            owners, reached_at, started_at = self._drill.dropped(k)
        else:
            hit = self._reached != NONE
            mask = hit[:, k - 1] & ~hit[:, k]
            owners = self._owner[mask]
            reached_at, started_at = self._reached[mask, k - 1], self._anchor[mask, k - 1]
        frame = pd.DataFrame(
            {
                "h": owners,
                "reached_at": pd.to_datetime(reached_at, unit="us"),
                "started_at": pd.to_datetime(started_at, unit="us"),
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
            "steps": records(self._steps),
            "total_conversions": records(self._totals),
            "breakdown": None if self._breakdown is None else records(self._breakdown),
            "trend": None if trend is None else records(frame_columns(trend)),
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
        return frame(self._display_columns())

    def _title(self) -> str:
        unit = "sessions" if self.count_by == "session" else "persons"
        return f"Funnel ({self.order}, window {_human_seconds(self.window_seconds)}, {unit})"

    def __repr__(self) -> str:
        return f"{self._title()}\n{self._display().to_string(index=False)}"

    def _repr_html_(self) -> str:
        return f"<p><b>{html.escape(self._title())}</b></p>" + self._display().to_html(index=False)


def _durations(reached: np.ndarray, start: np.ndarray) -> np.ndarray:
    ok = (reached != NONE) & (start != NONE)
    return (reached[ok] - start[ok]) / 1e6
