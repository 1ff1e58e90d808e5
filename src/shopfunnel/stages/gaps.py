"""The usual gap between a customer's orders: the one rule behind "lapsed" and "gone".

Both the stage model's customer statuses (:mod:`shopfunnel.stages.placement`) and the win-back list
(:mod:`shopfunnel.customers.winback`) judge a customer by the time since their last order against a
gap defined here once, at a quantile ``q``:

* **lapsed** past the gap at ``q = lapsed_quantile`` (0.8): the customer has gone quiet for
  longer than 80% of repeat orders take;
* **gone** past the gap at ``q = gone_quantile`` (0.95): almost no repeat order comes this
  late.

The gap at ``q`` is:

* for a customer with at least ``own_gap_min_orders`` (3) orders: their own mean gap
  between orders, ``(last − first) / (orders − 1)``, times ``−ln(1 − q)``, the
  ``q``-quantile of an exponential distribution with that mean (×1.609 at 0.8, ×2.996 at
  0.95);
* for any other customer: the store's gap, the ``q``-quantile of every gap between
  consecutive orders of the same customer, when there are at least ``min_gaps`` (20) such
  gaps; otherwise ``lapsed_after`` (90 days) for lapsed and ``customer_gone_after`` (180
  days) for gone, because a handful of gaps says little.

The settings live in the ``[placement]`` section of the model file (:class:`Placement`).
Exceeding means strictly more: exactly the gap is not yet lapsed (or gone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopfunnel.model import Placement
from shopfunnel.stages.quantiles import quantiles
from shopfunnel.stages.status import percentile_name


@dataclass(frozen=True)
class StoreGap:
    """The store's gaps between orders in days: ``days`` at ``lapsed_quantile`` (the usual
    gap), ``gone_days`` at ``gone_quantile``, and where the figures came from."""

    days: float
    source: str
    gone_days: float = math.nan


def store_gap(gaps_days: Any, rules: Placement) -> StoreGap:
    """The ``lapsed_quantile`` and ``gone_quantile`` of the gaps, or the ``lapsed_after``
    and ``customer_gone_after`` defaults when there are fewer than ``min_gaps``. The gaps
    are an array (NaN: none) or a sample that gives its own quantiles
    (:mod:`shopfunnel.stages.quantiles`)."""
    gaps = gaps_days
    if not hasattr(gaps, "quantile"):
        gaps = np.asarray(gaps_days, dtype=float)
        gaps = gaps[~np.isnan(gaps)]
    if len(gaps) >= rules.min_gaps:
        lapsed, gone = quantiles(gaps, [rules.lapsed_quantile, rules.gone_quantile])
        return StoreGap(
            float(lapsed),
            f"data: {percentile_name(rules.lapsed_quantile)} and "
            f"{percentile_name(rules.gone_quantile)} percentiles of "
            f"{len(gaps):,} gaps between orders",
            float(gone),
        )
    return StoreGap(
        rules.lapsed_after_seconds / 86_400,
        f"default lapsed_after and customer_gone_after: {len(gaps)} gaps, fewer than "
        f"{rules.min_gaps}",
        rules.customer_gone_after_seconds / 86_400,
    )


def usual_gap_days(
    n_orders: np.ndarray,
    first_to_last_days: np.ndarray,
    store: StoreGap,
    rules: Placement,
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's usual gap (lapsed threshold) in days (NaN for persons with no order)
    and whether it is their own (``True``) or the store's."""
    return _gap_at(n_orders, first_to_last_days, store.days, rules.lapsed_quantile, rules)


def gone_gap_days(
    n_orders: np.ndarray,
    first_to_last_days: np.ndarray,
    store: StoreGap,
    rules: Placement,
) -> np.ndarray:
    """Each customer's gone threshold in days (NaN for persons with no order): the gap at
    ``gone_quantile``, their own with ``own_gap_min_orders`` orders, else the store's."""
    return _gap_at(n_orders, first_to_last_days, store.gone_days, rules.gone_quantile, rules)[0]


def _gap_at(
    n_orders: np.ndarray,
    first_to_last_days: np.ndarray,
    store_days: float,
    q: float,
    rules: Placement,
) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n_orders, dtype=np.int64)
    span = np.asarray(first_to_last_days, dtype=float)
    gap = np.where(n > 0, store_days, np.nan)
    own = n >= rules.own_gap_min_orders
    if own.any():
        gap[own] = span[own] / (n[own] - 1) * -math.log(1 - q)
    return gap, own
