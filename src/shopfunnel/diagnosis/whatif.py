"""What-if on the store's real orders: tiered discounts and a free-shipping threshold.

Both replay the policy on past orders (the ``orders`` view: one row per order, its
purchase value, which excludes shipping and tax; every order in the store unless
``start``/``end`` bound the order time) as if buyers had not changed anything,
then say how much behaviour must change to pay for it.

Definitions (``R`` revenue and ``N`` orders in the window, ``m`` the gross margin):

- **tiered discount**: an order of value ``v`` gets the rate of the highest tier whose
  threshold is at most ``v`` (an order exactly at a threshold qualifies);
  ``discount_cost = Σ v·rate``;
- **free shipping from T**: orders of value ``≥ T`` stop paying shipping;
  ``shipping_cost`` is what those orders paid: the purchase's ``properties.shipping``
  when the data has it, else ``shipping_fee`` per order;
- ``share_affected``: orders that get the discount (or free shipping) over ``N``;
- ``orders_within_reach``: orders within ``reach`` (20%) below a threshold, the ones a
  threshold may nudge upwards; ``mean_top_up`` the mean amount they were short;
- **break-even uplift**: profit on past orders is ``m·R``; after the policy, at the same
  orders, ``m·R − cost``. Orders (or, with costs growing in proportion, the average
  order value) must grow by ``uplift = cost / (m·R − cost)`` for profit to stay the same;
  ``breakeven_extra_orders = uplift × N``. With ``gross_margin=None`` ``m = 1`` (the
  revenue view, an optimistic floor). When ``m·R ≤ cost`` no uplift pays for it: NaN and
  a reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from shopfunnel import format as fmt
from shopfunnel.errors import ConfigError


@dataclass(frozen=True)
class Tier:
    """Orders of at least ``threshold`` get ``rate`` off (0.05 for 5%)."""

    threshold: float
    rate: float


def parse_tiers(text: str) -> list[Tier]:
    """``"100:5,300:10"`` → 5% off from 100, 10% off from 300 (percent after the colon)."""
    tiers = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            threshold, percent = (float(x) for x in part.split(":"))
        except ValueError as exc:
            raise ConfigError(
                f"tier {part!r} is not valid: write THRESHOLD:PERCENT, e.g. --tiers 100:5,300:10"
            ) from exc
        tiers.append(Tier(threshold, percent / 100))
    return validate_tiers(tiers)


def validate_tiers(tiers: list[Tier]) -> list[Tier]:
    if not tiers:
        raise ConfigError("give at least one tier, e.g. --tiers 100:5,300:10")
    for t in tiers:
        if t.threshold < 0 or not 0 < t.rate < 1:
            raise ConfigError(
                f"tier {t.threshold:g}:{t.rate * 100:g} is not valid: a threshold ≥ 0 and a discount between 0 and 100 percent"
            )
    tiers = sorted(tiers, key=lambda t: t.threshold)
    if len({t.threshold for t in tiers}) != len(tiers):
        raise ConfigError("two tiers have the same threshold: give each threshold once")
    return tiers


def tier_for(value: float, tiers: list[Tier] | tuple[Tier, ...]) -> Tier | None:
    """The tier an order of ``value`` gets: the one with the highest threshold at most
    ``value`` (an order exactly at a threshold qualifies), or None below every tier. The
    same rule as :func:`tiered_discount`'s SQL, for one value."""
    reached = [t for t in tiers if value >= t.threshold]
    return max(reached, key=lambda t: t.threshold) if reached else None


def tier_rate(value: float, tiers: list[Tier] | tuple[Tier, ...]) -> float:
    """The discount rate an order of ``value`` gets under ``tiers`` (0 below every tier)."""
    tier = tier_for(value, tiers)
    return 0.0 if tier is None else tier.rate


def format_tiers(tiers: list[Tier] | tuple[Tier, ...]) -> str:
    """The text :func:`parse_tiers` reads back: ``100:5,300:10``."""
    return ",".join(
        f"{t.threshold:g}:{t.rate * 100:g}" for t in sorted(tiers, key=lambda t: t.threshold)
    )


