"""Order webhooks from the store's platform: ``POST /v1/webhooks/woocommerce`` and
``POST /v1/webhooks/shopify``.

Each request goes through the same steps, each with its own answer:

1. the body must fit ``max_webhook_body_bytes`` — else **413**;
2. WooCommerce's ping when a webhook is saved (a form body ``webhook_id=<n>``, unsigned)
   gets **200** and writes nothing, so the webhook can become active;
3. the signature header (``X-WC-Webhook-Signature`` / ``X-Shopify-Hmac-Sha256``) must be
   ``base64(HMAC-SHA256(raw body, secret))`` for one of the platform's secrets kept with
   ``shopfunnel keys platform-secret`` (compared in constant time; WooCommerce's secret is
   HTML-entity-decoded first, as WooCommerce does) — else **401**, nothing written;
4. the body must be a JSON object — else **400**; an order that cannot be read — **422**;
5. its ``purchase``/``refund`` events (:mod:`shopfunnel.ingest.shop_orders`) are appended
   to the fsynced spool, then **200**. Their ids are the order's, so a delivery sent twice
   (both platforms retry) adds nothing.

Nothing of the body (it holds the customer's e-mail and phone) is logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from shopfunnel.errors import InputError, ShopfunnelError
from shopfunnel.ingest import shop_orders
from shopfunnel.server.collector import _error, _read_body
from shopfunnel.server.events import EventError, canonical_event
from shopfunnel.server.state import ServerState

router = APIRouter(prefix="/v1/webhooks", tags=["store webhooks"])
SIGNATURE_HEADERS = {"woocommerce": "x-wc-webhook-signature", "shopify": "x-shopify-hmac-sha256"}
TOPIC_HEADERS = {"woocommerce": "x-wc-webhook-topic", "shopify": "x-shopify-topic"}
WOO_PING = re.compile(rb"webhook_id=\d+")


def platform_signature(secret: str, body: bytes) -> str:
    """``base64(HMAC-SHA256(body, secret))``: the header value both platforms send."""
    return base64.b64encode(
        hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    ).decode()


def signed_by(secrets: list[str], body: bytes, given: str | None, *, platform: str) -> bool:
    """Whether ``given`` is the signature of ``body`` by one of ``secrets`` (each is tried,
    compared in constant time)."""
    if not given or not secrets:
        return False
    ok = False
    for secret in secrets:
        key = html.unescape(secret) if platform == "woocommerce" else secret
        ok |= hmac.compare_digest(platform_signature(key, body).encode(), given.strip().encode())
    return ok


async def receive(request: Request, platform: str) -> Response:
    state: ServerState = request.app.state.server
    body = await _read_body(request, state.settings.max_webhook_body_bytes)
    if body is None:
        return _error(413, f"the body is larger than {state.settings.max_webhook_body_bytes} bytes")
    given = request.headers.get(SIGNATURE_HEADERS[platform])
    if platform == "woocommerce" and given is None and WOO_PING.fullmatch(body.strip()):
        return JSONResponse({"success": True, "ping": True})
    secrets = state.platform_secrets.get(platform, [])
    if not signed_by(secrets, body, given, platform=platform):
        hint = (
            ""
            if secrets
            else f" (no {platform} secret is kept: add it with `shopfunnel keys "
            f"platform-secret {platform}` and restart the server)"
        )
        return _error(401, f"missing or wrong {SIGNATURE_HEADERS[platform]} signature{hint}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _error(400, "the body is not JSON")
    if not isinstance(payload, dict):
        return _error(400, "the body must be a JSON object")
    topic = request.headers.get(TOPIC_HEADERS[platform])
    try:
        events = await run_in_threadpool(_events, state, platform, payload, topic)
        records = [canonical_event(e) for e in events]
    except (InputError, EventError) as exc:
        return _error(422, f"the order cannot be read: {exc}")
    if records:
        assert state.spool is not None and state.writer is not None
        try:
            if state.settings.durability == "transaction":
                data = b"".join(orjson.dumps(r) + b"\n" for r in records)
                await run_in_threadpool(state.writer.load_now, data)
            else:
                await _wait(state.spool.append(records))
        except (OSError, RuntimeError, ShopfunnelError):
            return _error(
                503, "the store cannot take events right now: retry shortly", {"Retry-After": "1"}
            )
    return JSONResponse({"success": True, "events": len(records)})


def _events(
    state: ServerState, platform: str, payload: dict[str, Any], topic: str | None
) -> list[dict[str, Any]]:
    def owner(order_id: str) -> tuple[str | None, str | None] | None:
        assert state.reader is not None
        with state.read_lock:
            return shop_orders.order_owner(state.reader, order_id)

    return shop_orders.order_events(platform, payload, topic=topic, owner=owner)  # type: ignore[arg-type]


async def _wait(future: Any) -> None:
    import asyncio

    await asyncio.wrap_future(future)


HOOK_DOC = {
    "responses": {
        "200": {"description": "The order's purchase/refund events are durable (or it was a ping)"},
        "400": {"description": "Not a JSON object"},
        "401": {"description": "Missing or wrong signature: nothing written"},
        "413": {"description": "Body too large"},
        "422": {"description": "Not an order that can be read"},
    }
}


@router.post("/woocommerce", openapi_extra=HOOK_DOC)
async def woocommerce(request: Request) -> Response:
    """A WooCommerce order webhook (topics order.created / order.updated), signed with the
    webhook's secret in ``X-WC-Webhook-Signature``."""
    return await receive(request, "woocommerce")


@router.post("/shopify", openapi_extra=HOOK_DOC)
async def shopify(request: Request) -> Response:
    """A Shopify webhook (orders/create, orders/paid, orders/updated, refunds/create), signed
    with the app's client secret in ``X-Shopify-Hmac-Sha256``."""
    return await receive(request, "shopify")
