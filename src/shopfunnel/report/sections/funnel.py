"""Funnel sections: steps and drop-off, breakdowns, trend, time to convert."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from shopfunnel import format as fmt
from shopfunnel.report.blocks import (
    Chart,
    Section,
    Table,
    unavailable,
)
from shopfunnel.report.charts import PALETTE, styled
from shopfunnel.report.sections._common import usable


def steps_section(steps: pd.DataFrame | None) -> Section:
    """Step-by-step funnel: persons per step, and where they drop off.

    ``steps`` is ``funnel(...).steps`` (step, name, persons, conversion_from_previous,
    conversion_from_start, drop_off, drop_off_rate, median_seconds_from_previous, …).
    """
    sid, title = "steps", "Step by step: where people drop off"
    lead = (
        "Each bar is the number of people who reached the step within the conversion window, in "
        "order. The drop-off chart shows the share lost between a step and the one before it."
    )
    needed = ["name", "persons", "conversion_from_previous", "conversion_from_start"]
    if not usable(steps, needed):
        return unavailable(
            sid, title, "No funnel steps to show: the store has no events of the first step.", lead
        )
    if int(steps["persons"].iloc[0]) == 0:
        return unavailable(
            sid, title, f"Nobody reached the first step ({steps['name'].iloc[0]}) yet.", lead
        )
    names = [str(n) for n in steps["name"]]
    funnel = go.Figure(
        go.Funnel(
            y=names,
            x=steps["persons"],
            texttemplate="%{value:,}<br>%{percentInitial:.1%}",
            hovertemplate="%{y}: %{x:,} people<br>%{percentInitial:.1%} of the first step<extra></extra>",
            marker={"color": PALETTE[0]},
            connector={"line": {"color": "#cbd2d9"}},
        )
    )
    blocks: list[Any] = [Chart(styled(funnel, height=60 + 50 * len(names)))]
    if len(steps) > 1:
        rest = steps.iloc[1:]
        lost = 1 - rest["conversion_from_previous"].astype(float)
        worst = int(lost.to_numpy().argmax())
        colours = [PALETTE[3] if i == worst else "#9aa5b1" for i in range(len(rest))]
        labels = [f"{a} → {b}" for a, b in zip(names[:-1], names[1:], strict=True)]
        drop = go.Figure(
            go.Bar(
                x=labels,
                y=lost,
                marker={"color": colours},
                text=[fmt.pct(v) for v in lost],
                textposition="outside",
                hovertemplate="%{x}<br>lost %{y:.1%}<extra></extra>",
            )
        )
        drop.update_layout(
            yaxis={
                "tickformat": ".0%",
                "range": [0, min(1.0, float(lost.max()) * 1.2 + 0.05)],
                "title": "share lost",
            }
        )
        blocks.append(
            Chart(
                styled(drop, height=320),
                caption=f"The biggest loss is {labels[worst]}: {fmt.pct(lost.iloc[worst])} do not go on.",
            )
        )
    cols = [
        c
        for c in (
            "step",
            "name",
            "persons",
            "conversion_from_previous",
            "conversion_from_start",
            "drop_off",
            "median_seconds_from_previous",
            "p90_seconds_from_previous",
        )
        if c in steps.columns
    ]
    headings = {
        "name": "step name",
        "persons": "people",
        "conversion_from_previous": "from previous step",
        "conversion_from_start": "from first step",
        "drop_off": "lost",
        "median_seconds_from_previous": "median time",
        "p90_seconds_from_previous": "90% within",
    }
    blocks.append(
        Table(
            steps[cols].rename(columns=headings).reset_index(drop=True),
            formats={
                "step": "int",
                "people": "int",
                "from previous step": "pct",
                "from first step": "pct",
                "lost": "int",
                "median time": "duration",
                "90% within": "duration",
            },
        )
    )
    return Section(sid, title, lead, tuple(blocks))


def _first_last(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: persons at the first step (``entered``), at the last step
    (``converted``) and ``rate`` = converted / entered (NaN when nobody entered)."""
    ordered = frame.sort_values([*keys, "step"])
    grouped = ordered.groupby(keys, sort=False)["persons"]
    out = pd.DataFrame({"entered": grouped.first(), "converted": grouped.last()}).reset_index()
    entered = out["entered"].astype(float)
    out["rate"] = (out["converted"].astype(float) / entered.where(entered > 0)).astype(float)
    return out


