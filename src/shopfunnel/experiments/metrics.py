"""Experiment metrics read from the store, per exposed person, handed over as sufficient
statistics per variant (the maths is in :mod:`shopfunnel.experiments.statistics`).

Every metric counts a person's events **after their exposure**, within ``window`` of it
(``exposed_at ≤ ts ≤ exposed_at + window``, both ends included; ``window=None`` reads to the
end of the data). Units are the experiment's persons (:mod:`shopfunnel.experiments.exposures`).

- ``conversion(event)``: the share of persons with ``event`` in the window (a
  :class:`Proportion`). ``conversion(event, from_event=...)``: among persons who did
  ``from_event`` in the window, the share who then did ``event`` at or after their first
  ``from_event`` and within the window (conversion between two funnel steps). Conditioning
  on the first step is what an analyst reads, but if the variant changes who reaches it the
  comparison is no longer randomised: read ``conversion(event)`` beside it.
- ``revenue_per_visitor()``: each person's summed ``purchase`` value in the window, 0 for
  persons who bought nothing (a :class:`Mean`).
- ``average_order_value()``: revenue over orders (distinct ``order_id`` of ``purchase``
  events) in the window, summed over the arm's persons (a :class:`Ratio`, delta method).
- ``retention(days)``: among persons whose first order after exposure falls in the window,
  the share who placed another order within ``days`` days of it (a :class:`Proportion`).
- ``refund_rate()``: of the orders placed in the window, the share that have a ``refund``
  event (any time later), over the arm's persons (a :class:`Ratio`; lower is better).

With ``cuped_days`` the same metric over the ``cuped_days`` before each person's exposure
is the CUPED covariate (``exposed_at - cuped_days ≤ ts < exposed_at``), for
``conversion(event)`` without ``from_event`` and ``revenue_per_visitor`` (an
:class:`Adjusted` statistic; a person with no history counts 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError
from shopfunnel.experiments.difference import Better
from shopfunnel.experiments.statistics import Adjusted, Mean, Proportion, Ratio, Statistic

if TYPE_CHECKING:
    from shopfunnel.store.store import Store

MetricKind = Literal[
    "conversion", "revenue_per_visitor", "average_order_value", "retention", "refund_rate"
]
US = 1_000_000
UNLIMITED_US = 200 * 365 * 86_400 * US  # "to the end of the data"
# a person's offset from their exposure, in microseconds
OFFSET = "(epoch_us(e.ts) - epoch_us(u.exposed_at))"
IN_WINDOW = f"{OFFSET} BETWEEN 0 AND ?"
BEFORE = f"({OFFSET} < 0 AND {OFFSET} >= -?)"


@dataclass(frozen=True)
class Metric:
    """What to measure per exposed person (definitions in the module docstring). Build one
    with :func:`conversion`, :func:`revenue_per_visitor`, :func:`average_order_value`,
    :func:`retention` or :func:`refund_rate`."""

    kind: MetricKind
    event: str | None = None
    from_event: str | None = None
    days: float | None = None
    better: Better = "higher"

    @property
    def name(self) -> str:
        if self.kind == "conversion":
            return f"{self.from_event} → {self.event}" if self.from_event else f"{self.event}"
        if self.kind == "retention":
            return f"ordered again within {self.days:g}d"
        return self.kind

    @property
    def supports_cuped(self) -> bool:
        return self.kind == "revenue_per_visitor" or (
            self.kind == "conversion" and self.from_event is None
        )


def conversion(event: str, from_event: str | None = None, *, better: Better = "higher") -> Metric:
    """The share of persons who did ``event`` after exposure (after ``from_event``, when
    given). ``better="lower"`` for a guardrail such as a payment-failure event."""
    for name, value in (("event", event), ("from_event", from_event)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{name}={value!r}: name an event, e.g. 'purchase'")
    if from_event is not None and from_event == event:
        raise ConfigError(f"from_event and event are both {event!r}: name two different steps")
    if better not in ("higher", "lower"):
        raise ConfigError(f"better={better!r}: use 'higher' or 'lower'")
    return Metric("conversion", event=event, from_event=from_event, better=better)


def revenue_per_visitor() -> Metric:
    """Purchase value per exposed person (0 for those who bought nothing)."""
    return Metric("revenue_per_visitor")


def average_order_value() -> Metric:
    """Revenue over orders of the arm's persons (a ratio metric)."""
    return Metric("average_order_value")


