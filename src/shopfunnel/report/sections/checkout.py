"""The checkout section: the checkout steps the store records, session by session."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from shopfunnel.report.blocks import Chart, Section, Table, Text, unavailable
from shopfunnel.report.charts import PALETTE, styled
from shopfunnel.report.sections._common import usable


def checkout_section(journey: pd.DataFrame | None, notes: Sequence[str] = ()) -> Section:
    """The checkout journey (:func:`shopfunnel.diagnosis.checkout.checkout_findings`): sessions
    at each checkout step the store records, overall (a bar chart) and by device (a table of
    shares of the sessions that entered checkout). ``notes`` say which steps or properties
    the store does not record."""
    sid, title = "checkout", "The checkout, step by step"
    lead = (
        "Of the sessions that entered checkout, how many reached each checkout step the store "
        "records, and how many bought. A session that reached a later step counts for the "
        "earlier ones too."
    )
    if not usable(journey, ["device", "step", "sessions", "share_of_checkouts"]):
        reason = " ".join(
            str(n).removeprefix("checkout journey: ") for n in notes if "checkout journey" in str(n)
        )
        return unavailable(
            sid, title, reason or "No session entered checkout in the diagnosed period.", lead
        )
    steps = list(dict.fromkeys(journey["step"]))
    overall = journey[journey["device"] == "all"].set_index("step").reindex(steps)
    fig = go.Figure(
        go.Bar(
            x=steps,
            y=overall["sessions"],
            marker={"color": PALETTE[0]},
            text=[f"{s:.0%}" for s in overall["share_of_checkouts"]],
            textposition="auto",
            hovertemplate="%{x}: %{y:,} sessions<extra></extra>",
        )
    )
    fig.update_layout(yaxis={"title": "sessions"})
    shares = journey.pivot(index="device", columns="step", values="share_of_checkouts")[steps]
    entered = journey.groupby("device", sort=False)["sessions"].first()
    table_frame = shares.reset_index()
    table_frame.insert(1, "sessions in checkout", entered.reindex(shares.index).to_numpy())
    order = ["all", *[d for d in table_frame["device"] if d != "all"]]
    table_frame = table_frame.set_index("device").loc[order].reset_index()
    table = Table(
        table_frame,
        formats={"sessions in checkout": "int", **{s: "pct" for s in steps}},
        caption="Share of the sessions that entered checkout, by device",
    )
    blocks: list = [Chart(styled(fig, height=320)), table]
    blocks += [
        Text(str(n).removeprefix("checkout journey: "))
        for n in notes
        if "checkout journey" in str(n)
    ]
    return Section(sid, title, lead, tuple(blocks))