def breakdown_section(breakdown: pd.DataFrame | None, by: str, *, top: int = 8) -> Section:
    """Funnel conversion per value of ``by`` (channel, device…): who converts best and worst.

    ``breakdown`` is long: one row per (value of ``by``, step) with ``persons`` (people who
    reached the step). The chart shows first step → last step conversion per value; the
    ``top`` values with the most people are drawn, the rest are in the table.
    """
    sid, title = f"by-{by}", f"Conversion by {by}"
    lead = (
        f"First step to purchase, for each {by}. Compare like with like: a {by} with few "
        "people can swing a lot by chance."
    )
    if not usable(breakdown, [by, "step", "persons"]):
        return unavailable(sid, title, f"No {by} recorded on the funnel's events.", lead)
    per = _first_last(breakdown.assign(**{by: breakdown[by].fillna("(none)").astype(str)}), [by])
    per = per[per["entered"] > 0].sort_values("entered", ascending=False)
    if per.empty:
        return unavailable(sid, title, f"Nobody entered the funnel in any {by}.", lead)
    shown = per.head(top).sort_values("rate")
    overall = per["converted"].sum() / per["entered"].sum()
    fig = go.Figure(
        go.Bar(
            y=shown[by],
            x=shown["rate"],
            orientation="h",
            marker={"color": PALETTE[0]},
            text=[
                f"{fmt.pct(r)}  (n={int(n):,})"
                for r, n in zip(shown["rate"], shown["entered"], strict=True)
            ],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.add_vline(
        x=overall,
        line_dash="dot",
        line_color="#616e7c",
        annotation_text=f"all: {fmt.pct(overall)}",
        annotation_position="top",
    )
    fig.update_layout(
        xaxis={
            "tickformat": ".1%",
            "rangemode": "tozero",
            "range": [0, float(shown["rate"].max()) * 1.35 + 1e-9],
        },
        yaxis={"type": "category"},
        margin={"l": 130},
    )
    table = Table(
        per.rename(
            columns={
                "entered": "entered funnel",
                "converted": "reached last step",
                "rate": "conversion",
            }
        ).reset_index(drop=True),
        formats={"entered funnel": "int", "reached last step": "int", "conversion": "pct"},
        caption=f"All {len(per)} values of {by}",
        collapsed=True,
    )
    return Section(
        sid, title, lead, (Chart(styled(fig, height=90 + 38 * len(shown), legend=False)), table)
    )


def trend_section(
    trend: pd.DataFrame | None, *, period: str = "week", period_col: str = "period"
) -> Section:
    """Conversion from the first step to the last by ``period`` of the attempt's start.

    ``trend`` is long: one row per (``period_col``, step) with ``persons``.
    """
    sid, title = "trend", "Conversion over time"
    lead = (
        f"Of the people who entered the funnel each {period}, the share who reached the last step "
        f"within the window. Someone who starts in two {period}s counts in both, so the {period}s "
        f"do not add up to the funnel's total. The latest {period} may still be incomplete."
    )
    if not usable(trend, [period_col, "step", "persons"]):
        return unavailable(sid, title, "No funnel trend to show yet.", lead)
    per = _first_last(trend, [period_col]).sort_values(period_col)
    per = per[per["entered"] > 0]
    if len(per) < 2:
        return unavailable(
            sid, title, f"Less than two {period}s of data: come back later for a trend.", lead
        )
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.65, 0.35]
    )
    fig.add_scatter(
        x=per[period_col],
        y=per["rate"],
        mode="lines+markers",
        name="conversion",
        line={"color": PALETTE[0]},
        hovertemplate="%{x}: %{y:.2%}<extra></extra>",
        row=1,
        col=1,
    )
    fig.add_bar(
        x=per[period_col],
        y=per["entered"],
        name="entered the funnel",
        marker={"color": "#9aa5b1"},
        row=2,
        col=1,
    )
    fig.update_yaxes(tickformat=".1%", rangemode="tozero", title_text="conversion", row=1, col=1)
    fig.update_yaxes(title_text="people", rangemode="tozero", row=2, col=1)
    return Section(sid, title, lead, (Chart(styled(fig, height=380)),))


