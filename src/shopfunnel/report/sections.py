"""Section builders: analysis results (DataFrames) in, a :class:`Section` out.

Each builder is a small pure function, testable without a store. A builder whose data
cannot support it returns a section with a short ``note`` instead of raising, so a thin
or young store still gets a whole report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from shopfunnel.report import fmt
from shopfunnel.report.blocks import (
    Chart,
    Figure,
    Finding,
    Findings,
    KeyFigures,
    Section,
    Table,
    Tactic,
    Text,
    unavailable,
)
from shopfunnel.report.charts import PALETTE, STAGE_COLOURS, styled


def _has(frame: pd.DataFrame | None, needed: Sequence[str] = ()) -> TypeGuard[pd.DataFrame]:
    """True when ``frame`` has rows and every column in ``needed``."""
    return frame is not None and len(frame) > 0 and all(c in frame.columns for c in needed)


# -- overview ---------------------------------------------------------------------------
def overview_section(info: Mapping[str, Any], revenue: float | None = None, currency: str = "") -> Section:
    """Key figures of the store: events, persons, sessions, orders, revenue and date range."""
    title = "Your store at a glance"
    if not info or not info.get("events"):
        return unavailable("overview", title, "The store holds no events yet: load some with `shopfunnel ingest`.")
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
        items.append(Figure("Revenue", fmt.money(revenue, currency), f"average order {fmt.money(aov, currency)}"))
    return Section("overview", title, blocks=(KeyFigures(tuple(items)),))


def activity_section(daily: pd.DataFrame | None, incidents: pd.DataFrame | None = None) -> Section:
    """Sessions and orders per day (columns ``day``, ``sessions``, ``orders``).

    ``incidents`` (columns ``start``, ``end`` and optionally ``label``) are shaded on the
    chart, so a finding's dates can be seen against the traffic.
    """
    sid, title = "activity", "Daily activity"
    lead = "Sessions and orders per day. Sudden dips or spikes are worth a look in the diagnosis above."
    if not _has(daily, ["day", "sessions", "orders"]):
        return unavailable(sid, title, "No daily activity to show yet.", lead)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4])
    fig.add_scatter(x=daily["day"], y=daily["sessions"], name="sessions", mode="lines",
                    line={"color": PALETTE[0]}, row=1, col=1)
    fig.add_bar(x=daily["day"], y=daily["orders"], name="orders", marker={"color": PALETTE[2]}, row=2, col=1)
    fig.update_yaxes(title_text="sessions", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="orders", rangemode="tozero", row=2, col=1)
    fig.update_layout(hovermode="x unified", bargap=0.1)
    if _has(incidents, ["start", "end"]):
        for row in incidents.to_dict("records"):
            start, end = pd.Timestamp(row["start"]), pd.Timestamp(row["end"])
            if pd.isna(start) or pd.isna(end):
                continue
            x0 = start - pd.Timedelta(hours=12)
            fig.add_vrect(x0=x0, x1=end + pd.Timedelta(hours=12), fillcolor="#D55E00", opacity=0.15,
                          line_width=0, layer="below")
            fig.add_annotation(x=x0, y=1, xref="x", yref="y domain", text=_text(row.get("label")) or "incident",
                               showarrow=False, xanchor="left", yanchor="bottom", font={"size": 11, "color": "#b42318"})
    return Section(sid, title, lead, (Chart(styled(fig, height=380)),))


# -- diagnosis --------------------------------------------------------------------------
def tactics_of(value: Any) -> tuple[Tactic, ...]:
    """A finding's tactics: playbook entries (dicts with ``name`` and ``why``), names, or a
    comma- or semicolon-separated string."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ()
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(";", ",").split(",")]
        return tuple(Tactic(p) for p in parts if p)
    if isinstance(value, Mapping):
        return (Tactic(_text(value.get("name")) or _text(value.get("key")), _text(value.get("why"))),)
    try:
        items = list(value)
    except TypeError:
        return (Tactic(str(value)),)
    return tuple(t for item in items for t in tactics_of(item))


def _audience_part(key: str, value: Any) -> str:
    if isinstance(value, (list, tuple)):
        joiner = " to " if key == "between" else ", "
        return f"{key.replace('_', ' ')} {joiner.join(str(v) for v in value)}"
    return f"{key.replace('_', ' ')} = {value}"


