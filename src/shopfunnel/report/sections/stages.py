"""Stage sections: the five-stage funnel, where people stand, how they moved."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from shopfunnel.report.blocks import (
    Chart,
    Section,
    Table,
    Text,
    unavailable,
)
from shopfunnel.report.charts import PALETTE, STAGE_COLOURS, styled
from shopfunnel.report.sections._common import usable


def stage_colour(stage: str) -> str:
    return STAGE_COLOURS.get(str(stage).lower(), PALETTE[0])


def _state_colour(state: str) -> str:
    if state.lower() in STAGE_COLOURS:
        return STAGE_COLOURS[state.lower()]
    return "#D55E00" if state == "lapsed" else "#9aa5b1"


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def stage_funnel_section(summary: pd.DataFrame | None) -> Section:
    """The five-stage funnel: persons who reached each stage (awareness → retention).

    ``summary`` is :func:`shopfunnel.stages.stage_summary` (stage, reached, at_stage,
    conversion_from_previous, conversion_from_start, active, stalled, lapsed, …).
    """
    sid, title = "stages", "The five stages"
    lead = (
        "How many people reached each stage of the funnel: aware of the store, interested in a "
        "product, deciding (cart or checkout), buying, and coming back to buy again."
    )
    if not usable(summary, ["stage", "reached"]) or int(summary["reached"].iloc[0]) == 0:
        return unavailable(sid, title, "Nobody has been placed in a stage yet.", lead)
    names = [str(s) for s in summary["stage"]]
    fig = go.Figure(
        go.Funnel(
            y=names,
            x=summary["reached"],
            texttemplate="%{value:,}<br>%{percentPrevious:.1%}",
            marker={"color": [stage_colour(s) for s in names]},
            connector={"line": {"color": "#cbd2d9"}},
            hovertemplate="%{y}: %{x:,} people<br>%{percentPrevious:.1%} of the previous stage<extra></extra>",
        )
    )
    blocks: list[Any] = [Chart(styled(fig, height=80 + 55 * len(names)))]
    cols = [
        c
        for c in (
            "stage",
            "reached",
            "at_stage",
            "conversion_from_previous",
            "conversion_from_start",
        )
        if c in summary.columns
    ]
    blocks.append(
        Table(
            summary[cols].reset_index(drop=True),
            formats={
                "reached": "int",
                "at_stage": "int",
                "conversion_from_previous": "pct",
                "conversion_from_start": "pct",
            },
        )
    )
    return Section(sid, title, lead, tuple(blocks))


STATUS_COLOURS = {"active": "#009E73", "stalled": "#E69F00", "lapsed": "#D55E00", "gone": "#9aa5b1"}


def stage_distribution_section(
    summary: pd.DataFrame | None, notes: list[str] | tuple[str, ...] = ()
) -> Section:
    """Where people stand now: persons at each stage, split by status (active, stalled, lapsed,
    gone), with each stage's thresholds and ``notes`` saying how the statuses were judged."""
    sid, title = "distribution", "Where people stand now"
    lead = (
        "Each person counted once, at the furthest stage they reached. Active: seen (or, for "
        "customers, bought) within the usual time. Stalled: a prospect not seen for longer than "
        "most who came back to move on had stayed away: worth a reminder. Lapsed: a customer past "
        "their usual gap between orders. Gone: past the point where almost nobody comes back."
    )
    statuses = [s for s in STATUS_COLOURS if summary is not None and s in summary.columns]
    if not usable(summary, ["stage"]) or not statuses:
        return unavailable(sid, title, "No stage placement to show yet.", lead)
    if int(summary[statuses].to_numpy().sum()) == 0:
        return unavailable(sid, title, "Nobody has been placed in a stage yet.", lead)
    fig = go.Figure()
    for status in statuses:
        fig.add_bar(
            x=summary["stage"].astype(str),
            y=summary[status],
            name=status,
            marker={"color": STATUS_COLOURS[status]},
        )
    fig.update_layout(barmode="stack", yaxis={"title": "people"}, legend={"traceorder": "normal"})
    table_frame = summary[["stage", *statuses]].reset_index(drop=True)
    for column, label in (
        ("stalled_after_days", "stalled after"),
        ("gone_after_days", "gone after"),
    ):
        if column in summary.columns:
            table_frame[label] = summary[column].astype(float).to_numpy() * 86400
    table = Table(
        table_frame,
        formats={
            **{s: "int" for s in statuses},
            "stalled after": "duration",
            "gone after": "duration",
        },
    )
    blocks: list[Any] = [Chart(styled(fig, height=340)), table]
    blocks += [Text(note) for note in notes]
    return Section(sid, title, lead, tuple(blocks))


def stage_flow_section(flow: pd.DataFrame | None, *, start: str = "", end: str = "") -> Section:
    """How people moved between stages from ``start`` to ``end`` (a Sankey diagram).

    ``flow`` is :func:`shopfunnel.stages.stage_flow`: a square matrix of persons, states at
    ``start`` as rows and at ``end`` as columns (``not seen``, the stages, ``lapsed``).
    """
    sid, title = "flow", "How people moved between stages"
    period = f" on {start} (left) stood on {end} (right)" if start and end else " ended up"
    lead = (
        f"Where the people at each stage{period}. Coloured bands are people who moved: to a "
        "later stage is progress, to lapsed is customers slipping away; grey bands stayed put."
    )
    if not usable(flow) or int(np.nansum(flow.to_numpy(dtype=float))) == 0:
        return unavailable(
            sid, title, "Not enough history to show movement between stages yet.", lead
        )
    rows, cols = [str(r) for r in flow.index], [str(c) for c in flow.columns]
    source, target, value, link_colours = [], [], [], []
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = float(flow.iloc[i, j])
            if v > 0:
                source.append(i)
                target.append(len(rows) + j)
                value.append(v)
                moved = rows[i] != cols[j]
                link_colours.append(
                    _rgba(_state_colour(cols[j]), 0.45) if moved else "rgba(154,165,177,0.25)"
                )
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": rows + cols,
                "color": [_state_colour(x) for x in rows + cols],
                "pad": 12,
                "thickness": 14,
                "hovertemplate": "%{label}: %{value:,} people<extra></extra>",
            },
            link={
                "source": source,
                "target": target,
                "value": value,
                "color": link_colours,
                "hovertemplate": "%{source.label} → %{target.label}: %{value:,}<extra></extra>",
            },
        )
    )
    if start and end:
        for x, text, anchor in ((0, start, "left"), (1, end, "right")):
            fig.add_annotation(
                x=x,
                y=1.06,
                xref="paper",
                yref="paper",
                text=text,
                showarrow=False,
                xanchor=anchor,
                font={"color": "#616e7c"},
            )
    return Section(sid, title, lead, (Chart(styled(fig, height=420)),))
