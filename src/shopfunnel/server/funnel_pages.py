"""The dashboard's funnel and stages pages: the funnel form with every control the engine
has (steps with filters, exclusions, a held property, optional steps, open entry), and the
stages with their statuses, the persons at a stage and the flow between two dates."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shopfunnel import format as fmt
from shopfunnel.server import queries
from shopfunnel.server.pages import admin_page, bar_chart, figure, page_context, read, render

router = APIRouter(include_in_schema=False)


def _breakdown_chart(breakdown: pd.DataFrame, by: str, count_by: str) -> dict[str, Any]:
    """Persons per step, one group of bars per breakdown value."""
    fig = go.Figure(
        layout={
            "margin": {"t": 30},
            "barmode": "group",
            "yaxis": {"title": f"{count_by}s"},
            "legend": {"title": {"text": by}},
        }
    )
    for value, part in breakdown.groupby(by, sort=False):
        fig.add_trace(
            go.Bar(
                name=str(value),
                x=[str(v) for v in part["name"]],
                y=[int(v) for v in part["persons"]],
            )
        )
    return figure(fig)


def _sankey(flow: pd.DataFrame, start: str, end: str) -> dict[str, Any]:
    """The stage flow matrix as a Sankey diagram: states at ``start`` (left) to ``end`` (right)."""
    states = [c for c in flow.columns if c != "from"]
    labels = [f"{s} ({start})" for s in states] + [f"{s} ({end})" for s in states]
    source, target, value = [], [], []
    for row in flow.itertuples(index=False):
        origin = states.index(row[0]) if row[0] in states else None
        for j in range(len(states)):
            count = int(row[j + 1])
            if origin is not None and count > 0:
                source.append(origin)
                target.append(len(states) + j)
                value.append(count)
    return figure(
        go.Figure(
            go.Sankey(
                node={"label": labels, "pad": 12},
                link={"source": source, "target": target, "value": value},
            ),
            layout={"margin": {"t": 30}},
        )
    )


@router.get("/funnel")
@admin_page("funnel.html")
def funnel_page(
    request: Request,
    steps: str | None = None,
    window: str = "7d",
    order: str = "ordered",
    by: str = "",
    count_by: str = "person",
    exclude: str = "",
    hold: str = "",
    optional: str = "",
    open: str = "",
) -> Response:
    from shopfunnel.model import load_model

    from_model = steps is None  # the model's funnel may name events the store has yet to see
    if steps is None:
        model = load_model()
        steps, window = ",".join(model.funnel.steps), str(model.funnel.window)
    form = {
        "steps": steps,
        "window": window,
        "order": order,
        "by": by,
        "count_by": count_by,
        "exclude": exclude,
        "hold": hold,
        "optional": optional,
        "open": bool(open),
    }
    context = page_context(
        request,
        title="Funnel",
        form=form,
        breakdowns=queries.BREAKDOWNS,
        steps=None,
        charts=True,
    )
    result = read(
        request,
        queries.funnel,
        steps,
        window=window,
        order=order,
        by=by or None,
        count_by=count_by,
        exclude=exclude,
        hold=hold or None,
        optional=optional,
        open_entry=bool(open),
        allow_unknown=from_model,
    )
    table = result.steps
    chart = bar_chart(
        table["name"].tolist(), [int(v) for v in table["persons"]], yaxis={"title": f"{count_by}s"}
    )
    if result.breakdown is not None and len(result.breakdown):
        chart = _breakdown_chart(result.breakdown, result.by_column, count_by)
    context.update(
        steps=table,
        breakdown=result.breakdown,
        funnel_chart=chart,
        api_url="/v1/funnel?" + str(request.query_params),
    )
    return render(request, "funnel.html", **context)


STATUS_COLOURS = {"active": "#009E73", "stalled": "#E69F00", "lapsed": "#D55E00", "gone": "#9aa5b1"}


def _status_chart(summary: pd.DataFrame) -> dict[str, Any]:
    """Persons at each stage, stacked by status."""
    fig = go.Figure(
        layout={"margin": {"t": 30}, "barmode": "stack", "yaxis": {"title": "persons at the stage"}}
    )
    for status, colour in STATUS_COLOURS.items():
        fig.add_bar(
            x=[str(v) for v in summary["stage"]],
            y=[int(v) for v in summary[status]],
            name=status,
            marker={"color": colour},
        )
    return figure(fig)


def _stage_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The stage summary as people read it: counts, conversion in %, thresholds as durations."""
    table = summary[["stage", "reached", "at_stage"]].copy()
    table["conversion"] = [fmt.pct(v) for v in summary["conversion_from_previous"]]
    for status in STATUS_COLOURS:
        table[status] = summary[status]
    table["stalled after"] = [_days(v) for v in summary["stalled_after_days"]]
    table["gone after"] = [_days(v) for v in summary["gone_after_days"]]
    return table


@router.get("/stages")
@admin_page("stages.html")
def stages_page(
    request: Request, stage: str = "", status: str = "", start: str = "", end: str = ""
) -> Response:
    from urllib.parse import urlencode

    from shopfunnel.model import load_model

    form = {"stage": stage, "status": status, "start": start, "end": end}
    context = page_context(
        request,
        title="Stages",
        form=form,
        stage_names=[s.name for s in load_model().stages],
        statuses=list(STATUS_COLOURS),
        status_notes=[],
        summary=None,
        flow=None,
        persons=None,
        charts=True,
        csv_url="/v1/stages/persons?"
        + urlencode(
            {k: v for k, v in {"stage": stage, "status": status, "format": "csv"}.items() if v}
        ),
    )
    overview = read(request, queries.stage_overview)
    summary = overview["summary"]
    context["summary"] = _stage_table(summary)
    context["status_notes"] = overview["notes"]
    context["stages_chart"] = _status_chart(summary)
    context["persons"] = read(request, queries.stage_persons, stage or None, status or None)
    if start and end:
        context["flow"] = flow = read(request, queries.stage_flow, start, end)
        context["flow_chart"] = _sankey(flow, start, end)
    return render(request, "stages.html", **context)


def _days(days: float) -> str:
    """A duration given in days, as people read it (``9d 14h``, ``3h 20m``)."""
    return fmt.duration(days * 86_400)