@dataclass
class WhatIf:
    """A replayed policy: ``summary`` (a dict of the numbers defined in the module
    docstring) and ``tiers`` (one row per tier or threshold)."""

    policy: str
    summary: dict[str, Any]
    tiers: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "summary": self.summary,
            "tiers": json.loads(self.tiers.to_json(orient="records")),
            "notes": self.notes,
        }

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"WhatIf({self.policy}: {s['orders_affected']:,} of {s['orders']:,} orders affected "
            f"({_pct(s['share_affected'])}), cost {s['cost']:,.2f} ({_pct(s['cost_share_of_revenue'])} of revenue), "
            f"break-even uplift {_pct(s['breakeven_uplift'])})"
        )


def _pct(x: float | None) -> str:
    return fmt.pct(x, missing="n/a")


def _window(start: datetime | None, end: datetime | None) -> tuple[str, list]:
    where, params = ["value IS NOT NULL"], []
    if start is not None:
        where.append("ts >= ?")
        params.append(start)
    if end is not None:
        where.append("ts < ?")
        params.append(end)
    return " AND ".join(where), params


def breakeven(
    cost: float, revenue: float, orders: int, margin: float | None
) -> tuple[dict[str, Any], list[str]]:
    """``gross_margin``, ``breakeven_uplift`` and ``breakeven_extra_orders`` of a policy
    costing ``cost`` on ``orders`` orders worth ``revenue`` (definitions in the module
    docstring), and notes saying why a figure is NaN."""
    m = 1.0 if margin is None else margin
    if margin is not None and not 0 < margin <= 1:
        raise ConfigError(
            f"gross_margin={margin!r} is not valid: a share between 0 and 1, e.g. 0.4 for 40%"
        )
    notes = []
    room = m * revenue - cost
    if orders == 0:
        notes.append("no orders in the window: nothing to replay")
        uplift = float("nan")
    elif room <= 0:
        notes.append(
            f"the cost ({cost:,.2f}) is at least the margin on all orders ({m * revenue:,.2f}): no uplift pays for it"
        )
        uplift = float("nan")
    else:
        uplift = cost / room
    return {
        "gross_margin": m,
        "breakeven_uplift": uplift,
        "breakeven_extra_orders": uplift * orders if not math.isnan(uplift) else float("nan"),
    }, notes