def audience_of(value: Any) -> str:
    """Who to target, in words: ``{"stage": "decision", "status": "stalled"}`` reads
    "stalled people at the decision stage"; other keys are added as ``key = value``."""
    if isinstance(value, Mapping):
        rest = {k: v for k, v in value.items() if k not in ("stage", "status") and _text(v)}
        stage, status = _text(value.get("stage")), _text(value.get("status"))
        text = " ".join(p for p in (status, "people") if p)
        if stage:
            text += f" at the {stage} stage"
        extra = ", ".join(_audience_part(k, v) for k, v in rest.items())
        return f"{text} ({extra})" if extra else text
    return _text(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def _is_rate(value: Any) -> bool:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return 0.0 <= v <= 1.0


def finding_period(row: Mapping[str, Any]) -> str:
    """``2024-02-03 to 2024-02-06`` (or one day) when the finding has ``start``/``end`` dates."""
    start, end = _text(row.get("start"))[:10], _text(row.get("end"))[:10]
    if not start:
        return ""
    return start if not end or end == start else f"{start} to {end}"


def _title_with_period(row: Mapping[str, Any]) -> str:
    period = finding_period(row)
    title = _text(row.get("title"))
    return f"{title} ({period})" if period and period not in title else title


def finding_headline(row: Mapping[str, Any]) -> str:
    """One sentence for a finding: what, where, how far from the reference, and when."""
    metric = _text(row.get("metric")) or _text(row.get("kind")) or "finding"
    where = _text(row.get("step")) or _text(row.get("stage"))
    segment = _text(row.get("segment"))
    value, reference = row.get("value"), row.get("reference")
    show = fmt.pct if _is_rate(value) and _is_rate(reference) else fmt.number
    text = metric.replace("_", " ")
    text = text[:1].upper() + text[1:]
    if where:
        text += f" at {where}"
    if segment:
        text += f" for {segment}"
    if _text(value):
        text += f": {show(value)}"
        if _text(reference):
            text += f" against {show(reference)}"
    period = finding_period(row)
    if period:
        text += f" ({period})"
    return text


INCIDENT_KINDS = ("incident", "traffic_spike")


def _card(row: Mapping[str, Any], currency: str) -> Finding:
    p = row.get("p_value")
    return Finding(
        rank=int(row["rank"]),
        headline=_title_with_period(row) if _text(row.get("title")) else finding_headline(row),
        stage=_text(row.get("stage")),
        revenue_at_stake=fmt.money(row.get("revenue_at_stake"), currency) if _text(row.get("revenue_at_stake")) else "",
        evidence=_text(row.get("evidence")),
        tactics=tactics_of(row.get("tactics")),
        audience=audience_of(row.get("audience")),
        significance=fmt.p_value(p) if _text(p) else "",
    )


def diagnosis_section(
    findings: pd.DataFrame | None,
    *,
    top: int = 5,
    currency: str = "",
    period: str = "",
    notes: Sequence[str] = (),
) -> Section:
    """The diagnosis, most valuable fix first: the ``top`` findings as cards, all in a table.

    ``findings`` has the columns of :func:`shopfunnel.diagnose.diagnose`'s ``.findings``
    (rank, kind, stage, step, segment, metric, value, reference, gap, p_value,
    revenue_at_stake, evidence, tactics, audience, and optionally title, start, end);
    missing columns read as blank. ``period`` says which dates were diagnosed; ``notes``
    say what could not be measured, and are listed under the findings.
    """
    sid, title = "diagnosis", "What to fix first"
    lead = (
        "Where the funnel loses the most money, and what to try. Findings are ranked by revenue "
        "at stake: people lost at the step × how often they would have gone on to buy × the "
        "average order value."
    )
    if period:
        lead = f"{lead} Diagnosed period: {period}."
    if findings is None:
        return unavailable(sid, title, "The diagnosis is not available for this store.", lead)
    tail: list[Any] = []
    if notes:
        tail.append(Table(pd.DataFrame({"not measured": [str(n) for n in notes]}),
                          caption=f"What could not be measured ({len(notes)})", collapsed=True))
    if len(findings) == 0:
        return Section(sid, title, lead, (Text(
            "No significant weak spot found: every stage converts at or above its benchmark and "
            "its own past, and no segment lags significantly behind the rest."
        ), *tail))
    frame = findings.sort_values("rank") if "rank" in findings.columns else findings
    records = frame.to_dict("records")
    for i, row in enumerate(records, start=1):
        row.setdefault("rank", i)
    incidents = [r for r in records if _text(r.get("kind")) in INCIDENT_KINDS]
    blocks: list[Any] = []
    if incidents:
        blocks.append(Findings(tuple(_card(r, currency) for r in incidents),
                               heading="Something broke for a while: check these dates first", tone="incident"))
    top_cards = tuple(_card(r, currency) for r in records[:top])
    blocks.append(Findings(top_cards, heading="Biggest gaps, most valuable first" if incidents else ""))
    if "title" in frame.columns and frame["title"].notna().any():
        columns = ("rank", "kind", "stage", "title", "p_value", "revenue_at_stake")
    else:
        columns = ("rank", "kind", "stage", "step", "segment", "metric", "value", "reference", "gap", "p_value",
                   "revenue_at_stake")
    shown = [c for c in columns if c in frame.columns]
    listing = frame[shown].reset_index(drop=True)
    if "kind" in listing.columns:
        listing["kind"] = listing["kind"].astype(str).str.replace("_", " ")
    listing = listing.rename(columns={"title": "finding", "p_value": "p",
                                                                  "revenue_at_stake": "at stake"})
    table = Table(
        listing,
        formats={"rank": "int", "p": "p", "at stake": "money", "value": "number",
                 "reference": "number", "gap": "number"},
        caption=f"All {len(frame)} findings",
        collapsed=True,
    )
    return Section(sid, title, lead, (*blocks, table, *tail))


# -- funnel steps -----------------------------------------------------------------------
def steps_section(steps: pd.DataFrame | None) -> Section:
    """Step-by-step funnel: persons per step, and where they drop off.

    ``steps`` is ``funnel(...).steps`` (step, name, persons, conversion_from_previous,
    conversion_from_start, drop_off, drop_off_rate, median_seconds_from_previous, …).
    """
    sid, title = "steps", "Step by step: where people drop off"
    lead = ("Each bar is the number of people who reached the step within the conversion window, in "
            "order. The drop-off chart shows the share lost between a step and the one before it.")
    needed = ["name", "persons", "conversion_from_previous", "conversion_from_start"]
    if not _has(steps, needed):
        return unavailable(sid, title, "No funnel steps to show: the store has no events of the first step.", lead)
    if int(steps["persons"].iloc[0]) == 0:
        return unavailable(sid, title, f"Nobody reached the first step ({steps['name'].iloc[0]}) yet.", lead)
    names = [str(n) for n in steps["name"]]
    funnel = go.Figure(go.Funnel(
        y=names, x=steps["persons"], texttemplate="%{value:,}<br>%{percentInitial:.1%}",
        hovertemplate="%{y}: %{x:,} people<br>%{percentInitial:.1%} of the first step<extra></extra>",
        marker={"color": PALETTE[0]}, connector={"line": {"color": "#cbd2d9"}},
    ))
    blocks: list[Any] = [Chart(styled(funnel, height=60 + 50 * len(names)))]
    if len(steps) > 1:
        rest = steps.iloc[1:]
        lost = 1 - rest["conversion_from_previous"].astype(float)
        worst = int(lost.to_numpy().argmax())
        colours = [PALETTE[3] if i == worst else "#9aa5b1" for i in range(len(rest))]
        labels = [f"{a} → {b}" for a, b in zip(names[:-1], names[1:], strict=True)]
        drop = go.Figure(go.Bar(
            x=labels, y=lost, marker={"color": colours},
            text=[fmt.pct(v) for v in lost], textposition="outside",
            hovertemplate="%{x}<br>lost %{y:.1%}<extra></extra>",
        ))
        drop.update_layout(yaxis={"tickformat": ".0%", "range": [0, min(1.0, float(lost.max()) * 1.2 + 0.05)],
                                  "title": "share lost"})
        blocks.append(Chart(styled(drop, height=320),
                            caption=f"The biggest loss is {labels[worst]}: {fmt.pct(lost.iloc[worst])} do not go on."))
    cols = [c for c in ("step", "name", "persons", "conversion_from_previous", "conversion_from_start",
                        "drop_off", "median_seconds_from_previous", "p90_seconds_from_previous")
            if c in steps.columns]
    headings = {"name": "step name", "persons": "people", "conversion_from_previous": "from previous step",
              "conversion_from_start": "from first step", "drop_off": "lost",
              "median_seconds_from_previous": "median time", "p90_seconds_from_previous": "90% within"}
    blocks.append(Table(steps[cols].rename(columns=headings).reset_index(drop=True), formats={
        "step": "int", "people": "int", "from previous step": "pct", "from first step": "pct",
        "lost": "int", "median time": "duration", "90% within": "duration",
    }))
    return Section(sid, title, lead, tuple(blocks))


# -- stages -----------------------------------------------------------------------------
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
    lead = ("How many people reached each stage of the funnel: aware of the store, interested in a "
            "product, deciding (cart or checkout), buying, and coming back to buy again.")
    if not _has(summary, ["stage", "reached"]) or int(summary["reached"].iloc[0]) == 0:
        return unavailable(sid, title, "Nobody has been placed in a stage yet.", lead)
    names = [str(s) for s in summary["stage"]]
    fig = go.Figure(go.Funnel(
        y=names, x=summary["reached"], texttemplate="%{value:,}<br>%{percentPrevious:.1%}",
        marker={"color": [stage_colour(s) for s in names]}, connector={"line": {"color": "#cbd2d9"}},
        hovertemplate="%{y}: %{x:,} people<br>%{percentPrevious:.1%} of the previous stage<extra></extra>",
    ))
    blocks: list[Any] = [Chart(styled(fig, height=80 + 55 * len(names)))]
    cols = [c for c in ("stage", "reached", "at_stage", "conversion_from_previous", "conversion_from_start")
            if c in summary.columns]
    blocks.append(Table(summary[cols].reset_index(drop=True), formats={
        "reached": "int", "at_stage": "int", "conversion_from_previous": "pct", "conversion_from_start": "pct"}))
    return Section(sid, title, lead, tuple(blocks))


STATUS_COLOURS = {"active": "#009E73", "stalled": "#E69F00", "lapsed": "#D55E00"}


def stage_distribution_section(summary: pd.DataFrame | None) -> Section:
    """Where people stand now: persons at each stage, split by status (active, stalled, lapsed)."""
    sid, title = "distribution", "Where people stand now"
    lead = ("Each person counted once, at the furthest stage they reached. Stalled: at the stage for "
            "longer than is usual there. Lapsed: a customer past their usual gap between orders.")
    statuses = [s for s in STATUS_COLOURS if summary is not None and s in summary.columns]
    if not _has(summary, ["stage"]) or not statuses:
        return unavailable(sid, title, "No stage placement to show yet.", lead)
    if int(summary[statuses].to_numpy().sum()) == 0:
        return unavailable(sid, title, "Nobody has been placed in a stage yet.", lead)
    fig = go.Figure()
    for status in statuses:
        fig.add_bar(x=summary["stage"].astype(str), y=summary[status], name=status,
                    marker={"color": STATUS_COLOURS[status]})
    fig.update_layout(barmode="stack", yaxis={"title": "people"}, legend={"traceorder": "normal"})
    table_frame = summary[["stage", *statuses]].reset_index(drop=True)
    if "stalled_after_days" in summary.columns:
        table_frame["stalled after"] = summary["stalled_after_days"].astype(float).to_numpy() * 86400
    table = Table(table_frame, formats={**{s: "int" for s in statuses}, "stalled after": "duration"})
    return Section(sid, title, lead, (Chart(styled(fig, height=340)), table))


def stage_flow_section(flow: pd.DataFrame | None, *, start: str = "", end: str = "") -> Section:
    """How people moved between stages from ``start`` to ``end`` (a Sankey diagram).

    ``flow`` is :func:`shopfunnel.stages.stage_flow`: a square matrix of persons, states at
    ``start`` as rows and at ``end`` as columns (``not seen``, the stages, ``lapsed``).
    """
    sid, title = "flow", "How people moved between stages"
    period = f" on {start} (left) stood on {end} (right)" if start and end else " ended up"
    lead = (f"Where the people at each stage{period}. Coloured bands are people who moved: to a "
            "later stage is progress, to lapsed is customers slipping away; grey bands stayed put.")
    if not _has(flow) or int(np.nansum(flow.to_numpy(dtype=float))) == 0:
        return unavailable(sid, title, "Not enough history to show movement between stages yet.", lead)
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
                link_colours.append(_rgba(_state_colour(cols[j]), 0.45) if moved else "rgba(154,165,177,0.25)")
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": rows + cols, "color": [_state_colour(x) for x in rows + cols], "pad": 12,
              "thickness": 14, "hovertemplate": "%{label}: %{value:,} people<extra></extra>"},
        link={"source": source, "target": target, "value": value, "color": link_colours,
              "hovertemplate": "%{source.label} → %{target.label}: %{value:,}<extra></extra>"},
    ))
    if start and end:
        for x, text, anchor in ((0, start, "left"), (1, end, "right")):
            fig.add_annotation(x=x, y=1.06, xref="paper", yref="paper", text=text, showarrow=False,
                               xanchor=anchor, font={"color": "#616e7c"})
    return Section(sid, title, lead, (Chart(styled(fig, height=420)),))


