"""The diagnosis section: incidents, then findings ranked by revenue at stake."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from shopfunnel import format as fmt
from shopfunnel.report.blocks import (
    Finding,
    Findings,
    Section,
    Table,
    Tactic,
    Text,
    unavailable,
)
from shopfunnel.report.sections._common import as_text


def tactics_of(value: Any) -> tuple[Tactic, ...]:
    """A finding's tactics: playbook entries (dicts with ``name`` and ``why``), names, or a
    comma- or semicolon-separated string."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ()
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(";", ",").split(",")]
        return tuple(Tactic(p) for p in parts if p)
    if isinstance(value, Mapping):
        return (
            Tactic(
                as_text(value.get("name")) or as_text(value.get("key")), as_text(value.get("why"))
            ),
        )
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
        rest = {k: v for k, v in value.items() if k not in ("stage", "status") and as_text(v)}
        stage, status = as_text(value.get("stage")), as_text(value.get("status"))
        text = " ".join(p for p in (status, "people") if p)
        if stage:
            text += f" at the {stage} stage"
        extra = ", ".join(_audience_part(k, v) for k, v in rest.items())
        return f"{text} ({extra})" if extra else text
    return as_text(value)


def _is_rate(value: Any) -> bool:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return 0.0 <= v <= 1.0


def finding_period(row: Mapping[str, Any]) -> str:
    """``2024-02-03 to 2024-02-06`` (or one day) when the finding has ``start``/``end`` dates."""
    start, end = as_text(row.get("start"))[:10], as_text(row.get("end"))[:10]
    if not start:
        return ""
    return start if not end or end == start else f"{start} to {end}"


def _title_with_period(row: Mapping[str, Any]) -> str:
    period = finding_period(row)
    title = as_text(row.get("title"))
    return f"{title} ({period})" if period and period not in title else title


def finding_headline(row: Mapping[str, Any]) -> str:
    """One sentence for a finding: what, where, how far from the reference, and when."""
    metric = as_text(row.get("metric")) or as_text(row.get("kind")) or "finding"
    where = as_text(row.get("step")) or as_text(row.get("stage"))
    segment = as_text(row.get("segment"))
    value, reference = row.get("value"), row.get("reference")
    show = fmt.pct if _is_rate(value) and _is_rate(reference) else fmt.number
    text = metric.replace("_", " ")
    text = text[:1].upper() + text[1:]
    if where:
        text += f" at {where}"
    if segment:
        text += f" for {segment}"
    if as_text(value):
        text += f": {show(value)}"
        if as_text(reference):
            text += f" against {show(reference)}"
    period = finding_period(row)
    if period:
        text += f" ({period})"
    return text


INCIDENT_KINDS = ("incident", "traffic_spike")


def at_stake(row: Mapping[str, Any], currency: str) -> str:
    """What a finding is worth, as the card shows it: revenue at stake when the store has a
    price, else the orders at stake (``≈ 12 orders``); empty when neither is known."""
    if as_text(row.get("revenue_at_stake")):
        return fmt.money(row.get("revenue_at_stake"), currency)
    if as_text(row.get("orders_at_stake")):
        n = float(row["orders_at_stake"])
        return f"≈ {n:,.1f} orders" if n < 10 else f"≈ {n:,.0f} orders"
    return ""


def _card(row: Mapping[str, Any], currency: str) -> Finding:
    p = row.get("p_value")
    return Finding(
        rank=int(row["rank"]),
        headline=_title_with_period(row) if as_text(row.get("title")) else finding_headline(row),
        stage=as_text(row.get("stage")),
        revenue_at_stake=at_stake(row, currency),
        evidence=as_text(row.get("evidence")),
        tactics=tactics_of(row.get("tactics")),
        audience=audience_of(row.get("audience")),
        significance=fmt.p_value(p) if as_text(p) else "",
    )


