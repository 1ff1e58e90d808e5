"""Funnels: how many persons (or sessions) go through a sequence of steps, and how fast.

Definitions (also in ``docs/funnels.md``; the tests check each one):

**Steps.** A step is an event name plus optional property filters
(``Step("view_item", where={"item_category": "shoes"})``); a filter key is a canonical
column, an item field (``item_id``, ``item_category``… — true when *any* item on the
event matches) or a key of ``properties``; a list of values means "any of them". An
event that matches several steps counts for each of them, as several events at the same
instant in step order.

**Attempt and window (ordered, the default).** An attempt starts at any event matching
step 1, at time ``t0``. Step k is reached when events matching steps 1..k occur in that
order, each at or after the previous one, all within ``[t0, t0 + window]`` — the end is
included: an event exactly ``window`` after ``t0`` counts, one microsecond later does not.
Other events may come between steps. A unit's level is the furthest step over all its
attempts, so a later attempt that goes further than the first one wins. This is
ClickHouse's ``windowFunnel(window)``.

**Ties.** Events are taken in the order (time, step): events with equal timestamps are
taken in step order (five steps at one instant reach step 5, whatever their order in
the file), as ``windowFunnel`` does. Exclusion events at the same instant as a step are
taken before it; in strict mode, non-step events at the same instant are taken after it.

**Strict.** As ordered, but the attempt breaks when any other event of the unit comes
between two consecutive steps; a repeat of the step just reached (a reload) does not
break it. Every attempt is considered, so a person interrupted once who comes back and
goes through in one go is counted (unlike ClickHouse's ``strict_order``).

**Any order.** Anchored at any step event, the attempt's level is the number of
*distinct* steps done within ``[t0, t0 + window]``; row k of the result counts units that
did at least k of the steps (its ``event`` column names step k only for reference).

**Exclusions.** ``exclusions=[("refund", 1, 3)]`` or ``[Step("refund")]`` (between step 1
and the last step): an exclusion event that comes after an attempt reached step ``a`` and
before it reached step ``b`` ends that attempt; the steps it reached before still count.
Not available with ``order="any"``.

**Hold a property constant.** ``hold="item_id"``: every step of an attempt carries the
same value (events without a value take no part; an item field matches each item on the
event). In strict mode only events carrying that value can break an attempt.

**Optional steps and open entry.** An optional step may be skipped: the next step can
follow the step before it; its own row counts the units whose attempt went through it.
With ``open_entry=True`` an attempt may start at any step (as GA4's open funnels): row k
counts every unit with an event of step k that starts or continues an attempt.

**Counting unit.** ``count_by="person"`` (``person_id``; in a DataFrame without it,
``anonymous_id``/``user_id``) or ``"session"`` (attempts never cross a session).
``persons`` is the number of units that reached the step. ``total_conversions`` (a field
of the result) counts every event that reached step k in a valid attempt, a repeat
included: "how many times", beside "how many persons".

**Times.** For each unit and step, the attempt that *first* reached the step is the one
reported: ``reached_at``, the time since its previous step (median and p90 over units, in
seconds) and since its step-1 anchor (end to end).

**Breakdown.** ``by`` is a column (``channel``, ``device``, ``country``, ``utm_campaign``…),
an item field (first item) or a ``properties`` key. ``attribution="first"``: a unit counts
under the value on the step-1 event that started the attempt that reached its furthest
step; ``"last"``: the value on the event of its furthest step; ``"per_step"``: at each step,
the value on that step's event. The ``top`` values by step-1 units keep their names; the
rest are folded into ``"other"``; a missing value is ``"(none)"``. Of several events of
one step at the same instant with different values, which one gives the value is not
defined.

**Trend.** ``trend="day"|"week"|"month"``: per period (UTC days, weeks from Monday,
months), the units with an attempt that *starts* in the period (at its first event: the
step-1 anchor, or any step in an open or any-order funnel), and how far those attempts
went — wherever their later steps fall. A unit with attempts starting in several periods counts in each, so the
periods do not add up to the funnel: ``result.trend_with_total()`` gives the table with
the funnel itself as its ``total`` row. ``steps``, ``breakdown``, the times and
``total_conversions`` never depend on ``trend`` or ``by``: the trend is counted apart,
and a breakdown only labels the units of the plain count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError

if TYPE_CHECKING:  # the engine (numba, DuckDB, Arrow) loads on the first count, not on import
    from shopfunnel.funnel.plan import FunnelEngine, StepCondition
    from shopfunnel.funnel.result import FunnelResult

ORDERS = ("ordered", "strict", "any")
COUNT_BY = ("person", "session")
ATTRIBUTIONS = ("first", "last", "per_step")
TRENDS = ("day", "week", "month")


@dataclass(frozen=True)
class Step:
    """A funnel step: an event name, optional property filters and a display name."""

    event: str
    where: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if not self.where:
            return self.event
        conds = ", ".join(f"{k}={v}" for k, v in self.where.items())
        return f"{self.event} [{conds}]"

    def condition(self) -> StepCondition:
        from shopfunnel.funnel.plan import StepCondition

        where = tuple(
            (str(k), tuple(v) if isinstance(v, list | tuple | set) else v)
            for k, v in self.where.items()
        )
        return StepCondition(self.event, where)


def _as_step(value: str | Step, what: str) -> Step:
    if isinstance(value, Step):
        return value
    if isinstance(value, str) and value.strip():
        return Step(value.strip())
    raise ConfigError(f"{what} {value!r} is not valid: give an event name or a Step(...)")


def _engine_for(source: Any, engine: FunnelEngine | None, local: Any) -> FunnelEngine:
    """The engine that counts: ``engine`` when given (it reads its own source; ``source``
    is then only a label, as in ``funnel(store, steps, engine=LocalEngine(store))``), an
    engine passed as ``source``, Spark for a Spark DataFrame or
    :class:`~shopfunnel.store.spark.SparkEvents`, else the local engine."""
    if engine is not None:
        return engine
    if callable(getattr(source, "run", None)):
        return source  # an engine (it has run(plan)) passed as the source
    if hasattr(source, "sparkSession") and hasattr(source, "mapInArrow"):
        from shopfunnel.funnel.spark import SparkEngine

        return SparkEngine(source.sparkSession, source)
    if getattr(source, "on_spark", False):  # shopfunnel.store.spark.SparkEvents
        from shopfunnel.funnel.spark import SparkEngine

        return SparkEngine(source.spark, source.df)
    return local(source)


MAX_WINDOW_DAYS = 3650  # ten years; longer windows would overflow microsecond arithmetic


def funnel(
    source: Any,
    steps: Sequence[str | Step],
    *,
    window: str | float = "7d",
    order: str = "ordered",
    count_by: str = "person",
    exclusions: Sequence[str | Step | tuple[str | Step, int, int]] = (),
    hold: str | None = None,
    optional_steps: Sequence[int] = (),
    open_entry: bool = False,
    by: str | None = None,
    attribution: str = "first",
    top: int = 10,
    trend: str | None = None,
    engine: FunnelEngine | None = None,
    allow_unknown: bool = False,
) -> FunnelResult:
    """Count a funnel over ``source``: a Store, a DataFrame of events (pandas, Polars,
    Arrow), a Parquet path, a Spark DataFrame (counted on Spark), or an engine such as
    ``SparkEngine(spark, "s3://shop/events/")``; an ``engine=`` given as well counts
    over its own source.

    ``steps`` are event names or :class:`Step`; ``window`` is a duration (``"30m"``,
    ``"7d"``) or seconds; ``order`` is ``"ordered"``, ``"strict"`` or ``"any"``;
    ``optional_steps`` are 1-based step numbers (not the first); ``exclusions`` are steps
    excluded between step 1 and the last, or ``(step, a, b)`` between steps ``a`` and
    ``b``. See the module docstring for the exact definition of every number.

    An event, filter key, ``by`` or ``hold`` that no event has raises
    :class:`~shopfunnel.errors.UnknownNameError` with the closest names the data has
    (a misspelling would count zero); ``allow_unknown=True`` counts anyway.
    """
    from shopfunnel.funnel.engine import FunnelPlan, LocalEngine
    from shopfunnel.funnel.result import FunnelResult

    step_list = [_as_step(s, "step") for s in steps]
    n = len(step_list)
    if n < 1:
        raise ConfigError("a funnel needs at least one step, e.g. steps=['view_item', 'purchase']")
    if n > 120:
        raise ConfigError(f"{n} steps is too many: at most 120")
    if order not in ORDERS:
        raise ConfigError(f"order={order!r} is not valid: use one of {', '.join(ORDERS)}")
    if count_by not in COUNT_BY:
        raise ConfigError(f"count_by={count_by!r} is not valid: use person or session")
    if attribution not in ATTRIBUTIONS:
        raise ConfigError(
            f"attribution={attribution!r} is not valid: use one of {', '.join(ATTRIBUTIONS)}"
        )
    if trend is not None and trend not in TRENDS:
        raise ConfigError(f"trend={trend!r} is not valid: use day, week, month or None")
    if not isinstance(top, int) or top < 1:
        raise ConfigError(f"top={top!r} is not valid: give a whole number of values ≥ 1")
    window_seconds = parse_duration_seconds(window)
    if window_seconds > MAX_WINDOW_DAYS * 86_400:
        raise ConfigError(
            f"window {window!r} is too long: the longest is {MAX_WINDOW_DAYS} days ('3650d'); "
            "for 'ever', use a window longer than the store's date range"
        )
    window_us = int(round(window_seconds * 1_000_000))
    excl: list[tuple[StepCondition, int, int]] = []
    for item in exclusions:
        if isinstance(item, tuple):
            if len(item) != 3:
                raise ConfigError(f"exclusion {item!r} is not valid: give (step, from, to)")
            ex, a, b = item
        else:
            ex, a, b = item, 1, n
        if not (isinstance(a, int) and isinstance(b, int) and 1 <= a < b <= n):
            raise ConfigError(
                f"exclusion between steps {a} and {b} is not valid: need 1 ≤ from < to ≤ {n}"
            )
        excl.append((_as_step(ex, "exclusion").condition(), a, b))
    if excl and order == "any":
        raise ConfigError("exclusions need an ordered or strict funnel, not order='any'")
    optional = [False] * n
    for k in optional_steps:
        if not (isinstance(k, int) and 2 <= k <= n - 1):
            raise ConfigError(
                f"optional step {k!r} is not valid: give a step number from 2 to {n - 1} "
                "(the first and last steps cannot be optional)"
            )
        optional[k - 1] = True
    if any(optional) and order == "any":
        raise ConfigError("optional steps need an ordered or strict funnel, not order='any'")
    plan = FunnelPlan(
        steps=tuple(s.condition() for s in step_list),
        window_us=window_us,
        order=order,  # type: ignore[arg-type]
        count_by=count_by,  # type: ignore[arg-type]
        exclusions=tuple(excl),
        hold=hold,
        optional=tuple(optional),
        open_entry=bool(open_entry),
        by=by,
        trend=trend,  # type: ignore[arg-type]
        attribution=attribution,
    )
    runner = _engine_for(source, engine, LocalEngine)
    if not allow_unknown:
        from shopfunnel.funnel.names import check_names

        check_names(runner, plan)
    names = [s.label for s in step_list]
    events = [s.event for s in step_list]
    if callable(getattr(runner, "funnel_result", None)):
        # Spark: the tables are counted where the units are (ADR 0189)
        return runner.funnel_result(  # type: ignore[attr-defined]
            plan, names=names, events=events, attribution=attribution, top=top
        )
    # The steps, breakdown, times and conversions are the plain funnel's whatever the trend
    # adds: the trend is a second count, by period of the attempts' start (ADR 0022).
    output = runner.run(replace(plan, trend=None))
    trend_output = runner.run(replace(plan, by=None)) if plan.trend else None
    return FunnelResult.build(
        output,
        trend_output=trend_output,
        names=names,
        events=events,
        plan=plan,
        attribution=attribution,
        top=top,
    )


__all__ = ["Step", "funnel"]
