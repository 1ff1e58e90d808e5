"""The FastAPI application: collector, tracking snippet, dashboard and JSON API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import fields
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response

from shopfunnel.server import (
    analysis_pages,
    api,
    collector,
    dashboard,
    funnel_pages,
    journey,
    programs,
    store_webhooks,
)
from shopfunnel.server.openapi import document_answers
from shopfunnel.server.state import ServerSettings, ServerState

STATIC = files("shopfunnel.server") / "static"


def create_app(
    store_path: str,
    *,
    admin_password_hash: str,
    write_keys: Iterable[str] = (),
    **settings: Any,
) -> FastAPI:
    """The server for the store at ``store_path``.

    ``admin_password_hash`` comes from :func:`shopfunnel.server.auth.hash_password`
    (the clear password is never given to the app). ``write_keys`` are keys accepted in
    addition to those stored in the store (``shopfunnel keys create``). Other keyword
    arguments are :class:`ServerSettings` fields (limits, allowed origins, spool folder).
    The store is opened, and the spool recovered, when the app starts.
    """
    known = {f.name for f in fields(ServerSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        from shopfunnel.errors import ConfigError

        raise ConfigError(f"unknown server setting(s) {unknown}: use {sorted(known)}")
    state = ServerState(
        store_path,
        admin_password_hash,
        ServerSettings(**settings),
        extra_write_keys=tuple(write_keys),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.open()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="shopfunnel",
        summary="Event collector (canonical and Segment-compatible), dashboard and JSON API.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = state
    app.include_router(collector.router)
    app.include_router(store_webhooks.router)
    app.include_router(api.router)
    app.include_router(dashboard.router)
    app.include_router(funnel_pages.router)
    app.include_router(analysis_pages.router)
    app.include_router(journey.json_router)
    app.include_router(journey.router)
    app.include_router(programs.router)

    @app.get("/v1/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness and the writer's backlog (no authentication; no store data)."""
        writer = state.writer
        return {"status": "ok", "pending_events": writer.pending if writer else 0}

    sdk = (STATIC / "sdk.js").read_bytes()

    @app.get("/sdk.js", include_in_schema=False)
    def sdk_js() -> Response:
        return Response(
            sdk,
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        import logging

        # the route's template, not the path: a path can hold a person id (/v1/persons/{id})
        route = getattr(request.scope.get("route"), "path", "?")
        logging.getLogger("shopfunnel.server").exception(
            "unexpected error on %s %s", request.method, route
        )
        return JSONResponse({"success": False, "error": "internal error"}, status_code=500)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = document_answers(
            get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "writeKey": {
                "type": "http",
                "scheme": "basic",
                "description": "The write key as the user name, empty password (Segment's way).",
            },
            "admin": {
                "type": "http",
                "scheme": "bearer",
                "description": "The admin password or token set at start-up.",
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
