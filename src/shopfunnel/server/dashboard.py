"""The dashboard: server-rendered pages (Jinja2 + Plotly), for the admin only.

Every page is rendered on the server from the same read functions as the JSON API
(:mod:`shopfunnel.server.queries`). Event data reaches the page only through Jinja's
autoescaping (tables) or ``tojson`` inside a ``<script type="application/json">``
(charts), and the Content-Security-Policy allows scripts from the server itself only,
so a ``<script>`` inside an event property is shown as text. plotly.js is served from
the installed ``plotly`` package (no CDN).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
from importlib.resources import files
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from shopfunnel import format as fmt
from shopfunnel.errors import ShopfunnelError
from shopfunnel.format import csv_text
from shopfunnel.server import auth, queries
from shopfunnel.server.admin import (
    COOKIE,
    DEVICE_COOKIE,
    check_password,
    cookie_secure,
    is_admin,
    retry_after,
    state_of,
    trusted_device,
)

DEVICE_COOKIE_SECONDS = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days

router = APIRouter(include_in_schema=False)

NAV: list[tuple[str, str]] = [
    ("/", "Overview"),
    ("/funnel", "Funnel"),
    ("/stages", "Stages"),
    ("/retention", "Retention & RFM"),
    ("/diagnosis", "Diagnosis"),
    ("/experiments", "Experiments"),
    ("/audiences", "Audiences"),
    ("/programs", "Programs"),
    ("/persons", "Persons"),
    ("/journey", "Person"),
    ("/events", "Events"),
    ("/keys", "Keys"),
]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_FILES = {"dashboard.css": "text/css", "dashboard.js": "application/javascript"}


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value is pd.NaT:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


env = Environment(
    loader=PackageLoader("shopfunnel.server", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
env.filters["cell"] = _cell


def figure(fig: go.Figure) -> dict[str, Any]:
    """A Plotly figure as plain JSON data (drawn by dashboard.js)."""
    return json.loads(fig.to_json())


def csrf_token(request: Request) -> str:
    session = request.cookies.get(COOKIE, "")
    return hmac.new(b"shopfunnel-csrf", session.encode(), hashlib.sha256).hexdigest()[:32]


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = env.get_template(template).render(
        nav=NAV if is_admin(request) else None,
        active=request.url.path,
        csrf=csrf_token(request),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def read(request: Request, fn: Any, *args: Any, **kwargs: Any) -> Any:
    state = state_of(request)
    assert state.reader is not None
    with state.read_lock:
        return fn(state.reader, *args, **kwargs)


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html", title="Log in")


@router.post("/login")
def login(request: Request, password: str = Form("")) -> Response:
    state = state_of(request)
    check = check_password(request, password)
    if check.retry_after > 0:
        wait = retry_after(check.retry_after)
        refused = render(
            request,
            "login.html",
            status=429,
            title="Log in",
            error=f"Too many failed attempts: try again in {wait} s.",
        )
        refused.headers["Retry-After"] = wait
        return refused
    if not check.ok:
        return render(request, "login.html", status=401, title="Log in", error="Wrong password.")
    response: Response = RedirectResponse("/", status_code=303)
    secure = cookie_secure(request)
    response.set_cookie(
        COOKIE,
        state.sessions.new(),
        httponly=True,
        samesite="strict",
        secure=secure,
        max_age=int(state.sessions.ttl_seconds),
        path="/",
    )
    if trusted_device(request) is None:
        response.set_cookie(
            DEVICE_COOKIE,
            auth.new_device_cookie(state.device_secret),
            httponly=True,
            samesite="strict",
            secure=secure,
            max_age=DEVICE_COOKIE_SECONDS,
            path="/login",
        )
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    if hmac.compare_digest(csrf, csrf_token(request)):
        state_of(request).sessions.end(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
def overview(request: Request) -> Response:
    if not is_admin(request):
        return to_login()
    info = read(request, queries.info)
    by_name = pd.DataFrame(list(info["events_by_name"].items()), columns=["event", "events"])
    by_channel = pd.DataFrame(
        list(info["sessions_by_channel"].items()), columns=["channel", "sessions"]
    )
    chart = figure(
        go.Figure(
            go.Bar(x=by_name["event"].tolist(), y=by_name["events"].tolist()),
            layout={"margin": {"t": 20}},
        )
    )
    writer = state_of(request).writer
    return render(
        request,
        "overview.html",
        title="Overview",
        info=info,
        by_channel=by_channel,
        by_name_chart=chart,
        charts=True,
        pending=writer.pending if writer else 0,
    )


@router.get("/events")
def events(request: Request, limit: int = 200) -> Response:
    if not is_admin(request):
        return to_login()
    try:
        df = read(request, queries.recent_events, limit)
    except ShopfunnelError as exc:
        return render(
            request,
            "events.html",
            status=422,
            title="Latest events",
            error=str(exc),
            events=pd.DataFrame(),
            limit=200,
        )
    return render(request, "events.html", title="Latest events", events=df, limit=limit)


@router.get("/persons")
def persons(request: Request) -> Response:
    if not is_admin(request):
        return to_login()
    return render(
        request, "persons.html", title="Persons", persons=read(request, queries.persons, 500)
    )


@router.get("/persons.csv")
def persons_csv(request: Request) -> Response:
    if not is_admin(request):
        return to_login()
    df = read(request, queries.persons, queries.MAX_LIMIT)
    return Response(
        csv_text(df),
        media_type="text/csv",
        headers={
            "Content-Disposition": 'attachment; filename="persons.csv"',
            "Cache-Control": "no-store",
        },
    )


@functools.cache
def _plotly_js() -> bytes:
    return (files("plotly") / "package_data" / "plotly.min.js").read_bytes()


@router.get("/static/plotly.min.js")
def plotly_js() -> Response:
    data = _plotly_js()
    return Response(
        data,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response("not found", status_code=404)
    data = (files("shopfunnel.server") / "static" / name).read_bytes()
    return Response(
        data, media_type=STATIC_FILES[name], headers={"Cache-Control": "public, max-age=300"}
    )


def _bar(x: list[Any], y: list[Any], **layout: Any) -> dict[str, Any]:
    return figure(
        go.Figure(
            go.Bar(x=[str(v) for v in x], y=y, text=y, textposition="auto"),
            layout={"margin": {"t": 30}, **layout},
        )
    )


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
    if not is_admin(request):
        return to_login()
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
    context: dict[str, Any] = {
        "title": "Funnel",
        "form": form,
        "breakdowns": queries.BREAKDOWNS,
        "steps": None,
        "charts": True,
    }
    try:
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
    except ShopfunnelError as exc:
        return render(request, "funnel.html", status=422, error=str(exc), **context)
    table = result.steps
    chart = _bar(
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
def stages_page(
    request: Request, stage: str = "", status: str = "", start: str = "", end: str = ""
) -> Response:
    if not is_admin(request):
        return to_login()
    from urllib.parse import urlencode

    from shopfunnel.model import load_model

    form = {"stage": stage, "status": status, "start": start, "end": end}
    context: dict[str, Any] = {
        "title": "Stages",
        "form": form,
        "stage_names": [s.name for s in load_model().stages],
        "statuses": list(STATUS_COLOURS),
        "status_notes": [],
        "summary": None,
        "flow": None,
        "persons": None,
        "charts": True,
        "csv_url": "/v1/stages/persons?"
        + urlencode(
            {k: v for k, v in {"stage": stage, "status": status, "format": "csv"}.items() if v}
        ),
    }
    try:
        overview = read(request, queries.stage_overview)
        summary = overview["summary"]
        context["summary"] = _stage_table(summary)
        context["status_notes"] = overview["notes"]
        context["stages_chart"] = _status_chart(summary)
        context["persons"] = read(request, queries.stage_persons, stage or None, status or None)
        if start and end:
            context["flow"] = flow = read(request, queries.stage_flow, start, end)
            context["flow_chart"] = _sankey(flow, start, end)
    except ShopfunnelError as exc:
        return render(request, "stages.html", status=422, error=str(exc), **context)
    return render(request, "stages.html", **context)


@router.get("/retention")
def retention_page(request: Request, period: str = "") -> Response:
    if not is_admin(request):
        return to_login()
    context: dict[str, Any] = {
        "title": "Retention & RFM",
        "period": period,
        "summary": None,
        "cohorts": pd.DataFrame(),
        "rfm_groups": pd.DataFrame(),
        "charts": True,
    }
    try:
        data = read(request, queries.retention, period or None)
        groups = read(request, queries.rfm_groups)
        context["period"] = data["period"]
    except ShopfunnelError as exc:
        return render(request, "retention.html", status=422, error=str(exc), **context)
    context.update(summary=data["summary"], cohorts=data["cohorts"], rfm_groups=groups)
    if len(groups):
        context["rfm_chart"] = _bar(
            groups["group"].tolist(),
            [int(v) for v in groups["customers"]],
            yaxis={"title": "customers"},
        )
    return render(request, "retention.html", **context)


def _keys_page(
    request: Request,
    new_key: str | None = None,
    status: int = 200,
    error: str | None = None,
    message: str | None = None,
) -> Response:
    state = state_of(request)
    assert state.store is not None
    with state.write_lock:
        keys = auth.list_write_keys(state.store.db)
    revocable = keys.loc[~keys["revoked"], "prefix"].drop_duplicates().tolist()
    return render(
        request,
        "keys.html",
        status=status,
        title="Write keys",
        keys=keys,
        new_key=new_key,
        base_url=str(request.base_url),
        error=error,
        revocable=revocable,
        message=message,
    )


@router.get("/keys")
def keys_page(request: Request) -> Response:
    if not is_admin(request):
        return to_login()
    return _keys_page(request)


@router.post("/keys")
def create_key(request: Request, name: str = Form("web"), csrf: str = Form("")) -> Response:
    if not is_admin(request):
        return to_login()
    if not hmac.compare_digest(csrf, csrf_token(request)):
        return _keys_page(
            request, status=403, error="The form expired: reload the page and try again."
        )
    name = name.strip()[:100] or "web"
    state = state_of(request)
    assert state.store is not None
    with state.write_lock:
        key = auth.create_write_key(state.store.db, name)
    state.refresh_keys()
    return _keys_page(request, new_key=key)


@router.post("/keys/revoke")
def revoke_key(request: Request, prefix: str = Form(""), csrf: str = Form("")) -> Response:
    if not is_admin(request):
        return to_login()
    if not hmac.compare_digest(csrf, csrf_token(request)):
        return _keys_page(
            request, status=403, error="The form expired: reload the page and try again."
        )
    try:
        revoked = state_of(request).revoke_key(prefix[:100])
    except ShopfunnelError as exc:
        return _keys_page(request, status=404, error=str(exc))
    return _keys_page(
        request,
        message=f"Revoked {revoked} key(s) starting with {prefix}: they are refused from now on.",
    )


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
def diagnosis_page(request: Request) -> Response:
    if not is_admin(request):
        return to_login()
    try:
        result = read(request, queries.diagnosis)
    except ShopfunnelError as exc:
        return render(
            request,
            "diagnosis.html",
            status=422,
            title="Diagnosis",
            error=str(exc),
            findings=pd.DataFrame(),
            incidents=pd.DataFrame(),
            recommendations=pd.DataFrame(),
            notes=[],
            result=None,
        )
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
def experiments_page(request: Request, name: str = "", engine: str = "frequentist") -> Response:
    if not is_admin(request):
        return to_login()
    from shopfunnel.experiments import analyze_experiment, list_experiments

    context: dict[str, Any] = {
        "title": "Experiments",
        "report": None,
        "experiments": read(request, list_experiments),
    }
    if name:
        try:
            if engine not in EXPERIMENT_SHOWN:
                raise ShopfunnelError(f"engine={engine!r}: use frequentist or bayesian")
            report = read(request, analyze_experiment, name, engine=engine)
        except ShopfunnelError as exc:
            return render(request, "experiments.html", status=422, error=str(exc), **context)
        context.update(report=report, results=report.results[EXPERIMENT_SHOWN[engine]])
    return render(request, "experiments.html", **context)


def _days(days: float) -> str:
    """A duration given in days, as people read it (``9d 14h``, ``3h 20m``)."""
    return fmt.duration(days * 86_400)


@router.get("/audiences")
def audiences_page(request: Request) -> Response:
    """Saved audiences and flows (what the schedule follows and runs), the latest entries and
    exits, and the webhook deliveries (docs/audiences.md)."""
    if not is_admin(request):
        return to_login()
    from shopfunnel.audiences.saved import store_model
    from shopfunnel.audiences.schedule import audiences_overview
    from shopfunnel.webhooks import delivery_status

    state = state_of(request)
    context: dict[str, Any] = {
        "title": "Audiences",
        "overview": None,
        "schedule_seconds": state.settings.schedule_interval_seconds,
    }
    try:
        overview = read(request, audiences_overview, store_model(state.store_path))
        context.update(overview=overview, deliveries=read(request, delivery_status))
    except ShopfunnelError as exc:
        return render(request, "audiences.html", status=422, error=str(exc), **context)
    return render(request, "audiences.html", **context)
