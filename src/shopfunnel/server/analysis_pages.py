"""The dashboard's pages on customers and what to do: retention and RFM, the diagnosis, the
experiments and the audiences (with their flows and webhook deliveries)."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shopfunnel.errors import ShopfunnelError
from shopfunnel.server import queries
from shopfunnel.server.admin import state_of
from shopfunnel.server.pages import admin_page, bar_chart, page_context, read, render

router = APIRouter(include_in_schema=False)


@router.get("/retention")
@admin_page("retention.html")
def retention_page(request: Request, period: str = "") -> Response:
    context = page_context(
        request,
        title="Retention & RFM",
        period=period,
        summary=None,
        cohorts=pd.DataFrame(),
        rfm_groups=pd.DataFrame(),
        charts=True,
    )
    data = read(request, queries.retention, period or None)
    groups = read(request, queries.rfm_groups)
    context["period"] = data["period"]
    context.update(summary=data["summary"], cohorts=data["cohorts"], rfm_groups=groups)
    if len(groups):
        context["rfm_chart"] = bar_chart(
            groups["group"].tolist(),
            [int(v) for v in groups["customers"]],
            yaxis={"title": "customers"},
        )
    return render(request, "retention.html", **context)


FINDING_SHOWN = [
    "rank",
    "title",
    "stage",
    "metric",
    "value",
    "reference",
    "revenue_at_stake",
    "evidence",
]


@router.get("/diagnosis")
@admin_page("diagnosis.html")
def diagnosis_page(request: Request) -> Response:
    page_context(
        request,
        title="Diagnosis",
        findings=pd.DataFrame(),
        incidents=pd.DataFrame(),
        recommendations=pd.DataFrame(),
        notes=[],
        result=None,
    )
    result = read(request, queries.diagnosis)
    findings = result.findings[[c for c in FINDING_SHOWN if c in result.findings.columns]]
    return render(
        request,
        "diagnosis.html",
        title="Diagnosis",
        result=result,
        findings=findings,
        incidents=_incident_rows(result.incident_table()),
        recommendations=result.recommendations(),
        notes=result.notes,
    )


def _incident_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The incident table with its rates, counts, money and p-values as people read them."""
    from shopfunnel import format as fmt

    out = table.copy()
    for col, f in (
        ("rate_before", fmt.pct),
        ("rate_during", fmt.pct),
        ("persons_lost", fmt.number),
        ("orders_lost", fmt.number),
        ("revenue_lost", fmt.money),
        ("p_adjusted", fmt.p_value),
        ("start", fmt.timestamp),
        ("end", fmt.timestamp),
    ):
        out[col] = [f(v) for v in out[col]]
    return out.rename(columns=lambda c: c.replace("_", " "))


EXPERIMENT_SHOWN = {
    "frequentist": [
        "metric",
        "variant",
        "n_control",
        "n_variant",
        "control_mean",
        "variant_mean",
        "expected",
        "ci_lower",
        "ci_upper",
        "p_value",
        "error",
    ],
    "bayesian": [
        "metric",
        "variant",
        "n_control",
        "n_variant",
        "control_mean",
        "variant_mean",
        "expected",
        "ci_lower",
        "ci_upper",
        "chance_to_win",
        "risk_control",
        "risk_treatment",
        "error",
    ],
}


@router.get("/experiments")
@admin_page("experiments.html")
def experiments_page(request: Request, name: str = "", engine: str = "frequentist") -> Response:
    from shopfunnel.experiments import analyze_experiment, list_experiments

    context = page_context(request, title="Experiments", report=None)
    context["experiments"] = read(request, list_experiments)
    if name:
        if engine not in EXPERIMENT_SHOWN:
            raise ShopfunnelError(f"engine={engine!r}: use frequentist or bayesian")
        report = read(request, analyze_experiment, name, engine=engine)
        context.update(report=report, results=report.results[EXPERIMENT_SHOWN[engine]])
    return render(request, "experiments.html", **context)


@router.get("/audiences")
@admin_page("audiences.html")
def audiences_page(request: Request) -> Response:
    """Saved audiences and flows (what the schedule follows and runs), the latest entries and
    exits, and the webhook deliveries (docs/audiences.md)."""
    from shopfunnel.audiences.saved import store_model
    from shopfunnel.audiences.schedule import audiences_overview
    from shopfunnel.webhooks import delivery_status

    state = state_of(request)
    context = page_context(
        request,
        title="Audiences",
        overview=None,
        schedule_seconds=state.settings.schedule_interval_seconds,
    )
    overview = read(request, audiences_overview, store_model(state.store_path))
    context.update(overview=overview, deliveries=read(request, delivery_status))
    return render(request, "audiences.html", **context)
