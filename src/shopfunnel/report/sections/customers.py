"""Customer sections: cohorts, RFM groups, offers replayed on past orders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from shopfunnel import format as fmt
from shopfunnel.report.blocks import (
    Chart,
    Figure,
    KeyFigures,
    Section,
    Table,
    Text,
    unavailable,
)
from shopfunnel.report.charts import PALETTE, styled
from shopfunnel.report.sections._common import usable


def cohort_section(matrix: pd.DataFrame | None, *, period: str = "month") -> Section:
    """Cohort heatmap: of the customers whose first order fell in a period, the share who
    ordered again k periods later.

    ``matrix`` is :func:`shopfunnel.customers.retention.cohort_matrix`: ``cohort``, ``cohort_size``,
    then one column per period offset (``"0"``, ``"1"``, …) holding the rate.
    """
    sid, title = "cohorts", "Do customers come back?"
    lead = (
        f"Each row is the customers whose first order fell in that {period}; each cell the share "
        f"of them who ordered again that many {period}s later. Darker is better."
    )
    if not usable(matrix, ["cohort"]):
        return unavailable(sid, title, "No orders yet, so no customer cohorts.", lead)
    offsets = [c for c in matrix.columns if str(c).isdigit()]
    later = [c for c in offsets if int(c) > 0]
    if not later:
        return unavailable(
            sid,
            title,
            f"Customers have been buying for less than one {period}: "
            "come back when there is more history.",
            lead,
        )
    z = matrix[later].to_numpy(dtype=float)
    y = [
        f"{c} (n={int(n):,})" if "cohort_size" in matrix.columns else str(c)
        for c, n in zip(matrix["cohort"], matrix.get("cohort_size", matrix["cohort"]), strict=True)
    ]
    finite = z[np.isfinite(z)]
    digits = 1 if finite.size and float(finite.max()) < 0.1 else 0
    text = [[("" if np.isnan(v) else f"{v:.{digits}%}") for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"+{c}" for c in later],
            y=y,
            colorscale="Blues",
            zmin=0,
            zmax=max(0.05, float(np.nanmax(z)) if np.isfinite(z).any() else 0.05),
            text=text,
            texttemplate="%{text}",
            hovertemplate="%{y}, %{x}: %{z:.1%}<extra></extra>",
            colorbar={"tickformat": ".0%"},
        )
    )
    fig.update_layout(
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"title": f"{period}s after the first order", "type": "category"},
    )
    return Section(sid, title, lead, (Chart(styled(fig, height=max(300, 60 + 26 * len(y)))),))


def rfm_section(groups: pd.DataFrame | None, *, currency: str = "") -> Section:
    """Customers by RFM group (recency, frequency, monetary): how many, and their revenue.

    ``groups`` is :func:`shopfunnel.customers.rfm.rfm_group_summary` (group, customers, share,
    revenue, revenue_share, median_recency_days, mean_frequency).
    """
    sid, title = "rfm", "Customer groups (RFM)"
    lead = (
        "Customers grouped by how recently, how often and how much they bought. Champions and "
        "loyal customers deserve previews and referral rewards; at-risk and almost-lost ones a "
        "win-back offer."
    )
    if not usable(groups, ["group", "customers"]) or int(groups["customers"].sum()) == 0:
        return unavailable(sid, title, "No customers yet, so no RFM groups.", lead)
    shown = groups[groups["customers"] > 0].reset_index(drop=True)
    names = [str(g).replace("_", " ") for g in shown["group"]]
    fig = go.Figure()
    if "revenue_share" not in shown.columns or "share" not in shown.columns:
        fig.add_bar(x=names, y=shown["customers"], name="customers", marker={"color": PALETTE[0]})
    else:
        fig.add_bar(
            x=names, y=shown["share"], name="share of customers", marker={"color": PALETTE[0]}
        )
        fig.add_bar(
            x=names, y=shown["revenue_share"], name="share of revenue", marker={"color": PALETTE[2]}
        )
        fig.update_layout(barmode="group", yaxis={"tickformat": ".0%"})
    labels = {
        "share": "share of customers",
        "revenue_share": "share of revenue",
        "median_recency_days": "median days since last order",
        "mean_frequency": "orders per customer",
    }
    table = Table(
        shown.assign(group=names).rename(columns=labels),
        formats={
            "customers": "int",
            "share of customers": "pct",
            "revenue": "money",
            "share of revenue": "pct",
            "median days since last order": "int",
            "orders per customer": "number",
        },
    )
    return Section(sid, title, lead, (Chart(styled(fig, height=340)), table))


def whatif_section(
    policies: Sequence[Any], *, currency: str = "", no_values: bool = False
) -> Section:
    """Offers replayed on past orders: who would have got them, what they would have cost, and
    how much more the store must sell to pay for them.

    ``policies`` are :class:`shopfunnel.diagnosis.whatif.WhatIf` results (``policy``, ``summary``
    dict, ``tiers`` DataFrame, ``notes``). ``no_values``: the store has orders but they carry
    no value, so no offer can be priced.
    """
    sid, title = "whatif", "What would an offer cost?"
    lead = (
        "Offers replayed on your past orders, as if nobody had changed what they bought: the share "
        "of orders that would have qualified, the cost, and how many more orders it takes to pay "
        "for it (revenue view: before the cost of goods). Orders just below a threshold are the "
        "ones an offer can nudge up."
    )
    usable = [p for p in policies if getattr(p, "summary", None) and p.summary.get("orders")]
    if no_values:
        return unavailable(
            sid,
            title,
            "The store's orders carry no value, so no offer can be priced: "
            "load orders with their values to replay one.",
            lead,
        )
    if not usable:
        return unavailable(sid, title, "No orders yet, so no offer to replay.", lead)
    blocks: list[Any] = []
    for p in usable:
        s = p.summary
        blocks.append(Text(str(p.policy)[:1].upper() + str(p.policy)[1:]))
        within = (
            int(p.tiers["orders_within_reach"].sum())
            if "orders_within_reach" in p.tiers.columns
            else None
        )
        blocks.append(
            KeyFigures(
                (
                    Figure(
                        "Orders that qualify",
                        fmt.pct(s.get("share_affected")),
                        f"{fmt.integer(s.get('orders_affected'))} of {fmt.integer(s.get('orders'))}",
                    ),
                    Figure(
                        "Cost on past orders",
                        fmt.money(s.get("cost"), currency),
                        f"{fmt.pct(s.get('cost_share_of_revenue'))} of revenue",
                    ),
                    Figure(
                        "To break even",
                        f"+{fmt.pct(s.get('breakeven_uplift'))} orders",
                        f"about {fmt.integer(s.get('breakeven_extra_orders'))} more orders",
                    ),
                    *(
                        (
                            Figure(
                                "Just below a threshold",
                                fmt.integer(within),
                                "orders within 20% of it",
                            ),
                        )
                        if within is not None
                        else ()
                    ),
                )
            )
        )
    return Section(sid, title, lead, tuple(blocks))
