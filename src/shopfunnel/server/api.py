"""The JSON API: the dashboard's analyses as JSON, for the admin only.

Every route needs the admin token (``Authorization: Bearer …``) or a dashboard session;
a write key gets 401. A bad parameter (unknown step, bad window) gets 422 with the
reason. Tables come back as ``{"rows": [...]}`` lists of records, or as CSV with
``?format=csv``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response

from shopfunnel.errors import ConfigError, ShopfunnelError
from shopfunnel.format import csv_text
from shopfunnel.server import auth, queries
from shopfunnel.server.admin import require_admin, state_of
from shopfunnel.webhooks import delivery_status

router = APIRouter(prefix="/v1", tags=["analyses"], dependencies=[Depends(require_admin)])
ADMIN: dict[str, Any] = {"security": [{"admin": []}]}


def read(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one read on the server's read connection; caller mistakes become 422."""
    state = state_of(request)
    assert state.reader is not None
    try:
        with state.read_lock:
            return fn(state.reader, *args, **kwargs)
    except ShopfunnelError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, other odd values text."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "item"):
        return clean(value.item())
    return str(value)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records", date_format="iso", default_handler=str))


def table_response(df: pd.DataFrame, fmt: str, filename: str) -> Any:
    if fmt == "csv":
        return Response(
            csv_text(df),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    return {"rows": records(df)}


Fmt = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]
Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)]


@router.get("/info", openapi_extra=ADMIN)
def info(request: Request) -> dict[str, Any]:
    """What the store holds: events, persons, sessions, orders, date range, by name and channel."""
    return read(request, queries.info)


@router.get("/events", openapi_extra=ADMIN)
def events(request: Request, limit: Limit = 100, format: Fmt = "json") -> Any:
    """The latest events, newest first."""
    return table_response(read(request, queries.recent_events, limit), format, "events")


@router.get("/persons", openapi_extra=ADMIN)
def persons(request: Request, limit: Limit = 1000, format: Fmt = "json") -> Any:
    """Persons (best customers first) with visits, sessions, orders and revenue; CSV with ?format=csv."""
    return table_response(read(request, queries.persons, limit), format, "persons")


@router.get("/webhooks/status", openapi_extra=ADMIN)
def webhooks_status(request: Request) -> dict[str, Any]:
    """Outbound webhooks per endpoint: deliveries pending, delivered and failed, the oldest
    pending entry, the next attempt and the last error (as `shopfunnel webhooks status`)."""
    return {"rows": records(read(request, delivery_status))}


@router.delete(
    "/persons/{person_id}",
    openapi_extra=ADMIN,
    responses={503: {"description": "The store is still loading earlier events: retry"}},
)
def erase_person(
    request: Request, person_id: Annotated[str, Path(min_length=1, max_length=1000)]
) -> dict[str, Any]:
    """Erase a person: their events, identity links, audience memberships, sent flows and
    webhook entries, the timeline and the spooled copies (see shopfunnel.store.erase). The
    store file is rewritten, so reads pause for a moment. The answer does not repeat the id."""
    state = state_of(request)
    try:
        result = state.erase_person(person_id)
    except ConfigError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except ShopfunnelError as exc:
        raise HTTPException(status_code=503, detail=str(exc), headers={"Retry-After": "5"}) from exc
    return {
        "erased": result.persons > 0,
        "persons": result.persons,
        "rows": result.rows,
        "audit": result.subject_hash,
    }


@router.get("/keys", openapi_extra=ADMIN)
def list_keys(request: Request) -> dict[str, Any]:
    """Write keys (prefix, name, created, revoked); the secret itself is never shown again."""
    state = state_of(request)
    assert state.store is not None
    with state.write_lock:
        df = auth.list_write_keys(state.store.db)
    return {"rows": records(df)}


@router.post("/keys", openapi_extra=ADMIN, status_code=201)
def create_key(
    request: Request, name: Annotated[str, Query(min_length=1, max_length=100)] = "default"
) -> dict[str, str]:
    """Create a write key while the server runs (the store file is the server's alone).
    The key is in this answer only."""
    state = state_of(request)
    assert state.store is not None
    with state.write_lock:
        key = auth.create_write_key(state.store.db, name)
    state.refresh_keys()
    return {"write_key": key, "name": name}


@router.delete(
    "/keys/{prefix}",
    openapi_extra=ADMIN,
    responses={404: {"description": "No active write key starts with the prefix"}},
)
def revoke_key(
    request: Request,
    prefix: Annotated[
        str,
        Path(
            min_length=1,
            max_length=100,
            description=("the key's first characters, as GET /v1/keys lists them"),
        ),
    ],
) -> dict[str, Any]:
    """Revoke a write key: requests with it get 401 from the next one on. 404 when no
    active key starts with ``prefix`` (keys given on the serve command line cannot be
    revoked here: restart without them)."""
    try:
        revoked = state_of(request).revoke_key(prefix)
    except ConfigError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    return {"revoked": revoked, "prefix": prefix}