# -- retention --------------------------------------------------------------------------
def cohort_section(matrix: pd.DataFrame | None, *, period: str = "month") -> Section:
    """Cohort heatmap: of the customers whose first order fell in a period, the share who
    ordered again k periods later.

    ``matrix`` is :func:`shopfunnel.retention.cohort_matrix`: ``cohort``, ``cohort_size``,
    then one column per period offset (``"0"``, ``"1"``, …) holding the rate.
    """
    sid, title = "cohorts", "Do customers come back?"
    lead = (f"Each row is the customers whose first order fell in that {period}; each cell the share "
            f"of them who ordered again that many {period}s later. Darker is better.")
    if not _has(matrix, ["cohort"]):
        return unavailable(sid, title, "No orders yet, so no customer cohorts.", lead)
    offsets = [c for c in matrix.columns if str(c).isdigit()]
    later = [c for c in offsets if int(c) > 0]
    if not later:
        return unavailable(sid, title, f"Customers have been buying for less than one {period}: "
                           "come back when there is more history.", lead)
    z = matrix[later].to_numpy(dtype=float)
    y = [f"{c} (n={int(n):,})" if "cohort_size" in matrix.columns else str(c)
         for c, n in zip(matrix["cohort"], matrix.get("cohort_size", matrix["cohort"]), strict=True)]
    finite = z[np.isfinite(z)]
    digits = 1 if finite.size and float(finite.max()) < 0.1 else 0
    text = [[("" if np.isnan(v) else f"{v:.{digits}%}") for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"+{c}" for c in later], y=y, colorscale="Blues", zmin=0,
        zmax=max(0.05, float(np.nanmax(z)) if np.isfinite(z).any() else 0.05),
        text=text, texttemplate="%{text}", hovertemplate="%{y}, %{x}: %{z:.1%}<extra></extra>",
        colorbar={"tickformat": ".0%"},
    ))
    fig.update_layout(yaxis={"autorange": "reversed", "type": "category"},
                      xaxis={"title": f"{period}s after the first order", "type": "category"})
    return Section(sid, title, lead, (Chart(styled(fig, height=max(300, 60 + 26 * len(y)))),))