DURATION_TICKS = [
    1,
    10,
    60,
    300,
    900,
    3600,
    3 * 3600,
    12 * 3600,
    86400,
    3 * 86400,
    7 * 86400,
    30 * 86400,
]


def time_to_convert_section(
    steps: pd.DataFrame | None, distribution: pd.DataFrame | None = None
) -> Section:
    """How long people take between steps: the median and the 90th percentile per step, and,
    when given, the distribution of time from the first to the last step.

    ``steps`` is ``funnel(...).steps``; ``distribution`` is ``funnel(...).time_to_convert()``
    (a histogram: ``bin`` label and ``persons`` per bin, bins in time order).
    """
    sid, title = "time", "Time to convert"
    lead = (
        "How long people take from one step to the next: half take less than the median, one "
        "in ten take longer than the 90th percentile. A long wait before buying hints at doubts "
        "(price, shipping, trust) worth answering on the page."
    )
    needed = ["name", "median_seconds_from_previous", "p90_seconds_from_previous"]
    if not usable(steps, needed) or len(steps) < 2:
        return unavailable(sid, title, "No conversions yet, so no times between steps.", lead)
    rest = steps.iloc[1:]
    names = [str(n) for n in steps["name"]]
    labels = [f"{a} → {b}" for a, b in zip(names[:-1], names[1:], strict=True)]
    median = rest["median_seconds_from_previous"].astype(float).to_numpy()
    p90 = rest["p90_seconds_from_previous"].astype(float).to_numpy()
    if np.isnan(median).all():
        return unavailable(sid, title, "No conversions yet, so no times between steps.", lead)
    fig = go.Figure()
    fig.add_bar(
        x=labels,
        y=median,
        name="median",
        marker={"color": PALETTE[0]},
        text=[fmt.duration(v) for v in median],
        textposition="outside",
        hovertemplate="%{x}<br>median %{text}<extra></extra>",
    )
    fig.add_bar(
        x=labels,
        y=p90,
        name="90% within",
        marker={"color": "#9aa5b1"},
        text=[fmt.duration(v) for v in p90],
        textposition="outside",
        hovertemplate="%{x}<br>90% within %{text}<extra></extra>",
    )
    ticks = [t for t in DURATION_TICKS if t <= max(np.nanmax(p90), np.nanmax(median)) * 3]
    fig.update_layout(
        barmode="group",
        yaxis={
            "title": "time (log scale)",
            "type": "log",
            "tickvals": ticks,
            "ticktext": [fmt.duration(t) for t in ticks],
        },
    )
    blocks: list[Any] = [Chart(styled(fig, height=340))]
    if usable(distribution, ["bin", "persons"]):
        counts = distribution["persons"].astype(float).to_numpy()
        if counts.sum() > 0:
            nonzero = np.flatnonzero(counts)
            shown = distribution.iloc[nonzero[0] : nonzero[-1] + 1]
            hist = go.Figure(
                go.Bar(
                    x=[str(b) for b in shown["bin"]],
                    y=shown["persons"],
                    marker={"color": PALETTE[2]},
                    hovertemplate="%{x}: %{y:,} people<extra></extra>",
                )
            )
            hist.update_layout(
                xaxis={"title": "time from the first step to the last", "type": "category"},
                yaxis={"title": "people"},
            )
            blocks.append(
                Chart(
                    styled(hist, height=300, legend=False),
                    caption="How long the people who converted took, end to end.",
                )
            )
    return Section(sid, title, lead, tuple(blocks))
