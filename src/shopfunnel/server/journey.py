"""The dashboard's person page: one person's journey, found by id or e-mail (admin only).

Definitions: :mod:`shopfunnel.journey.person`. A search by e-mail is a POST whose answer is
the page itself (no redirect): the address never sits in a URL, so it stays out of access
logs, browser history and ``Referer`` headers (ADR 0118, ADR 0155). A person id may be a
link (``/journey?person=ID``), as the JSON API's ``/v1/persons/{id}`` is. Everything from the
store reaches the page through Jinja's autoescaping, or as chart JSON through ``tojson``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import plotly.graph_objects as go
from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from shopfunnel.errors import ShopfunnelError
from shopfunnel.journey.person import PART_TITLES
from shopfunnel.server import api
from shopfunnel.server.admin import require_admin
from shopfunnel.server.pages import admin_page, csrf_token, figure, read, render

router = APIRouter(include_in_schema=False)
json_router = APIRouter(prefix="/v1", tags=["analyses"], dependencies=[Depends(require_admin)])
SEARCH_BY = ("id", "email")


def _stage_chart(journey: Any) -> dict[str, Any] | None:
    """The furthest stage over time, as a step line (one point per stage change)."""
    changes = journey.stage_changes
    if changes.empty:
        return None
    names = journey.stages["stage"].tolist()
    x = [str(t) for t in changes["at"]] + [str(journey.summary["last_seen"])]
    y = changes["to_stage"].tolist() + [changes["to_stage"].iloc[-1]]
    fig = go.Figure(
        go.Scatter(x=x, y=y, mode="lines+markers", line={"shape": "hv"}),
        layout={
            "margin": {"t": 20},
            "height": 260,
            "yaxis": {"type": "category", "categoryorder": "array", "categoryarray": names},
        },
    )
    return figure(fig)


def _lookup(store: Any, query: str, by: str) -> dict[str, Any]:
    """What the page shows for a search: the journey, or the persons to choose from."""
    from shopfunnel.errors import ConfigError
    from shopfunnel.journey import find_persons, person_journey

    if by not in SEARCH_BY:
        raise ConfigError(f"search by {by!r} is not offered: use id or email")
    matches = find_persons(store, query, by=by)  # type: ignore[arg-type]
    if not matches:
        raise ConfigError(f"no person with that {'e-mail' if by == 'email' else 'id'} in the store")
    if len(matches) > 1:
        return {"matches": matches}
    return {"journey": person_journey(store, matches[0].person_id, contacts=True)}


def _page(request: Request, query: str = "", by: str = "id", status: int = 200) -> Response:
    context: dict[str, Any] = {
        "title": "Person",
        "query": query if by == "id" else "",
        "by": by,
        "journey": None,
        "matches": None,
        "charts": False,
    }
    if query:
        try:
            context.update(read(request, _lookup, query, by))
        except ShopfunnelError as exc:
            return render(request, "journey.html", status=422, error=str(exc), **context)
    journey = context["journey"]
    if journey is not None:
        tables = journey.shown_tables()
        chart = _stage_chart(journey)
        context.update(
            tables=tables,
            titles=PART_TITLES,
            stage_chart=chart,
            charts=chart is not None,
            title=f"Person {journey.person_id}",
        )
    return render(request, "journey.html", status=status, **context)


@router.get("/journey")
@admin_page()
def journey_page(request: Request, person: str = "") -> Response:
    return _page(request, person, "id")


@router.post("/journey")
@admin_page()
def journey_search(
    request: Request, q: str = Form(""), by: str = Form("id"), csrf: str = Form("")
) -> Response:
    if not hmac.compare_digest(csrf, csrf_token(request)):
        return render(
            request,
            "journey.html",
            status=403,
            title="Person",
            query="",
            by="id",
            journey=None,
            matches=None,
            error="The form expired: reload the page and try again.",
        )
    return _page(request, q.strip(), by)


# -- the same as JSON ---------------------------------------------------------------------------
def _journey_data(store: Any, person_id: str, events: int) -> dict[str, Any]:
    from shopfunnel.journey import find_persons, person_journey

    matches = find_persons(store, person_id)
    if len(matches) != 1:
        return {
            "matches": [{"person_id": m.person_id, "matched_by": m.matched_by} for m in matches]
        }
    return person_journey(store, matches[0].person_id, contacts=True, events_limit=events).to_dict()


@json_router.get("/persons/{person_id}/journey", openapi_extra=api.ADMIN)
def journey_json(
    request: Request,
    person_id: Annotated[str, Path(min_length=1, max_length=1000)],
    events: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> dict[str, Any]:
    """One person's journey (docs/journey.md), contacts included: the id may be a person id, a
    customer id or an anonymous id. When it names no person, or several, the answer is
    ``{"matches": [...]}`` (empty, or the persons to choose from)."""
    return api.clean(api.read(request, _journey_data, person_id, events))


class EmailSearch(BaseModel):
    """An e-mail to look persons up by (in the body, so it stays out of URLs and logs)."""

    email: str = Field(min_length=3, max_length=320)


@json_router.post("/persons/search", openapi_extra=api.ADMIN)
def search_json(request: Request, body: EmailSearch) -> dict[str, Any]:
    """The persons whose events carry the e-mail (trimmed, any case): ``{"rows": [{person_id,
    matched_by}]}``; open one with ``GET /v1/persons/{person_id}/journey``."""
    from shopfunnel.journey import find_persons

    found = api.read(request, find_persons, body.email, by="email")
    return {"rows": [{"person_id": m.person_id, "matched_by": m.matched_by} for m in found]}