def diagnosis_section(
    findings: pd.DataFrame | None,
    *,
    top: int = 5,
    currency: str = "",
    period: str = "",
    notes: Sequence[str] = (),
    priced: bool = True,
    pricing: str = "",
    incidents: pd.DataFrame | None = None,
) -> Section:
    """The diagnosis, most valuable fix first: the ``top`` findings as cards, all in a table.

    ``findings`` has the columns of :func:`shopfunnel.diagnosis.diagnose.diagnose`'s ``.findings``
    (rank, kind, stage, step, segment, metric, value, reference, gap, p_value,
    revenue_at_stake, evidence, tactics, audience, and optionally title, start, end);
    missing columns read as blank. ``period`` says which dates were diagnosed; ``notes``
    say what could not be measured, and are listed under the findings. ``incidents``
    (:meth:`Diagnosis.incident_table`) are listed in a table of their own: when, where,
    the rate before and during, and what they cost. ``priced=False``
    means the orders carry no value and no estimate was given: findings are ranked by
    orders at stake, and ``pricing`` (:meth:`OrderValue.note`) says why and what to do.
    """
    sid, title = "diagnosis", "What to fix first"
    incident_table = incidents
    lead = (
        "Where the funnel loses the most money, and what to try. Findings are ranked by revenue "
        "at stake: people lost at the step × how often they would have gone on to buy × the "
        "average order value."
    )
    if not priced:
        lead = (
            "Where the funnel loses the most orders, and what to try. Findings are ranked by orders "
            "at stake: people lost at the step × how often they would have gone on to buy. Revenue "
            "at stake is missing because the store's orders carry no value: write the report with "
            "--aov (the average order value) to put a price on each finding."
        )
    if period:
        lead = f"{lead} Diagnosed period: {period}."
    if findings is None:
        return unavailable(sid, title, "The diagnosis is not available for this store.", lead)
    tail: list[Any] = []
    if pricing and not priced:
        tail.append(Text(pricing[:1].upper() + pricing[1:] + "."))
    if notes:
        tail.append(
            Table(
                pd.DataFrame({"not measured": [str(n) for n in notes]}),
                caption=f"What could not be measured ({len(notes)})",
                collapsed=True,
            )
        )
    if len(findings) == 0:
        return Section(
            sid,
            title,
            lead,
            (
                Text(
                    "No significant weak spot found: every stage converts at or above its benchmark and "
                    "its own past, and no segment lags significantly behind the rest."
                ),
                *tail,
            ),
        )
    frame = findings.sort_values("rank") if "rank" in findings.columns else findings
    records = frame.to_dict("records")
    for i, row in enumerate(records, start=1):
        row.setdefault("rank", i)
    incidents = [r for r in records if as_text(r.get("kind")) in INCIDENT_KINDS]
    blocks: list[Any] = []
    if incidents:
        blocks.append(
            Findings(
                tuple(_card(r, currency) for r in incidents),
                heading="Something broke for a while: check these dates first",
                tone="incident",
            )
        )
    top_cards = tuple(_card(r, currency) for r in records[:top])
    blocks.append(
        Findings(top_cards, heading="Biggest gaps, most valuable first" if incidents else "")
    )
    columns: tuple[str, ...]
    if "title" in frame.columns and frame["title"].notna().any():
        columns = (
            "rank",
            "kind",
            "stage",
            "title",
            "p_value",
            "orders_at_stake",
            "revenue_at_stake",
        )
    else:
        columns = (
            "rank",
            "kind",
            "stage",
            "step",
            "segment",
            "metric",
            "value",
            "reference",
            "gap",
            "p_value",
            "orders_at_stake",
            "revenue_at_stake",
        )
    shown = [c for c in columns if c in frame.columns]
    listing = frame[shown].reset_index(drop=True)
    if "kind" in listing.columns:
        listing["kind"] = listing["kind"].astype(str).str.replace("_", " ")
    listing = listing.rename(
        columns={
            "title": "finding",
            "p_value": "p",
            "orders_at_stake": "orders at stake",
            "revenue_at_stake": "at stake",
        }
    )
    if not priced and "at stake" in listing.columns:
        listing = listing.drop(columns="at stake")
    table = Table(
        listing,
        formats={
            "rank": "int",
            "p": "p",
            "at stake": "money",
            "value": "number",
            "reference": "number",
            "gap": "number",
            "orders at stake": "number",
        },
        caption=f"All {len(frame)} findings",
        collapsed=True,
    )
    return Section(
        sid, title, lead, (*blocks, *incident_blocks(incident_table, priced), table, *tail)
    )


def incident_blocks(incidents: pd.DataFrame | None, priced: bool = True) -> tuple[Table, ...]:
    """The incident table (:meth:`Diagnosis.incident_table`): when and where each incident
    was, the rate before and during, persons, orders and revenue lost, and how sure; the
    revenue column is left out when the orders carry no value."""
    if incidents is None or len(incidents) == 0:
        return ()
    frame = incidents.rename(
        columns={
            "rate_before": "usual rate",
            "rate_during": "rate during",
            "persons_lost": "persons lost",
            "orders_lost": "orders lost",
            "revenue_lost": "revenue lost",
            "p_adjusted": "p (corrected)",
        }
    )
    if not priced or frame["revenue lost"].isna().all():
        frame = frame.drop(columns="revenue lost")
    return (
        Table(
            frame.reset_index(drop=True),
            caption=f"Incidents ({len(frame)}): start, end or ongoing, and what they cost",
            formats={
                "usual rate": "pct",
                "rate during": "pct",
                "persons lost": "number",
                "orders lost": "number",
                "revenue lost": "money",
                "p (corrected)": "p",
            },
        ),
    )
