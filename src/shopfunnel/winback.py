"""Lapsed customers for win-back: who has gone quiet, and what they were worth.

Two rules, each its own function argument value:

* ``rule="gap"`` (default): a customer is lapsed when the days since their last order
  exceed ``gap_multiplier`` × their **expected gap**. A customer with purchases on two or
  more days expects their own mean gap, ``(last day − first day) / (purchase days − 1)``;
  a one-time buyer expects the store's median gap between consecutive purchase days of
  the same customer (``gap_source`` says which). When nobody bought twice there is no
  store gap, and one-time buyers cannot be judged: they are left out.
* ``rule="p_alive"``: fit BG/NBD (:class:`~shopfunnel.clv.BetaGeoModel`) on all orders
  up to ``as_of`` and list customers whose probability of still being alive is below
  ``p_alive_below``. In BG/NBD a one-time buyer's P(alive) is 1 (they cannot have dropped
  out before a repeat purchase), so this rule only ever lists repeat buyers; use the gap
  rule to reach one-time buyers.

Purchases are counted by calendar day, as in :func:`shopfunnel.clv.summary_from_orders`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from shopfunnel._time import naive_utc, naive_utc_timestamp
from shopfunnel.clv import BetaGeoModel, summary_from_orders
from shopfunnel.errors import ConfigError

Rule = Literal["gap", "p_alive"]


def lapsed_customers(
    orders: pd.DataFrame,
    *,
    rule: Rule = "gap",
    as_of: Any = None,
    gap_multiplier: float = 1.5,
    p_alive_below: float = 0.3,
) -> pd.DataFrame:
    """Lapsed customers, most valuable first.

    Columns: ``person_id``, ``orders``, ``revenue`` (all orders up to ``as_of``, gross),
    ``first_order``, ``last_order`` (days), ``days_since_last_order`` (from the last
    purchase day to the day of ``as_of``), ``expected_gap_days``, ``gap_source`` (``own``
    or ``store_median``), ``overdue_ratio`` = days since last order / expected gap, and
    ``p_alive`` (with ``rule="p_alive"``; else NaN). Sorted by revenue, highest first.
    ``as_of`` defaults to the latest order.
    """
    if rule not in ("gap", "p_alive"):
        raise ConfigError(f"rule={rule!r} is not valid: use 'gap' or 'p_alive'")
    if not gap_multiplier > 0:
        raise ConfigError(f"gap_multiplier={gap_multiplier!r} must be positive, e.g. 1.5")
    if not 0 < p_alive_below <= 1:
        raise ConfigError(f"p_alive_below={p_alive_below!r} must be in (0, 1], e.g. 0.3")
    summary = summary_from_orders(orders, calibration_end=as_of, time_unit="D")
    columns = ["person_id", "orders", "revenue", "first_order", "last_order",
               "days_since_last_order", "expected_gap_days", "gap_source", "overdue_ratio",
               "p_alive"]
    if summary.empty:
        return pd.DataFrame(columns=columns)
    days_since = summary["T"] - summary["recency"]
    repeat = summary["frequency"] > 0
    own_gap = summary["recency"] / summary["frequency"].where(repeat)
    store_gap = _store_gap_days(orders, as_of)
    expected = own_gap.where(repeat, store_gap)
    out = pd.DataFrame({
        "person_id": summary.index.to_numpy(),
        "orders": summary["orders"].to_numpy(),
        "revenue": summary["revenue"].to_numpy(),
        "first_order": summary["first_purchase"].to_numpy(),
        "last_order": summary["last_purchase"].to_numpy(),
        "days_since_last_order": days_since.to_numpy(),
        "expected_gap_days": expected.to_numpy(),
        "gap_source": np.where(repeat, "own", "store_median"),
        "overdue_ratio": (days_since / expected).to_numpy(),
        "p_alive": np.nan,
    })
    if rule == "gap":
        lapsed = out["expected_gap_days"].notna() & (
            out["days_since_last_order"] > gap_multiplier * out["expected_gap_days"]
        )
    else:
        weekly = summary.assign(recency=summary["recency"] / 7, T=summary["T"] / 7)
        model = BetaGeoModel().fit(weekly)
        out["p_alive"] = model.probability_alive(weekly["frequency"], weekly["recency"],
                                                 weekly["T"])
        lapsed = out["p_alive"] < p_alive_below
    return (out[lapsed.to_numpy()].sort_values("revenue", ascending=False, kind="stable")
            .reset_index(drop=True)[columns])


def _store_gap_days(orders: pd.DataFrame, as_of: Any) -> float:
    """Median gap in days between consecutive purchase days of the same customer."""
    days = naive_utc(orders["ts"]).dt.normalize()
    frame = pd.DataFrame({"person": orders["person_id"].astype(str).to_numpy(),
                          "day": days.to_numpy()})
    if as_of is not None:
        frame = frame[frame["day"] <= naive_utc_timestamp(as_of).normalize()]
    frame = frame.drop_duplicates().sort_values(["person", "day"])
    gaps = frame.groupby("person")["day"].diff().dropna() / pd.Timedelta(days=1)
    return float(gaps.median()) if len(gaps) else float("nan")