def rfm_section(groups: pd.DataFrame | None, *, currency: str = "") -> Section:
    """Customers by RFM group (recency, frequency, monetary): how many, and their revenue.

    ``groups`` is :func:`shopfunnel.rfm.rfm_group_summary` (group, customers, share,
    revenue, revenue_share, median_recency_days, mean_frequency).
    """
    sid, title = "rfm", "Customer groups (RFM)"
    lead = ("Customers grouped by how recently, how often and how much they bought. Champions and "
            "loyal customers deserve previews and referral rewards; at-risk and almost-lost ones a "
            "win-back offer.")
    if not _has(groups, ["group", "customers"]) or int(groups["customers"].sum()) == 0:
        return unavailable(sid, title, "No customers yet, so no RFM groups.", lead)
    shown = groups[groups["customers"] > 0].reset_index(drop=True)
    names = [str(g).replace("_", " ") for g in shown["group"]]
    fig = go.Figure()
    if "revenue_share" not in shown.columns or "share" not in shown.columns:
        fig.add_bar(x=names, y=shown["customers"], name="customers", marker={"color": PALETTE[0]})
    else:
        fig.add_bar(x=names, y=shown["share"], name="share of customers", marker={"color": PALETTE[0]})
        fig.add_bar(x=names, y=shown["revenue_share"], name="share of revenue", marker={"color": PALETTE[2]})
        fig.update_layout(barmode="group", yaxis={"tickformat": ".0%"})
    labels = {"share": "share of customers", "revenue_share": "share of revenue",
              "median_recency_days": "median days since last order", "mean_frequency": "orders per customer"}
    table = Table(shown.assign(group=names).rename(columns=labels), formats={
        "customers": "int", "share of customers": "pct", "revenue": "money", "share of revenue": "pct",
        "median days since last order": "int", "orders per customer": "number"})
    return Section(sid, title, lead, (Chart(styled(fig, height=340)), table))


