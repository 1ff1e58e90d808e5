"""What every dashboard page shares: the template environment, the navigation, the
security headers, reading the store under its lock, and :func:`admin_page`, the decorator
every page wears (the admin check, and a :class:`~shopfunnel.errors.ShopfunnelError`
rendered on the page's own template).

Every page is rendered on the server from the same read functions as the JSON API
(:mod:`shopfunnel.server.queries`). Event data reaches the page only through Jinja's
autoescaping (tables) or ``tojson`` inside a ``<script type="application/json">``
(charts), and the Content-Security-Policy allows scripts from the server itself only,
so a ``<script>`` inside an event property is shown as text.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from shopfunnel.errors import ShopfunnelError
from shopfunnel.server.admin import COOKIE, is_admin, state_of

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


def page_context(request: Request, **context: Any) -> dict[str, Any]:
    """The page's context for its template, kept on the request: a page fills it as it
    reads, and :func:`admin_page` renders what it holds when a read fails."""
    request.state.page_context = context
    return context


def admin_page(
    template: str | None = None,
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Decorate a dashboard page (below its route): a visitor who is not the admin is sent
    to the login page, and a :class:`~shopfunnel.errors.ShopfunnelError` the page raises is
    shown on ``template`` with status 422, its message and the :func:`page_context` gathered
    so far. Without a template the error is not caught."""

    def decorate(handler: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(handler)  # FastAPI reads the handler's parameters through it
        def page(request: Request, *args: Any, **kwargs: Any) -> Response:
            if not is_admin(request):
                return to_login()
            if template is None:
                return handler(request, *args, **kwargs)
            try:
                return handler(request, *args, **kwargs)
            except ShopfunnelError as exc:
                context = getattr(request.state, "page_context", {})
                return render(request, template, status=422, error=str(exc), **context)

        return page

    return decorate


def bar_chart(x: list[Any], y: list[Any], **layout: Any) -> dict[str, Any]:
    """Bars of ``y`` over ``x`` (as text), each labelled with its value."""
    return figure(
        go.Figure(
            go.Bar(x=[str(v) for v in x], y=y, text=y, textposition="auto"),
            layout={"margin": {"t": 30}, **layout},
        )
    )