def retention(days: float = 30) -> Metric:
    """The share of buyers after exposure who ordered again within ``days`` of that order."""
    if isinstance(days, bool) or not isinstance(days, int | float) or not days > 0:
        raise ConfigError(f"retention days={days!r}: use a positive number of days, e.g. 30")
    return Metric("retention", days=float(days))


def refund_rate() -> Metric:
    """The share of the orders placed after exposure that were refunded (lower is better)."""
    return Metric("refund_rate", better="lower")


METRIC_SYNTAX = (
    "EVENT (share who did it), FROM>EVENT (conversion between two steps), "
    "revenue_per_visitor, average_order_value, refund_rate, retention[:DAYS]"
)


def parse_metric(text: str) -> Metric:
    """A metric from its text form: ``purchase``, ``begin_checkout>purchase``,
    ``revenue_per_visitor``, ``average_order_value``, ``refund_rate``, ``retention:30``."""
    spec = text.strip()
    named = {
        "revenue_per_visitor": revenue_per_visitor,
        "average_order_value": average_order_value,
        "refund_rate": refund_rate,
    }
    if spec in named:
        return named[spec]()
    if spec == "retention" or spec.startswith("retention:"):
        days = spec.partition(":")[2] or "30"
        try:
            return retention(float(days))
        except ValueError:
            raise ConfigError(
                f"metric {text!r}: days {days!r} is not a number; write e.g. retention:30"
            ) from None
    if ">" in spec:
        first, _, last = (part.strip() for part in spec.partition(">"))
        return conversion(last, from_event=first)
    if not spec:
        raise ConfigError(f"metric {text!r} is empty: use {METRIC_SYNTAX}")
    return conversion(spec)


def window_us(window: str | float | None) -> int:
    """A window (``"7d"``, seconds, or None for no limit) in microseconds."""
    return UNLIMITED_US if window is None else round(parse_duration_seconds(window) * US)


# Each query yields per variant: n, x_sum, x_sq (and y_sum, y_sq, xy for ratios and CUPED).
_AGGREGATE = """
SELECT variant, count(*) AS n, sum(x) AS x_sum, sum(x * x) AS x_sq,
       sum(y) AS y_sum, sum(y * y) AS y_sq, sum(x * y) AS xy
FROM per GROUP BY variant ORDER BY variant
"""


