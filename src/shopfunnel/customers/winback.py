"""Lapsed customers for win-back: who has gone quiet, and what they were worth.

Two rules, each its own function argument value:

* ``rule="gap"`` (default): the stage model's **lapsed** rule (:mod:`shopfunnel.stages.gaps`): a
  customer is lapsed when the days since their last order exceed ``gap_multiplier`` ×
  their usual gap: their own mean gap × 1.609 (the 80th percentile of an exponential with
  that mean) with 3+ orders, else the store's 80th percentile of gaps between orders (90
  days when fewer than 20 gaps). ``gap_multiplier = 1`` (the default) lists exactly the
  customers whose stage status is ``lapsed`` or ``gone``, with that status; a larger one
  forgives more.
* ``rule="p_alive"``: fit BG/NBD (:class:`~shopfunnel.customers.clv.BetaGeoModel`) on all orders
  up to ``as_of`` and list customers whose probability of still being alive is below
  ``p_alive_below``. In BG/NBD a one-time buyer's P(alive) is 1 (they cannot have dropped
  out before a repeat purchase), so this rule only ever lists repeat buyers; use the gap
  rule to reach one-time buyers.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from shopfunnel._time import naive_utc, naive_utc_timestamp
from shopfunnel.customers.clv import BetaGeoModel, summary_from_orders
from shopfunnel.errors import ConfigError
from shopfunnel.model import Placement
from shopfunnel.stages.gaps import gone_gap_days, store_gap, usual_gap_days

Rule = Literal["gap", "p_alive"]


def lapsed_customers(
    orders: pd.DataFrame,
    *,
    rule: Rule = "gap",
    as_of: Any = None,
    gap_multiplier: float = 1.0,
    p_alive_below: float = 0.3,
    placement: Placement | None = None,
) -> pd.DataFrame:
    """Lapsed customers, most valuable first.

    Columns: ``person_id``, ``orders``, ``revenue`` (all orders up to ``as_of``, gross),
    ``first_order``, ``last_order``, ``days_since_last_order`` (from the last order to
    ``as_of``), ``expected_gap_days`` (the usual gap, :mod:`shopfunnel.stages.gaps`),
    ``gap_source`` (``own`` or ``store``), ``overdue_ratio`` = days since last order /
    expected gap, ``gone_after_days`` (the gap past which almost nobody orders again) and
    ``status``: ``gone`` past it, else ``lapsed`` (the stage model's customer statuses),
    and ``p_alive`` (with ``rule="p_alive"``; else NaN). Sorted by revenue,
    highest first. ``as_of`` defaults to the latest order; ``placement`` holds the gap
    settings (the model file's ``[placement]``; defaults without one).
    """
    if rule not in ("gap", "p_alive"):
        raise ConfigError(f"rule={rule!r} is not valid: use 'gap' or 'p_alive'")
    if not gap_multiplier > 0:
        raise ConfigError(f"gap_multiplier={gap_multiplier!r} must be positive, e.g. 1 or 1.5")
    if not 0 < p_alive_below <= 1:
        raise ConfigError(f"p_alive_below={p_alive_below!r} must be in (0, 1], e.g. 0.3")
    rules = placement or Placement()
    columns = [
        "person_id",
        "orders",
        "revenue",
        "first_order",
        "last_order",
        "days_since_last_order",
        "expected_gap_days",
        "gap_source",
        "overdue_ratio",
        "gone_after_days",
        "status",
        "p_alive",
    ]
    frame = pd.DataFrame(
        {
            "person_id": orders["person_id"].astype(str).to_numpy(),
            "ts": naive_utc(orders["ts"]).to_numpy(),
            "value": pd.to_numeric(orders["value"], errors="coerce").fillna(0.0).to_numpy(),
        }
    )
    end = frame["ts"].max() if as_of is None else naive_utc_timestamp(as_of)
    frame = frame[frame["ts"] <= end].sort_values(["person_id", "ts"], kind="stable")
    if frame.empty:
        return pd.DataFrame(columns=columns)
    day = pd.Timedelta(days=1)
    gaps = frame.groupby("person_id")["ts"].diff().dropna() / day
    per = frame.groupby("person_id", sort=True).agg(
        orders=("ts", "size"),
        revenue=("value", "sum"),
        first_order=("ts", "min"),
        last_order=("ts", "max"),
    )
    span = (per["last_order"] - per["first_order"]) / day
    gap = store_gap(gaps.to_numpy(), rules)
    usual, own = usual_gap_days(per["orders"].to_numpy(), span.to_numpy(), gap, rules)
    gone = gone_gap_days(per["orders"].to_numpy(), span.to_numpy(), gap, rules)
    days_since = (end - per["last_order"]) / day
    out = pd.DataFrame(
        {
            "person_id": per.index.to_numpy(),
            "orders": per["orders"].to_numpy(),
            "revenue": per["revenue"].to_numpy(),
            "first_order": per["first_order"].to_numpy(),
            "last_order": per["last_order"].to_numpy(),
            "days_since_last_order": days_since.to_numpy(),
            "expected_gap_days": usual,
            "gap_source": np.where(own, "own", "store"),
            "overdue_ratio": _ratio(days_since.to_numpy(), usual),
            "gone_after_days": gone,
            "status": np.where(days_since.to_numpy() > gone, "gone", "lapsed").astype(object),
            "p_alive": np.nan,
        }
    )
    if rule == "gap":
        lapsed = out["days_since_last_order"] > gap_multiplier * out["expected_gap_days"]
    else:
        summary = summary_from_orders(orders, calibration_end=as_of, time_unit="D")
        weekly = summary.assign(recency=summary["recency"] / 7, T=summary["T"] / 7)
        model = BetaGeoModel().fit(weekly)
        alive = pd.Series(
            model.probability_alive(weekly["frequency"], weekly["recency"], weekly["T"]),
            index=summary.index.astype(str),
        )
        out["p_alive"] = out["person_id"].map(alive).to_numpy()
        lapsed = out["p_alive"] < p_alive_below
    return (
        out[lapsed.to_numpy()]
        .sort_values("revenue", ascending=False, kind="stable")
        .reset_index(drop=True)[columns]
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.inf)