Order = Annotated[Literal["ordered", "strict", "any"], Query(description="ordered, strict or any")]
By = Annotated[Literal[queries.BREAKDOWNS] | None, Query(description="breakdown column")]  # type: ignore[valid-type]


@router.get("/funnel", openapi_extra=ADMIN)
def funnel(
    request: Request,
    steps: Annotated[
        str,
        Query(
            min_length=1,
            max_length=2000,
            description=(
                "steps, comma-separated, filters in brackets: "
                "view_item[item_category=shoes|boots],add_to_cart,purchase"
            ),
        ),
    ],
    window: Annotated[str, Query(max_length=20)] = "7d",
    order: Order = "ordered",
    by: By = None,
    count_by: Annotated[Literal["person", "session"], Query()] = "person",
    exclude: Annotated[
        str,
        Query(
            max_length=2000,
            description=("excluded events separated by ';', each EVENT[filters] or EVENT:FROM-TO"),
        ),
    ] = "",
    hold: Annotated[
        str | None,
        Query(
            max_length=200,
            description=("a property every step of an attempt shares (cart_id, item_id)"),
        ),
    ] = None,
    optional: Annotated[
        str,
        Query(max_length=200, description=("step numbers that may be skipped, comma-separated")),
    ] = "",
    open_entry: Annotated[
        bool, Query(alias="open", description=("an attempt may start at any step"))
    ] = False,
    allow_unknown: Annotated[
        bool,
        Query(
            description=(
                "count even if a step, key or breakdown names nothing in the store "
                "(otherwise 422 with the closest names)"
            )
        ),
    ] = False,
) -> dict[str, Any]:
    """A funnel over the store (see shopfunnel.funnel.api for every number's definition)."""
    result = read(
        request,
        queries.funnel,
        steps,
        window=window,
        order=order,
        by=by,
        count_by=count_by,
        exclude=exclude,
        hold=hold,
        optional=optional,
        open_entry=open_entry,
        allow_unknown=allow_unknown,
    )
    return clean(result.to_dict())


@router.get("/stages", openapi_extra=ADMIN)
def stages(request: Request) -> dict[str, Any]:
    """Persons per stage, conversion between stages, counts by status (active, stalled,
    lapsed, gone) with the thresholds, and how the statuses were judged (``notes``)."""
    overview = read(request, queries.stage_overview)
    return {"rows": records(overview["summary"]), "notes": overview["notes"]}


@router.get("/stages/persons", openapi_extra=ADMIN)
def stage_persons(
    request: Request,
    stage: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[Literal["active", "stalled", "lapsed", "gone"] | None, Query()] = None,
    format: Fmt = "json",
) -> Any:
    """The persons at a stage with a status (both optional); CSV with ?format=csv."""
    return table_response(read(request, queries.stage_persons, stage, status), format, "persons")


@router.get("/stages/flow", openapi_extra=ADMIN)
def stage_flow(
    request: Request,
    start: Annotated[str, Query(max_length=40)],
    end: Annotated[str, Query(max_length=40)],
) -> dict[str, Any]:
    """Persons by state at ``start`` (rows, column ``from``) and at ``end`` (columns)."""
    return {"rows": records(read(request, queries.stage_flow, start, end))}


@router.get("/retention", openapi_extra=ADMIN)
def retention(
    request: Request,
    period: Annotated[
        Literal["month", "week"] | None,
        Query(
            description="cohort period; default: month when orders span 120 days, else week (as the report)"
        ),
    ] = None,
) -> dict[str, Any]:
    """Store-wide retention figures and the cohort matrix."""
    data = read(request, queries.retention, period)
    return clean({"summary": data["summary"], "cohorts": records(data["cohorts"])})


@router.get("/rfm", openapi_extra=ADMIN)
def rfm(request: Request, format: Fmt = "json") -> Any:
    """Per customer: recency, frequency, monetary, their scores and RFM group."""
    return table_response(read(request, queries.rfm), format, "rfm")


@router.get("/rfm/groups", openapi_extra=ADMIN)
def rfm_groups(request: Request) -> dict[str, Any]:
    """Customers, share and revenue per RFM group."""
    return {"rows": records(read(request, queries.rfm_groups))}


@router.get("/diagnosis", openapi_extra=ADMIN)
def diagnosis(request: Request) -> dict[str, Any]:
    """Findings ranked by revenue at stake, the tables behind them, and notes on what
    could not be measured (see shopfunnel.diagnosis.diagnose)."""
    return clean(read(request, queries.diagnosis).to_dict())
