"""The average order value that turns lost orders into revenue at stake, and what to do
when the store's orders carry no value.

**Orders and their values** (purchases in the diagnosis window ``[start, end)``): an order
is a distinct ``order_id`` among ``purchase`` events, or the event itself when it has none;
an order *has a value* when one of its purchase events has a ``value``. ``revenue`` is the
sum of purchase values (ADR 0042).

**The average order value used**, first that applies:

1. *given*: ``DiagnoseSettings.average_order_value`` (the CLI's ``--aov``), else
   ``average_order_value`` in the model file's ``[diagnosis]`` section: an estimate the store
   owner supplies, used as it is;
2. *measured*: revenue / orders with a value, when at least one order has a value and the
   revenue is above zero;
3. *none*: the orders carry no value (or there are no orders): revenue at stake is not
   computed, and findings are ranked by *orders at stake* instead (sessions lost × the share
   of them that would have bought: the same order a single average order value would give).

:meth:`OrderValue.note` says in one sentence which applied and, for *none*, why revenue is
missing and how to estimate it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shopfunnel.errors import ConfigError

Source = Literal["given", "measured", "none"]
HOW_TO_GIVE = (
    "give the average order value with --aov (e.g. --aov 45) or "
    "average_order_value under [diagnosis] in shopfunnel.toml"
)


@dataclass(frozen=True)
class OrderValue:
    """Orders in the window, how many carry a value, and the average order value used."""

    orders: int
    valued_orders: int
    revenue: float
    measured: float
    average_order_value: float
    source: Source

    def note(self) -> str:
        """Where the average order value came from, or why there is none."""
        if self.source == "given":
            seen = (
                "the orders carry no value"
                if math.isnan(self.measured)
                else f"the store's own is {self.measured:,.2f}"
            )
            return (
                f"revenue at stake is estimated with the average order value given, "
                f"{self.average_order_value:,.2f} ({seen})"
            )
        if self.source == "measured":
            part = (
                ""
                if self.valued_orders == self.orders
                else f"; {self.orders - self.valued_orders:,} of {self.orders:,} orders carry no value "
                "and are left out of it"
            )
            return (
                f"average order value {self.average_order_value:,.2f}: revenue / "
                f"{self.valued_orders:,} orders with a value{part}"
            )
        why = (
            "there are no orders in the window"
            if self.orders == 0
            else f"none of the {self.orders:,} orders in the window carries a value"
            if self.valued_orders == 0
            else f"the {self.valued_orders:,} orders with a value add up to {self.revenue:,.2f}"
        )
        return (
            f"revenue at stake cannot be computed: {why}. Findings are ranked by orders at "
            f"stake (sessions lost × the share that would have bought); to put a price on "
            f"them, {HOW_TO_GIVE}"
        )


def check_aov(value: Any, what: str = "--aov") -> float | None:
    """``value`` as a positive finite number, None when not given; ConfigError otherwise."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ConfigError(
            f"{what} {value!r} is not valid: give the store's average order value, "
            "a positive number such as 45"
        )
    return number


def given_aov(explicit: float | None, section: dict[str, Any]) -> float | None:
    """The average order value the owner gave: ``explicit`` (``--aov``), else the
    ``average_order_value`` of the model file's ``[diagnosis]`` section, else None."""
    if explicit is not None:
        return check_aov(explicit)
    unknown = set(section) - {"average_order_value"}
    if unknown:
        raise ConfigError(
            f"[diagnosis] has unknown key(s) {', '.join(sorted(unknown))}: "
            "the section takes average_order_value"
        )
    return check_aov(section.get("average_order_value"), "[diagnosis] average_order_value")


def order_value(
    store: Any, start: datetime, end: datetime, *, given: float | None = None
) -> OrderValue:
    """Orders in ``[start, end)`` and the average order value to use (module docstring)."""
    if getattr(store, "on_spark", False):  # shopfunnel.store.spark.SparkEvents
        from shopfunnel.store.spark_diagnosis import order_counts

        orders, valued, revenue = order_counts(store.df, store._t(), start, end)
    else:
        orders, valued, revenue = _order_counts(store, start, end)
    return _order_value(orders, valued, revenue, given)


def _order_counts(store: Any, start: datetime, end: datetime) -> tuple[int, int, float]:
    orders, valued, revenue = store.db.rows(
        """
        WITH o AS (
            SELECT coalesce(order_id, 'event:' || event_id) AS oid,
                   count(value) AS values_given, sum(value) AS value
            FROM events WHERE event = 'purchase' AND ts >= ? AND ts < ?
            GROUP BY oid
        )
        SELECT count(*), count(*) FILTER (WHERE values_given > 0),
               coalesce(sum(value), 0)::DOUBLE
        FROM o
        """,
        [start, end],
    )[0]
    return int(orders), int(valued), float(revenue)


def _order_value(orders: int, valued: int, revenue: float, given: float | None) -> OrderValue:
    measured = revenue / valued if valued and revenue > 0 else math.nan
    if given is not None:
        return OrderValue(orders, valued, revenue, measured, float(given), "given")
    if not math.isnan(measured):
        return OrderValue(orders, valued, revenue, measured, measured, "measured")
    return OrderValue(orders, valued, revenue, measured, math.nan, "none")
