"""The shape of a diagnosis finding, shared by every analysis that produces one.

A finding is one row: what is wrong (``kind``, ``stage``, ``step``, ``segment``,
``metric``), how sure we are (``value`` against ``reference``, ``gap``, the interval
``ci_low``–``ci_high`` of the gap and ``p_value``), what it is worth
(``revenue_at_stake``), a plain-language ``evidence`` sentence, and what to do
(``tactics``, ``audience``).

**Revenue at stake** (over the finding's own period)::

    revenue_at_stake = units_lost × downstream_rate × average_order_value

- ``units_lost``: sessions that would have reached the finding's step had its rate been
  the reference rate, minus those that did: ``entering × (reference − value)`` (for a
  rate where lower is better, ``entering × (value − reference)``); for an incident the
  expected minus the observed conversions; never negative;
- ``downstream_rate``: of the population's sessions that reached that step, the share
  that went on to purchase (1 when the step is the purchase);
- ``average_order_value``: purchase value over the orders with a value in the diagnosis
  window, all traffic, or the estimate the owner gave (``--aov``); see
  :mod:`shopfunnel.diagnosis.order_value`.

``orders_at_stake = units_lost × downstream_rate`` is the same prize counted in orders. When
the store's orders carry no value and no estimate is given, revenue at stake is empty and
findings are ranked by orders at stake: the order any single average order value would give.
It is a size of the prize, not a forecast: it assumes the lost sessions would have
behaved like those that went on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shopfunnel import format as fmt


def downstream_rate(counts, k: int, K: int) -> float:
    """The ``downstream_rate`` of a gap at step ``k`` of ``K``: sessions that reached the
    purchase (``nK``) per session that reached step k (``nk``), summed over the rows of
    ``counts`` (a counts table or one of its rows); 1 at the purchase itself."""
    if k == K:
        return 1.0
    return float(np.sum(counts[f"n{K}"])) / max(float(np.sum(counts[f"n{k}"])), 1.0)


FINDING_COLUMNS = [
    "rank",
    "kind",
    "stage",
    "step",
    "segment",
    "metric",
    "value",
    "reference",
    "gap",
    "ci_low",
    "ci_high",
    "p_value",
    "revenue_at_stake",
    "evidence",
    "tactics",
    "audience",
    "title",
    "units_lost",
    "downstream_rate",
    "entering",
    "start",
    "end",
    "source",
    "orders_at_stake",
]

KINDS = (
    "incident",
    "traffic_spike",
    "benchmark",
    "period_change",
    "traffic_change",
    "segment_gap",
    "checkout",
    "correlation",
    "retention",
)


def finding(**fields: Any) -> dict[str, Any]:
    """A finding row with every column present (missing ones None)."""
    unknown = set(fields) - set(FINDING_COLUMNS)
    if unknown:
        raise TypeError(f"unknown finding field(s): {sorted(unknown)}")
    return {c: fields.get(c) for c in FINDING_COLUMNS}


def pct(x: float | None, digits: int = 1) -> str:
    """A rate as a percentage for evidence sentences: 0.0331 → '3.3%' ('n/a' when unknown)."""
    return fmt.pct(x, digits, missing="n/a")
