"""The dashboard's front door and the admin's own pages: login and logout, the overview
of the store, the latest events, the persons (and their CSV), write keys, and the static
files (plotly.js from the installed ``plotly`` package: no CDN). The analyses' pages are
in :mod:`shopfunnel.server.funnel_pages` and :mod:`shopfunnel.server.analysis_pages`; what
every page shares in :mod:`shopfunnel.server.pages`.
"""

from __future__ import annotations

import functools
import hmac
from importlib.resources import files

import pandas as pd
import plotly.graph_objects as go
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from shopfunnel.errors import ShopfunnelError
from shopfunnel.format import csv_text
from shopfunnel.server import auth, queries
from shopfunnel.server.admin import (
    COOKIE,
    DEVICE_COOKIE,
    check_password,
    cookie_secure,
    retry_after,
    state_of,
    trusted_device,
)
from shopfunnel.server.pages import (
    admin_page,
    csrf_token,
    figure,
    page_context,
    read,
    render,
)

DEVICE_COOKIE_SECONDS = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days
STATIC_FILES = {"dashboard.css": "text/css", "dashboard.js": "application/javascript"}

router = APIRouter(include_in_schema=False)


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
@admin_page()
def overview(request: Request) -> Response:
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
@admin_page("events.html")
def events(request: Request, limit: int = 200) -> Response:
    page_context(request, title="Latest events", events=pd.DataFrame(), limit=200)
    df = read(request, queries.recent_events, limit)
    return render(request, "events.html", title="Latest events", events=df, limit=limit)


@router.get("/persons")
@admin_page()
def persons(request: Request) -> Response:
    return render(
        request, "persons.html", title="Persons", persons=read(request, queries.persons, 500)
    )


@router.get("/persons.csv")
@admin_page()
def persons_csv(request: Request) -> Response:
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
@admin_page()
def keys_page(request: Request) -> Response:
    return _keys_page(request)


@router.post("/keys")
@admin_page()
def create_key(request: Request, name: str = Form("web"), csrf: str = Form("")) -> Response:
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
@admin_page()
def revoke_key(request: Request, prefix: str = Form(""), csrf: str = Form("")) -> Response:
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
