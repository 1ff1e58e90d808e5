"""The usual gap between a customer's orders: the one rule behind "lapsed" everywhere.

Both the stage model's **lapsed** status (:mod:`shopfunnel.stages.placement`) and the win-back list
(:mod:`shopfunnel.customers.winback`) call a customer lapsed when the time since their last order
exceeds their *usual gap*, defined here once:

* a customer with at least ``own_gap_min_orders`` (3) orders: their own mean gap between
  orders, ``(last − first) / (orders − 1)``, times ``−ln(1 − q)``, the ``q``-quantile of an
  exponential distribution with that mean (``q = lapsed_quantile``, 0.8, so ×1.609);
* any other customer: the store's usual gap, the ``q``-quantile of every gap between
  consecutive orders of the same customer, when there are at least ``min_gaps`` (20) such
  gaps; otherwise ``lapsed_after`` (90 days), because a handful of gaps says little.

The settings live in the ``[placement]`` section of the model file (:class:`Placement`).
Exceeding means strictly more: exactly the usual gap is not yet lapsed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shopfunnel.model import Placement


@dataclass(frozen=True)
class StoreGap:
    """The store's usual gap between orders, in days, and where the figure came from."""

    days: float
    source: str


def store_gap(gaps_days: np.ndarray, rules: Placement) -> StoreGap:
    """The ``lapsed_quantile`` of the gaps, or the ``lapsed_after`` default when too few."""
    gaps = np.asarray(gaps_days, dtype=float)
    gaps = gaps[~np.isnan(gaps)]
    if len(gaps) >= rules.min_gaps:
        return StoreGap(
            float(np.quantile(gaps, rules.lapsed_quantile)),
            f"data: {rules.lapsed_quantile:.0%} percentile of {len(gaps)} gaps between orders",
        )
    return StoreGap(
        rules.lapsed_after_seconds / 86_400,
        f"default lapsed_after: {len(gaps)} gaps, fewer than {rules.min_gaps}",
    )


def usual_gap_days(
    n_orders: np.ndarray,
    first_to_last_days: np.ndarray,
    store: StoreGap,
    rules: Placement,
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's usual gap in days (NaN for persons with no order) and whether it is
    their own (``True``) or the store's."""
    n = np.asarray(n_orders, dtype=np.int64)
    span = np.asarray(first_to_last_days, dtype=float)
    usual = np.where(n > 0, store.days, np.nan)
    own = n >= rules.own_gap_min_orders
    if own.any():
        usual[own] = span[own] / (n[own] - 1) * -math.log(1 - rules.lapsed_quantile)
    return usual, own