def tiered_discount(
    store,
    tiers: list[Tier],
    *,
    gross_margin: float | None = None,
    reach: float = 0.2,
    start: datetime | None = None,
    end: datetime | None = None,
) -> WhatIf:
    """Replay tiered discounts on past orders (definitions in the module docstring)."""
    tiers = validate_tiers(list(tiers))
    where, params = _window(start, end)
    bounds = [t.threshold for t in tiers]
    case = " ".join(f"WHEN value >= ? THEN {i}" for i in reversed(range(len(tiers))))
    reach_case = " ".join(f"WHEN value >= ? AND value < ? THEN {i}" for i in range(len(tiers)))
    df = store.db.df(
        f"""
        SELECT CASE {case} ELSE -1 END AS tier, CASE {reach_case} ELSE -1 END AS near,
               count(*) AS orders, sum(value)::DOUBLE AS revenue
        FROM orders WHERE {where} GROUP BY ALL
        """,
        [*reversed(bounds), *[v for b in bounds for v in ((1 - reach) * b, b)], *params],
    )
    near_sum = store.db.df(
        f"SELECT CASE {reach_case} ELSE -1 END AS near, sum(value)::DOUBLE AS value FROM orders WHERE {where} GROUP BY ALL",
        [*[v for b in bounds for v in ((1 - reach) * b, b)], *params],
    )
    orders, revenue = int(df["orders"].sum()), float(df["revenue"].sum())
    rows, cost = [], 0.0
    for i, t in enumerate(tiers):
        grp = df[df["tier"] == i]
        n, rev = int(grp["orders"].sum()), float(grp["revenue"].sum())
        near = df[df["near"] == i]
        n_near = int(near["orders"].sum())
        near_value = float(near_sum.loc[near_sum["near"] == i, "value"].sum())
        c = rev * t.rate
        cost += c
        rows.append(
            {
                "threshold": t.threshold,
                "rate": t.rate,
                "orders": n,
                "share_of_orders": n / orders if orders else float("nan"),
                "revenue": rev,
                "cost": c,
                "orders_within_reach": n_near,
                "mean_top_up": (t.threshold * n_near - near_value) / n_near
                if n_near
                else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    affected = int(table["orders"].sum())
    be, notes = breakeven(cost, revenue, orders, gross_margin)
    summary = {
        "orders": orders,
        "revenue": revenue,
        "orders_affected": affected,
        "share_affected": affected / orders if orders else float("nan"),
        "revenue_affected": float(table["revenue"].sum()),
        "cost": cost,
        "cost_share_of_revenue": cost / revenue if revenue else float("nan"),
        **be,
    }
    label = ", ".join(f"{t.rate * 100:g}% off from {t.threshold:g}" for t in tiers)
    return WhatIf(f"tiered discount ({label})", summary, table, notes)


def free_shipping(
    store,
    threshold: float,
    *,
    shipping_fee: float | None = None,
    gross_margin: float | None = None,
    reach: float = 0.2,
    start: datetime | None = None,
    end: datetime | None = None,
) -> WhatIf:
    """Replay free shipping from ``threshold`` on past orders (definitions in the module docstring)."""
    if threshold < 0:
        raise ConfigError(
            f"free-shipping threshold {threshold!r} is not valid: give an order value ≥ 0, e.g. 75"
        )
    where, params = _window(start, end)
    if getattr(store, "on_spark", False):  # the same per-order rows from Spark SQL
        shipping = "SELECT order_id, shipping FROM " + store.order_shipping_table()
    else:
        shipping = (
            "SELECT order_id, max(TRY_CAST(json_extract_string(properties, '$.shipping') AS DOUBLE)) "
            "AS shipping FROM events WHERE event = 'purchase' AND order_id IN (SELECT order_id FROM o) "
            "GROUP BY order_id"
        )
    paid = store.db.df(
        f"""
        WITH o AS (SELECT order_id, value FROM orders WHERE {where}),
        s AS ({shipping})
        SELECT value >= ? AS qualifies, value >= ? AND value < ? AS near,
               count(*) AS orders, sum(value)::DOUBLE AS revenue, count(s.shipping) AS known,
               coalesce(sum(s.shipping), 0)::DOUBLE AS shipping, sum(? - value)::DOUBLE AS short
        FROM o LEFT JOIN s USING (order_id) GROUP BY ALL
        """,
        [*params, threshold, (1 - reach) * threshold, threshold, threshold],
    )
    notes: list[str] = []
    orders, revenue = int(paid["orders"].sum()), float(paid["revenue"].sum())
    q = paid[paid["qualifies"]]
    n_q = int(q["orders"].sum())
    known = int(q["known"].sum())
    if known == n_q and n_q:
        cost = float(q["shipping"].sum())
        basis = "shipping paid on each order (properties.shipping)"
    elif shipping_fee is not None:
        cost = shipping_fee * n_q
        basis = f"a flat fee of {shipping_fee:g} per order"
        if known:
            notes.append(
                "some orders carry properties.shipping and some do not: the flat fee is used for all"
            )
    else:
        raise ConfigError(
            "the orders do not say what shipping they paid (no properties.shipping on purchase events): "
            "give the usual fee with --shipping-fee (shipping_fee=...)"
        )
    near = paid[paid["near"]]
    n_near = int(near["orders"].sum())
    be, n2 = breakeven(cost, revenue, orders, gross_margin)
    notes += n2
    table = pd.DataFrame(
        [
            {
                "threshold": threshold,
                "orders": n_q,
                "share_of_orders": n_q / orders if orders else float("nan"),
                "revenue": float(q["revenue"].sum()),
                "cost": cost,
                "orders_within_reach": n_near,
                "mean_top_up": float(near["short"].sum()) / n_near if n_near else float("nan"),
            }
        ]
    )
    summary = {
        "orders": orders,
        "revenue": revenue,
        "orders_affected": n_q,
        "share_affected": n_q / orders if orders else float("nan"),
        "revenue_affected": float(q["revenue"].sum()),
        "cost": cost,
        "cost_basis": basis,
        "cost_share_of_revenue": cost / revenue if revenue else float("nan"),
        **be,
    }
    return WhatIf(f"free shipping from {threshold:g}", summary, table, notes)