def _per_person(metric: Metric, window: int, pre: int) -> tuple[str, list[object]]:
    """SQL of the ``per`` CTE (variant, person_id, x, y) and its parameters."""
    if metric.kind == "conversion" and metric.from_event is None:
        return (
            f"""per AS (
            SELECT u.variant, u.person_id,
                   coalesce(bool_or({IN_WINDOW}), false)::DOUBLE AS x,
                   coalesce(bool_or({BEFORE}), false)::DOUBLE AS y
            FROM units u LEFT JOIN events e ON e.person_id = u.person_id AND e.event = ?
            GROUP BY ALL)""",
            [window, pre, metric.event],
        )
    if metric.kind == "conversion":
        return (
            f"""steps AS (
            SELECT u.variant, u.person_id,
                   min(e.ts) FILTER (WHERE e.event = ? AND {IN_WINDOW}) AS first_from,
                   max(e.ts) FILTER (WHERE e.event = ? AND {IN_WINDOW}) AS last_to
            FROM units u JOIN events e ON e.person_id = u.person_id AND e.event IN (?, ?)
            GROUP BY ALL),
        per AS (
            SELECT variant, person_id, coalesce(last_to >= first_from, false)::DOUBLE AS x,
                   0.0 AS y
            FROM steps WHERE first_from IS NOT NULL)""",
            [metric.from_event, window, metric.event, window, metric.from_event, metric.event],
        )
    if metric.kind == "revenue_per_visitor":
        return (
            f"""per AS (
            SELECT u.variant, u.person_id,
                   coalesce(sum(e.value) FILTER (WHERE {IN_WINDOW}), 0)::DOUBLE AS x,
                   coalesce(sum(e.value) FILTER (WHERE {BEFORE}), 0)::DOUBLE AS y
            FROM units u LEFT JOIN events e ON e.person_id = u.person_id AND e.event = 'purchase'
            GROUP BY ALL)""",
            [window, pre],
        )
    if metric.kind == "average_order_value":
        return (
            f"""per AS (
            SELECT u.variant, u.person_id,
                   coalesce(sum(e.value) FILTER (WHERE {IN_WINDOW}), 0)::DOUBLE AS x,
                   count(DISTINCT e.order_id) FILTER (WHERE {IN_WINDOW})::DOUBLE AS y
            FROM units u LEFT JOIN events e ON e.person_id = u.person_id AND e.event = 'purchase'
            GROUP BY ALL)""",
            [window, window],
        )
    if metric.kind == "retention":
        return (
            f"""orders AS (
            SELECT person_id, order_id, min(ts) AS ts FROM events
            WHERE event = 'purchase' AND order_id IS NOT NULL GROUP BY ALL),
        first AS (
            SELECT u.variant, u.person_id, arg_min(e.order_id, e.ts) AS first_order,
                   min(e.ts) AS first_ts
            FROM units u JOIN orders e ON e.person_id = u.person_id
            WHERE {IN_WINDOW} GROUP BY ALL),
        per AS (
            SELECT f.variant, f.person_id, coalesce(bool_or(o.order_id IS NOT NULL),
                   false)::DOUBLE AS x, 0.0 AS y
            FROM first f LEFT JOIN orders o ON o.person_id = f.person_id
                 AND o.order_id <> f.first_order
                 AND epoch_us(o.ts) - epoch_us(f.first_ts) BETWEEN 0 AND ?
            GROUP BY ALL)""",
            [window, round((metric.days or 0) * 86_400 * US)],
        )
    if metric.kind == "refund_rate":
        return (
            f"""placed AS (
            SELECT u.variant, u.person_id, e.order_id
            FROM units u JOIN events e ON e.person_id = u.person_id AND e.event = 'purchase'
                 AND e.order_id IS NOT NULL AND {IN_WINDOW}
            GROUP BY ALL),
        refunded AS (SELECT DISTINCT order_id FROM events WHERE event = 'refund'
                     AND order_id IS NOT NULL),
        per AS (
            SELECT u.variant, u.person_id, count(r.order_id)::DOUBLE AS x,
                   count(p.order_id)::DOUBLE AS y
            FROM units u LEFT JOIN placed p ON p.person_id = u.person_id
                 LEFT JOIN refunded r ON r.order_id = p.order_id
            GROUP BY ALL)""",
            [window],
        )
    raise ConfigError(f"metric kind {metric.kind!r} is not known")


def variant_statistics(
    store: Store,
    units_sql: str,
    units_params: list[object],
    metric: Metric,
    *,
    window: str | float | None = "7d",
    cuped_days: float | None = None,
) -> dict[str, Statistic]:
    """The sufficient statistic of ``metric`` for each variant of the units (a CTE named
    ``units`` with person_id, variant, exposed_at), keyed by variant."""
    if cuped_days is not None:
        if not metric.supports_cuped:
            raise ConfigError(
                f"CUPED is available for revenue_per_visitor and conversion "
                f"without from_event, not for {metric.name!r}: drop cuped_days"
            )
        if isinstance(cuped_days, bool) or not cuped_days > 0:
            raise ConfigError(f"cuped_days={cuped_days!r}: use a positive number of days, e.g. 28")
    pre = round((cuped_days or 1) * 86_400 * US)
    per_sql, params = _per_person(metric, window_us(window), pre)
    rows = store.db.rows(f"WITH {units_sql}, {per_sql} {_AGGREGATE}", [*units_params, *params])
    out: dict[str, Statistic] = {}
    for variant, n, x_sum, x_sq, y_sum, y_sq, xy in rows:
        n = int(n)
        if metric.kind in ("average_order_value", "refund_rate"):
            out[variant] = Ratio(n, Mean(n, x_sum, x_sq), Mean(n, y_sum, y_sq), xy)
        elif metric.kind == "revenue_per_visitor":
            spend = Mean(n, x_sum, x_sq)
            out[variant] = (
                Adjusted(spend, Mean(n, y_sum, y_sq), xy) if cuped_days is not None else spend
            )
        else:
            did = Proportion(n, round(x_sum))
            out[variant] = (
                Adjusted(did, Proportion(n, round(y_sum)), xy) if cuped_days is not None else did
            )
    return out