# -- funnel breakdown, trend, time to convert ---------------------------------------------
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
    lead = (f"First step to purchase, for each {by}. Compare like with like: a {by} with few "
            "people can swing a lot by chance.")
    if not _has(breakdown, [by, "step", "persons"]):
        return unavailable(sid, title, f"No {by} recorded on the funnel's events.", lead)
    per = _first_last(breakdown.assign(**{by: breakdown[by].fillna("(none)").astype(str)}), [by])
    per = per[per["entered"] > 0].sort_values("entered", ascending=False)
    if per.empty:
        return unavailable(sid, title, f"Nobody entered the funnel in any {by}.", lead)
    shown = per.head(top).sort_values("rate")
    overall = per["converted"].sum() / per["entered"].sum()
    fig = go.Figure(go.Bar(
        y=shown[by], x=shown["rate"], orientation="h",
        marker={"color": PALETTE[0]},
        text=[f"{fmt.pct(r)}  (n={int(n):,})" for r, n in zip(shown["rate"], shown["entered"], strict=True)],
        textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    fig.add_vline(x=overall, line_dash="dot", line_color="#616e7c",
                  annotation_text=f"all: {fmt.pct(overall)}", annotation_position="top")
    fig.update_layout(xaxis={"tickformat": ".1%", "rangemode": "tozero",
                             "range": [0, float(shown["rate"].max()) * 1.35 + 1e-9]},
                      yaxis={"type": "category"}, margin={"l": 130})
    table = Table(per.rename(columns={"entered": "entered funnel", "converted": "reached last step",
                                      "rate": "conversion"}).reset_index(drop=True),
                  formats={"entered funnel": "int", "reached last step": "int", "conversion": "pct"},
                  caption=f"All {len(per)} values of {by}", collapsed=True)
    return Section(sid, title, lead, (Chart(styled(fig, height=90 + 38 * len(shown), legend=False)), table))


def trend_section(trend: pd.DataFrame | None, *, period: str = "week", period_col: str = "period") -> Section:
    """Conversion from the first step to the last by ``period`` of the attempt's start.

    ``trend`` is long: one row per (``period_col``, step) with ``persons``.
    """
    sid, title = "trend", "Conversion over time"
    lead = (f"Of the people who entered the funnel each {period}, the share who reached the last step "
            f"within the window. The latest {period} may still be incomplete.")
    if not _has(trend, [period_col, "step", "persons"]):
        return unavailable(sid, title, "No funnel trend to show yet.", lead)
    per = _first_last(trend, [period_col]).sort_values(period_col)
    per = per[per["entered"] > 0]
    if len(per) < 2:
        return unavailable(sid, title, f"Less than two {period}s of data: come back later for a trend.", lead)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.65, 0.35])
    fig.add_scatter(x=per[period_col], y=per["rate"], mode="lines+markers", name="conversion",
                    line={"color": PALETTE[0]}, hovertemplate="%{x}: %{y:.2%}<extra></extra>", row=1, col=1)
    fig.add_bar(x=per[period_col], y=per["entered"], name="entered the funnel", marker={"color": "#9aa5b1"},
                row=2, col=1)
    fig.update_yaxes(tickformat=".1%", rangemode="tozero", title_text="conversion", row=1, col=1)
    fig.update_yaxes(title_text="people", rangemode="tozero", row=2, col=1)
    return Section(sid, title, lead, (Chart(styled(fig, height=380)),))


