"""The collector: ``POST /v1/batch`` and Segment's ``/v1/track``, ``/v1/page``, ``/v1/identify``…

Every request goes through the same steps, each with its own answer:

1. ``Origin`` (browsers only) must be one of the store's own origins — else **403**;
2. the body must fit ``max_body_bytes`` (gzip allowed) — else **413**;
3. it must be JSON of the right shape — else **400** (not JSON) or **422** (wrong shape);
4. a write key, as the HTTP Basic user (Segment's way), the body's ``writeKey`` or the
   ``writeKey`` query parameter (for ``sendBeacon``) — else **401**;
5. within the key's rate — else **429** with ``Retry-After`` (a Basic key with no token
   left is answered so before step 3: its body is not read as JSON at all);
6. the writer not too far behind — else **503** with ``Retry-After``;
7. each event checked on its own (:mod:`shopfunnel.server.events`): good ones are
   accepted, bad ones rejected with their index and reason; none good → **400**;
8. the accepted events are appended to the fsynced spool; only then **200**.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import zlib
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from shopfunnel.errors import ShopfunnelError
from shopfunnel.server.intake import SINGLE_TYPES
from shopfunnel.server.state import ServerState

router = APIRouter()


CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    # "code" and "message" are what Segment's libraries read from an error answer.
    return JSONResponse(
        {
            "success": False,
            "error": message,
            "code": CODES.get(status, "error"),
            "message": message,
            **extra,
        },
        status_code=status,
        headers=headers,
    )


def cors_headers(state: ServerState, origin: str | None) -> dict[str, str]:
    if origin and origin in state.settings.allowed_origins:
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "false",
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
    return {"Vary": "Origin"}


def _basic_user(header: str | None) -> str | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


class TooLarge(Exception):
    """The inflated body passed the limit."""


class Inflater:
    """Gunzip a body chunk by chunk, refusing (:class:`TooLarge`) as soon as the inflated
    size passes ``limit``: a small "gzip bomb" is never inflated past the limit, so no
    more than ``limit`` + 1 bytes are ever held. Several gzip members one after the other
    (RFC 1952 allows it) are read in turn; a broken or cut stream raises ``zlib.error``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self._parts: list[bytes] = []
        self._member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._open = False  # the current member has been fed and has not ended

    def feed(self, data: bytes) -> None:
        while data:
            self._open = True
            out = self._member.decompress(data, self.limit - self.size + 1)
            self.size += len(out)
            if self.size > self.limit:
                raise TooLarge
            self._parts.append(out)
            data = self._member.unconsumed_tail
            if self._member.eof:
                data = self._member.unused_data
                self._member = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._open = False

    def finish(self) -> bytes:
        """The whole inflated body; ``zlib.error`` when the stream ended inside a member."""
        if self._open:
            raise zlib.error("the gzip stream is cut short")
        return b"".join(self._parts)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` bytes, as sent or once gunzipped
    (inflated while it arrives, and stopped at the limit)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    inflater = Inflater(limit) if gzipped else None
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            if inflater is not None:
                inflater.feed(chunk)
            else:
                chunks.append(chunk)
        return inflater.finish() if inflater is not None else b"".join(chunks)
    except TooLarge:
        return None
    except zlib.error:
        return b"\x00"  # not JSON: answered with 400 below


async def collect(request: Request, kind: str) -> Response:
    state: ServerState = request.app.state.server
    settings = state.settings
    origin = request.headers.get("origin")
    headers = cors_headers(state, origin)
    if origin and origin not in settings.allowed_origins:
        return _error(
            403,
            f"origin {origin!r} may not send events: start the server with "
            f"--allow-origin {origin} if it is the store's own site",
            headers,
        )
    header_key = _basic_user(request.headers.get("authorization"))
    if header_key is not None and state.key_name(header_key) is None:
        return _error(
            401,
            "unknown or revoked write key: create one with `shopfunnel keys create`",
            {**headers, "WWW-Authenticate": 'Basic realm="shopfunnel"'},
        )
    body = await _read_body(request, settings.max_body_bytes)
    if body is None:
        return _error(
            413,
            f"the request body is larger than {settings.max_body_bytes} bytes: "
            "send smaller batches",
            headers,
        )
    received = datetime.now(UTC)
    if header_key is not None:
        # a key already out of tokens is refused before its body is converted
        wait = state.rate.wait(header_key)
        if wait > 0:
            return _rate_limited(wait, headers)
        prepared = await state.prepare(body, kind, received)
    else:
        # the key is in the body or the query: learn it (and the count) before converting
        prepared = state.prepare_here(body, kind, received, convert=False)
    if prepared.parse_error is not None:
        return _error(400, prepared.parse_error, headers)
    key = header_key
    if key is None:
        key = (
            prepared.body_key
            if prepared.body_key is not None
            else request.query_params.get("writeKey")
        )
        if state.key_name(key) is None:
            return _error(
                401,
                "a write key is required: send it as the HTTP Basic user name "
                "(Segment's way), as writeKey in the body, or as ?writeKey=",
                {**headers, "WWW-Authenticate": 'Basic realm="shopfunnel"'},
            )
    if prepared.shape_error is not None:
        return _error(*prepared.shape_error, headers)
    if state.rate.too_large(prepared.count):
        return _error(
            413,
            f"at most {state.rate.burst:.0f} events per request for this write key "
            "(its rate limit's burst): send smaller batches",
            headers,
        )
    wait = state.rate.take(key, prepared.count)  # type: ignore[arg-type]
    if wait > 0:
        return _rate_limited(wait, headers)
    if header_key is None:
        prepared = await state.prepare(body, kind, received)
    assert state.writer is not None and state.spool is not None
    if state.writer.pending > settings.max_pending_events:
        return _error(
            503, "the store is catching up: retry shortly", {**headers, "Retry-After": "1"}
        )
    accepted, rejected = prepared.accepted, prepared.rejected
    if not accepted:
        return _error(
            400, "no event in the request could be accepted", headers, accepted=0, rejected=rejected
        )
    try:
        if settings.durability == "transaction":
            await run_in_threadpool(state.writer.load_now, prepared.data)
        else:
            await _wrap(state.spool.append_lines(prepared.data, accepted))
    except (OSError, RuntimeError, ShopfunnelError) as exc:
        return _error(
            503,
            f"the spool cannot take events right now ({exc}): retry shortly",
            {**headers, "Retry-After": "1"},
        )
    return JSONResponse(
        {"success": True, "accepted": accepted, "rejected": rejected}, headers=headers
    )


def _rate_limited(wait: float, headers: dict[str, str]) -> JSONResponse:
    return _error(
        429,
        "rate limit for this write key exceeded: retry later",
        {**headers, "Retry-After": str(max(1, math.ceil(wait)))},
    )


async def _wrap(future: Any) -> None:
    await asyncio.wrap_future(future)


EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A canonical event (no 'type'), or a Segment/RudderStack message (with 'type').",
    "properties": {
        "event_id": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "event": {"type": "string"},
        "anonymous_id": {"type": "string"},
        "user_id": {"type": "string"},
        "session_id": {"type": "string"},
        "utm_source": {"type": "string"},
        "utm_medium": {"type": "string"},
        "utm_campaign": {"type": "string"},
        "referrer": {"type": "string"},
        "page": {"type": "string"},
        "device": {"type": "string"},
        "country": {"type": "string"},
        "order_id": {"type": "string"},
        "value": {"type": "number"},
        "currency": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "item_id": {"type": "string"},
                    "item_name": {"type": "string"},
                    "item_category": {"type": "string"},
                    "price": {"type": "number"},
                    "quantity": {"type": "integer"},
                },
            },
        },
        "properties": {"type": "object"},
        "type": {"type": "string", "enum": list(SINGLE_TYPES)},
        "messageId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "userId": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "context": {"type": "object"},
        "traits": {"type": "object"},
    },
}
MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        k: v
        for k, v in EVENT_SCHEMA["properties"].items()
        if k
        in (
            "messageId",
            "anonymousId",
            "userId",
            "timestamp",
            "context",
            "properties",
            "traits",
            "type",
        )
    }
    | {"event": {"type": "string"}},
}
RESULT = {
    "200": {
        "description": "Accepted events are durable (fsynced); rejected ones are listed with reasons.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "success": {"type": "boolean"},
                        "accepted": {"type": "integer"},
                        "rejected": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    },
    # the error answers and their bodies: shopfunnel.server.openapi
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "responses": RESULT,
        "security": [{"writeKey": []}],
    }


@router.post(
    "/v1/batch",
    tags=["collector"],
    openapi_extra=_body(
        {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {"type": "array", "items": EVENT_SCHEMA, "minItems": 1},
                "context": {"type": "object"},
            },
        }
    ),
)
async def batch(request: Request) -> Response:
    """A batch of canonical events and/or Segment messages (Segment's ``/v1/batch`` shape)."""
    return await collect(request, "batch")


def _single(kind: str) -> None:
    async def endpoint(request: Request) -> Response:
        return await collect(request, kind)

    endpoint.__name__ = kind
    endpoint.__doc__ = f"One Segment ``{kind}`` message (Segment's HTTP tracking API)."
    router.post(f"/v1/{kind}", tags=["collector"], openapi_extra=_body(MESSAGE_SCHEMA))(endpoint)


for _kind in SINGLE_TYPES:
    _single(_kind)

# Segment's browser library (analytics.js 2.0) posts to one-letter paths: /v1/t, /v1/p, …
SHORT_PATHS = {
    "t": "track",
    "p": "page",
    "i": "identify",
    "s": "screen",
    "a": "alias",
    "g": "group",
}


def _short(letter: str, kind: str) -> None:
    async def endpoint(request: Request) -> Response:
        return await collect(request, kind)

    endpoint.__name__ = f"short_{letter}"
    router.post(f"/v1/{letter}", include_in_schema=False)(endpoint)


for _letter, _kind in SHORT_PATHS.items():
    _short(_letter, _kind)
router.post("/v1/b", include_in_schema=False)(batch)


@router.options("/v1/{path:path}", include_in_schema=False)
async def preflight(request: Request, path: str) -> Response:
    state: ServerState = request.app.state.server
    origin = request.headers.get("origin")
    if not origin or origin not in state.settings.allowed_origins:
        return Response(status_code=403, headers={"Vary": "Origin"})
    return Response(status_code=204, headers=cors_headers(state, origin))
