"""Incidents as findings: what each incident cost, when it happened in words, and the
finding the diagnosis ranks (docs/diagnosis.md, "What an incident cost")."""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd

from shopfunnel.diagnosis.findings import downstream_rate, finding, pct
from shopfunnel.diagnosis.session_levels import SessionLevels


def with_losses(
    incidents: pd.DataFrame, levels: SessionLevels, totals: pd.DataFrame, aov: float
) -> pd.DataFrame:
    """The incident table with what each incident cost (docs/diagnosis.md, "What an incident
    cost"): ``persons_lost`` (conversions lost × distinct persons per session among the
    sessions that entered the step in the incident's segment and time), ``orders_lost``
    (conversions lost × the store's orders per session that reached the step; for a
    traffic spike, its missing purchases) and ``revenue_lost`` (orders lost × the average
    order value; NaN when the orders carry no value and none was given). Negative for a
    rise."""
    out = incidents.copy()
    for col in ("persons_lost", "orders_lost", "revenue_lost"):
        out[col] = pd.Series(dtype=float)
    if out.empty:
        return out
    names = levels.step_names
    K = len(levels.steps)
    persons, orders = [], []
    for r in out.to_dict("records"):
        lost = float(r["lost"]) if r["lost"] == r["lost"] else 0.0
        if r["kind"] == "traffic_spike":
            persons.append(lost * _ratio(levels, r, 0))
            orders.append(lost)
            continue
        k = names.index(r["step"])
        downstream = downstream_rate(totals, k, K)
        persons.append(lost * _ratio(levels, r, k - 1))
        orders.append(lost * downstream)
    out["persons_lost"] = persons
    out["orders_lost"] = orders
    out["revenue_lost"] = out["orders_lost"] * aov
    return out


def _ratio(levels: SessionLevels, r: dict, level: int) -> float:
    """Persons per session among the incident's sessions that reached ``level`` (1 when
    the window holds none: it lies outside the diagnosed period)."""
    seg = {
        k: r.get(k)
        for k in levels.segment_columns
        if isinstance(r.get(k), str) and r.get(k) != "other"
    }
    ratio = levels.persons_per_session(r["start_time"], r["end_time"], level, **seg)  # type: ignore[arg-type]
    return 1.0 if math.isnan(ratio) else ratio


def when_text(r) -> str:
    """An incident's dates as the findings say them: days, hours when it was placed to the
    hour, or "since … (ongoing)"."""
    start_time, end_time = pd.Timestamp(r.start_time), pd.Timestamp(r.end_time)
    if bool(getattr(r, "ongoing", False)) and r.grain == "days":
        if start_time.hour:
            return f"since {start_time:%Y-%m-%d %H:00} UTC (ongoing)"
        return f"since {r.start:%Y-%m-%d} (ongoing)"
    if r.grain == "hour" or (r.grain == "days" and (start_time.hour or end_time.hour)):
        same_day = start_time.date() == (end_time - timedelta(seconds=1)).date()
        if same_day:
            return f"{start_time:%Y-%m-%d %H:%M}–{end_time:%H:%M} UTC"
        return f"{start_time:%Y-%m-%d %H:%M} to {end_time:%Y-%m-%d %H:%M} UTC"
    return f"{r.start:%Y-%m-%d}" + ("" if r.end == r.start else f" to {r.end:%Y-%m-%d}")


def incident_findings(
    incidents: pd.DataFrame, levels: SessionLevels, totals: pd.DataFrame
) -> list[dict]:
    out = []
    K = len(levels.steps)
    names = levels.step_names
    for r in incidents.itertuples(index=False):
        if r.kind == "conversion_rise":
            continue
        when = when_text(r)
        where = "" if r.segment == "all traffic" else f" on {r.segment}"
        seg = {
            k: v
            for k, v in (
                ("device", r.device),
                ("channel", r.channel),
                ("campaign", r.campaign),
                ("country", getattr(r, "country", None)),
            )
            if isinstance(v, str)
        }
        if r.kind == "traffic_spike":
            extra = r.sessions - r.expected_sessions
            out.append(
                finding(
                    kind="traffic_spike",
                    stage="awareness",
                    step="visit",
                    segment=r.segment,
                    metric="sessions",
                    value=r.sessions,
                    reference=r.expected_sessions,
                    gap=extra,
                    p_value=r.p_adjusted,
                    units_lost=max(r.lost, 0.0),
                    downstream_rate=1.0,
                    entering=r.sessions,
                    start=r.start,
                    end=r.end,
                    title=f"Traffic spike that did not convert{where}, {when}",
                    evidence=(
                        f"{int(r.sessions):,} sessions{where} {when} against {r.expected_sessions:,.0f} usual for those weekdays; "
                        f"the {extra:,.0f} extra sessions bought at {pct(r.extra_conversion_rate, 2)} against the usual "
                        f"{pct(r.baseline_conversion_rate, 2)} (z = {r.z:.1f})."
                    ),
                    audience={"stage": "awareness", **seg, "between": [str(r.start), str(r.end)]},
                )
            )
            continue
        k = names.index(r.step)
        step = levels.steps[k - 1]
        downstream = downstream_rate(totals, k, K)
        out.append(
            finding(
                kind="incident",
                stage=step.stage,
                step=step.name,
                segment=r.segment,
                metric=f"{names[k - 1]} → {names[k]}",
                value=r.rate,
                reference=r.baseline_rate,
                gap=r.rate - r.baseline_rate,
                p_value=r.p_adjusted,
                units_lost=max(r.lost, 0.0),
                downstream_rate=downstream,
                entering=r.entering,
                start=r.start,
                end=r.end,
                title=f"{names[k - 1].capitalize()} → {names[k]} {'fell' if r.grain == 'days' else 'collapsed'}{where}, {when}",
                evidence=(
                    f"{int(r.observed):,} of {int(r.entering):,} sessions{where} went from {names[k - 1]} to {names[k]} {when} "
                    f"({pct(r.rate)}), against {r.expected:,.0f} expected from the same segment's "
                    + ("usual level " if r.grain == "days" else "surrounding weeks ")
                    + f"({pct(r.baseline_rate)}); z = {r.z:.1f}, "
                    + (
                        "found by segmenting the whole series (a lasting change)."
                        if r.grain == "days"
                        else f"found on the {r.grain} scan."
                    )
                ),
                audience={
                    "stage": step.audience_stage,
                    **seg,
                    "between": [str(r.start), str(r.end)],
                },
            )
        )
    return out