DURATION_TICKS = [1, 10, 60, 300, 900, 3600, 3 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400]


def time_to_convert_section(steps: pd.DataFrame | None, distribution: pd.DataFrame | None = None) -> Section:
    """How long people take between steps: the median and the 90th percentile per step, and,
    when given, the distribution of time from the first to the last step.

    ``steps`` is ``funnel(...).steps``; ``distribution`` is ``funnel(...).time_to_convert()``
    (a histogram: ``bin`` label and ``persons`` per bin, bins in time order).
    """
    sid, title = "time", "Time to convert"
    lead = ("How long people take from one step to the next: half take less than the median, one "
            "in ten take longer than the 90th percentile. A long wait before buying hints at doubts "
            "(price, shipping, trust) worth answering on the page.")
    needed = ["name", "median_seconds_from_previous", "p90_seconds_from_previous"]
    if not _has(steps, needed) or len(steps) < 2:
        return unavailable(sid, title, "No conversions yet, so no times between steps.", lead)
    rest = steps.iloc[1:]
    names = [str(n) for n in steps["name"]]
    labels = [f"{a} → {b}" for a, b in zip(names[:-1], names[1:], strict=True)]
    median = rest["median_seconds_from_previous"].astype(float).to_numpy()
    p90 = rest["p90_seconds_from_previous"].astype(float).to_numpy()
    if np.isnan(median).all():
        return unavailable(sid, title, "No conversions yet, so no times between steps.", lead)
    fig = go.Figure()
    fig.add_bar(x=labels, y=median, name="median", marker={"color": PALETTE[0]},
                text=[fmt.duration(v) for v in median], textposition="outside",
                hovertemplate="%{x}<br>median %{text}<extra></extra>")
    fig.add_bar(x=labels, y=p90, name="90% within", marker={"color": "#9aa5b1"},
                text=[fmt.duration(v) for v in p90], textposition="outside",
                hovertemplate="%{x}<br>90% within %{text}<extra></extra>")
    ticks = [t for t in DURATION_TICKS if t <= max(np.nanmax(p90), np.nanmax(median)) * 3]
    fig.update_layout(barmode="group", yaxis={"title": "time (log scale)", "type": "log", "tickvals": ticks,
                                              "ticktext": [fmt.duration(t) for t in ticks]})
    blocks: list[Any] = [Chart(styled(fig, height=340))]
    if _has(distribution, ["bin", "persons"]):
        counts = distribution["persons"].astype(float).to_numpy()
        if counts.sum() > 0:
            nonzero = np.flatnonzero(counts)
            shown = distribution.iloc[nonzero[0]: nonzero[-1] + 1]
            hist = go.Figure(go.Bar(x=[str(b) for b in shown["bin"]], y=shown["persons"],
                                    marker={"color": PALETTE[2]},
                                    hovertemplate="%{x}: %{y:,} people<extra></extra>"))
            hist.update_layout(xaxis={"title": "time from the first step to the last", "type": "category"},
                               yaxis={"title": "people"})
            blocks.append(Chart(styled(hist, height=300, legend=False),
                                caption="How long the people who converted took, end to end."))
    return Section(sid, title, lead, tuple(blocks))


