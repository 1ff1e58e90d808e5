"""What a funnel engine is asked and what it answers.

A :class:`FunnelPlan` says *what* to count (steps, window, order, units, breakdown, trend);
an engine (:class:`FunnelEngine`: the local one in :mod:`shopfunnel.funnel.engine`, Spark's in
:mod:`shopfunnel.funnel.spark`) turns it into :class:`EngineOutput`, the raw per-unit facts
:mod:`shopfunnel.funnel.result` builds every table from. This module is light (no DuckDB, no
numba) so the result and the faces can name these types without loading an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from shopfunnel.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

Order = Literal["ordered", "strict", "any"]
CountBy = Literal["person", "session"]
Trend = Literal["day", "week", "month"]


@dataclass(frozen=True)
class StepCondition:
    """An event name plus property filters (column or property → value or list of values)."""

    event: str
    where: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class FunnelPlan:
    """Everything an engine needs to count a funnel (validated by :func:`funnel`)."""

    steps: tuple[StepCondition, ...]
    window_us: int
    order: Order = "ordered"
    count_by: CountBy = "person"
    exclusions: tuple[tuple[StepCondition, int, int], ...] = ()  # (condition, from, to) 1-based
    hold: str | None = None
    optional: tuple[bool, ...] = ()
    open_entry: bool = False
    by: str | None = None
    trend: Trend | None = None
    attribution: str = "first"  # which codes a breakdown reads (the anchor's or the step's)


@dataclass
class EngineOutput:
    """Per counted unit (and trend period) and step: the raw facts every table is built from.

    Arrays of shape (units, steps) hold int64 microseconds (``NONE`` = not reached) or
    int32 breakdown codes (``-1`` = no value); ``labels[code]`` is the breakdown value.
    """

    owner: np.ndarray  # uint64 hash of the person (or session)
    period: np.ndarray  # int64 µs start of the trend period (0 without a trend)
    reached: np.ndarray
    prev: np.ndarray
    anchor: np.ndarray
    sattr: np.ndarray
    aattr: np.ndarray
    totals: np.ndarray
    labels: list[str]
    lookup: Callable[[np.ndarray], pd.DataFrame] = field(repr=False)


def coded_conditions(
    plan: FunnelPlan,
) -> tuple[list[tuple[int, StepCondition]], list[str], bool, int]:
    """The codes every engine gives rows: step k is ``k`` (1-based), exclusion j is ``-j``,
    any other event ``n + 1``. Also the event names in code order and whether one name
    appears in several conditions (then a row may carry several codes)."""
    coded: list[tuple[int, StepCondition]] = [
        (-(j + 1), ex[0]) for j, ex in enumerate(plan.exclusions)
    ] + [(i + 1, s) for i, s in enumerate(plan.steps)]
    names = [c.event for _, c in coded]
    return coded, names, len(set(names)) < len(names), len(plan.steps) + 1


def require_sessions(columns: Any) -> None:
    """Counting by session needs a ``session_id`` column."""
    if "session_id" not in columns:
        raise ConfigError("count_by='session' needs a session_id column in the events")


class FunnelEngine(Protocol):
    """What an engine does: count a plan over a source."""

    def run(self, plan: FunnelPlan) -> EngineOutput: ...
