"""Sections about the store as a whole: key figures and daily activity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from plotly.subplots import make_subplots

from shopfunnel import format as fmt
from shopfunnel.report.blocks import (
    Chart,
    Figure,
    KeyFigures,
    Section,
    unavailable,
)
from shopfunnel.report.charts import PALETTE, styled
from shopfunnel.report.sections._common import as_text, usable


def overview_section(
    info: Mapping[str, Any], revenue: float | None = None, currency: str = ""
) -> Section:
    """Key figures of the store: events, persons, sessions, orders, revenue and date range."""
    title = "Your store at a glance"
    if not info or not info.get("events"):
        return unavailable(
            "overview", title, "The store holds no events yet: load some with `shopfunnel ingest`."
        )
    first, last = info.get("first_event"), info.get("last_event")
    period = f"{str(first)[:10]} to {str(last)[:10]}" if first and last else ""
    items = [
        Figure("Events", fmt.integer(info["events"]), period),
        Figure("People", fmt.integer(info.get("persons")), "identity-stitched visitors"),
        Figure("Sessions", fmt.integer(info.get("sessions"))),
        Figure("Orders", fmt.integer(info.get("orders"))),
    ]
    if revenue is not None:
        orders = info.get("orders") or 0
        aov = revenue / orders if orders else None
        items.append(
            Figure(
                "Revenue", fmt.money(revenue, currency), f"average order {fmt.money(aov, currency)}"
            )
        )
    return Section("overview", title, blocks=(KeyFigures(tuple(items)),))


def activity_section(daily: pd.DataFrame | None, incidents: pd.DataFrame | None = None) -> Section:
    """Sessions and orders per day (columns ``day``, ``sessions``, ``orders``).

    ``incidents`` (columns ``start``, ``end`` and optionally ``label``) are shaded on the
    chart, so a finding's dates can be seen against the traffic.
    """
    sid, title = "activity", "Daily activity"
    lead = "Sessions and orders per day. Sudden dips or spikes are worth a look in the diagnosis above."
    if not usable(daily, ["day", "sessions", "orders"]):
        return unavailable(sid, title, "No daily activity to show yet.", lead)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4]
    )
    fig.add_scatter(
        x=daily["day"],
        y=daily["sessions"],
        name="sessions",
        mode="lines",
        line={"color": PALETTE[0]},
        row=1,
        col=1,
    )
    fig.add_bar(
        x=daily["day"], y=daily["orders"], name="orders", marker={"color": PALETTE[2]}, row=2, col=1
    )
    fig.update_yaxes(title_text="sessions", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="orders", rangemode="tozero", row=2, col=1)
    fig.update_layout(hovermode="x unified", bargap=0.1)
    if usable(incidents, ["start", "end"]):
        for row in incidents.to_dict("records"):
            start, end = pd.Timestamp(row["start"]), pd.Timestamp(row["end"])
            if pd.isna(start) or pd.isna(end):
                continue
            x0 = start - pd.Timedelta(hours=12)
            fig.add_vrect(
                x0=x0,
                x1=end + pd.Timedelta(hours=12),
                fillcolor="#D55E00",
                opacity=0.15,
                line_width=0,
                layer="below",
            )
            fig.add_annotation(
                x=x0,
                y=1,
                xref="x",
                yref="y domain",
                text=as_text(row.get("label")) or "incident",
                showarrow=False,
                xanchor="left",
                yanchor="bottom",
                font={"size": 11, "color": "#b42318"},
            )
    return Section(sid, title, lead, (Chart(styled(fig, height=380)),))