# -- what-if ------------------------------------------------------------------------------
def whatif_section(policies: Sequence[Any], *, currency: str = "") -> Section:
    """Offers replayed on past orders: who would have got them, what they would have cost, and
    how much more the store must sell to pay for them.

    ``policies`` are :class:`shopfunnel.whatif.WhatIf` results (``policy``, ``summary``
    dict, ``tiers`` DataFrame, ``notes``).
    """
    sid, title = "whatif", "What would an offer cost?"
    lead = ("Offers replayed on your past orders, as if nobody had changed what they bought: the share "
            "of orders that would have qualified, the cost, and how many more orders it takes to pay "
            "for it (revenue view: before the cost of goods). Orders just below a threshold are the "
            "ones an offer can nudge up.")
    usable = [p for p in policies if getattr(p, "summary", None) and p.summary.get("orders")]
    if not usable:
        return unavailable(sid, title, "No orders yet, so no offer to replay.", lead)
    blocks: list[Any] = []
    for p in usable:
        s = p.summary
        blocks.append(Text(str(p.policy)[:1].upper() + str(p.policy)[1:]))
        within = int(p.tiers["orders_within_reach"].sum()) if "orders_within_reach" in p.tiers.columns else None
        blocks.append(KeyFigures((
            Figure("Orders that qualify", fmt.pct(s.get("share_affected")),
                   f"{fmt.integer(s.get('orders_affected'))} of {fmt.integer(s.get('orders'))}"),
            Figure("Cost on past orders", fmt.money(s.get("cost"), currency),
                   f"{fmt.pct(s.get('cost_share_of_revenue'))} of revenue"),
            Figure("To break even", f"+{fmt.pct(s.get('breakeven_uplift'))} orders",
                   f"about {fmt.integer(s.get('breakeven_extra_orders'))} more orders"),
            *((Figure("Just below a threshold", fmt.integer(within), "orders within 20% of it"),)
              if within is not None else ()),
        )))
    return Section(sid, title, lead, tuple(blocks))
