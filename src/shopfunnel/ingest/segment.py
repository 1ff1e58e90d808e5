"""Segment and RudderStack messages → canonical events.

Both tools send the same message shape (Segment's HTTP tracking API): ``type``
(``track``, ``page``, ``screen``, ``identify``, ``alias``, ``group``), ``messageId``,
``anonymousId`` / ``userId``, ``timestamp``, ``context`` and ``properties`` or
``traits``. One message becomes one canonical event:

- ``messageId`` → ``event_id`` (both tools dedup on it, so retries add nothing);
- ``timestamp`` (else ``originalTimestamp``, ``sentAt``, ``receivedAt``, else the time
  the collector received it) → ``ts`` in UTC;
- ``track`` names from Segment's e-commerce spec v2 → GA4 names (:data:`EVENT_NAMES`);
  ``Checkout Step Completed`` is ``add_shipping_info`` when it carries a
  ``shipping_method``, ``add_payment_info`` when it carries a ``payment_method`` (a
  convention, not spec); any other name is snake_cased (``Signed Up`` → ``signed_up``);
- ``page`` → ``page_view``, ``screen`` → ``screen_view``, ``identify`` → ``identify``,
  ``alias`` → ``alias`` (``previousId`` as the anonymous id, so the store links it to
  ``userId``), ``group`` → ``group``; an ``identify`` carrying both ids is what links
  an anonymous visitor to a customer in the store's identity stitching;
- ``context.page.url`` / ``referrer`` (``properties.url`` / ``referrer`` for ``page``
  calls) → ``page`` / ``referrer``; ``context.campaign.source/medium/name`` → ``utm_*``
  (else the ``utm_*`` parameters of the page URL); ``context.userAgent`` (or
  ``context.device.type``) → ``device`` (mobile, tablet or desktop);
  ``context.location.country`` → ``country``;
- money: ``order_id``, ``currency`` (upper-cased) and ``value``: ``revenue`` (which
  excludes shipping and tax, as GA4's ``value`` does), else ``value``, else ``total``;
  for one-product events without any of them, ``price`` × ``quantity`` (quantity 1 if
  absent);
- ``products[]`` (or, for one-product events, the properties themselves) → ``items``
  (``product_id`` or ``sku`` → ``item_id``, ``name``, ``category``, ``price``,
  ``quantity``);
- every property not used above, and the original event name when it was renamed
  (``source_event``), stays in ``properties``.

A message that cannot become an event raises :class:`MessageError` with the reason;
the file importer (:func:`read_segment`) collects those as rejects with their line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa

from shopfunnel.errors import InputError, Reject, ValidationError
from shopfunnel.ingest.exposures import as_exposure
from shopfunnel.store.schema import EXPOSURE_EVENT
from shopfunnel.store.store import LINE, Staged

EVENT_NAMES: dict[str, str] = {
    "Products Searched": "search",
    "Product List Viewed": "view_item_list",
    "Product Clicked": "select_item",
    "Product Viewed": "view_item",
    "Product Added": "add_to_cart",
    "Product Removed": "remove_from_cart",
    "Cart Viewed": "view_cart",
    "Checkout Started": "begin_checkout",
    "Payment Info Entered": "add_payment_info",
    "Order Completed": "purchase",
    "Order Refunded": "refund",
    "Product Added to Wishlist": "add_to_wishlist",
    "Wishlist Product Added to Cart": "add_to_cart",
    "Promotion Viewed": "view_promotion",
    "Promotion Clicked": "select_promotion",
    "Experiment Viewed": EXPOSURE_EVENT,
}

# Events whose properties describe one product (the product fields sit at the top level).
ONE_PRODUCT_EVENTS = frozenset(
    {
        "Product Clicked",
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Product Added to Wishlist",
        "Wishlist Product Added to Cart",
    }
)
MESSAGE_TYPES = ("track", "page", "screen", "identify", "alias", "group")
ORDER_FIELDS = ("order_id", "revenue", "value", "total", "currency", "products")
PRODUCT_FIELDS = ("product_id", "sku", "id", "name", "category", "price", "quantity")
MAX_VALUE = 10**16


class MessageError(ValueError):
    """A message that cannot become a canonical event; ``column`` names the culprit."""

    def __init__(self, reason: str, column: str = "message"):
        super().__init__(reason)
        self.reason = reason
        self.column = column


def snake_case(name: str) -> str:
    """``Signed Up`` → ``signed_up``; ``checkoutStep2`` → ``checkout_step2``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", spaced).strip("_").lower()


def event_name(message_type: str, name: str | None, properties: Mapping[str, Any]) -> str:
    """The canonical event name of a message (see the module docstring)."""
    if message_type == "page":
        return "page_view"
    if message_type == "screen":
        return "screen_view"
    if message_type != "track":
        return message_type
    assert name is not None
    if name in EVENT_NAMES:
        return EVENT_NAMES[name]
    if name == "Checkout Step Completed":
        if properties.get("payment_method"):
            return "add_payment_info"
        if properties.get("shipping_method"):
            return "add_shipping_info"
    return snake_case(name) or "unnamed"


def device_from_user_agent(user_agent: str | None) -> str | None:
    """mobile, tablet or desktop from a User-Agent string (None if there is none)."""
    if not user_agent:
        return None
    ua = user_agent.lower()
    if "ipad" in ua or "tablet" in ua or ("android" in ua and "mobile" not in ua):
        return "tablet"
    if any(k in ua for k in ("mobi", "iphone", "ipod", "android", "phone")):
        return "mobile"
    return "desktop"


_EPOCH = datetime(1970, 1, 1)
_MIN, _MAX = datetime(1970, 1, 1), datetime(2200, 12, 31, 23, 59, 59)


def parse_timestamp(value: Any) -> datetime:
    """An ISO 8601 string (no zone means UTC) or epoch seconds/milliseconds → naive UTC.

    Times before 1970 or after 2200 are refused (a typo or a unit mistake).
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value
        ts = _EPOCH + timedelta(seconds=seconds)
    elif isinstance(value, str) and value:
        ts = datetime.fromisoformat(value.strip())
        offset = ts.utcoffset()
        if offset is not None:
            ts = (ts - offset).replace(tzinfo=None)
    else:
        raise ValueError("not a time")
    if not _MIN <= ts <= _MAX:
        raise ValueError("out of range")
    return ts


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if text else None


def _number(value: Any, field: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MessageError(f"{field} must be a number, not a boolean", field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MessageError(f"{field} must be a number (got {value!r})", field) from None
    if number != number or abs(number) >= MAX_VALUE:
        raise MessageError(f"{field} must be a finite number below 10^16 (got {value!r})", field)
    return number


def _item(product: Any) -> dict[str, Any]:
    if not isinstance(product, Mapping):
        raise MessageError("each entry of products must be an object", "items")
    item_id = product.get("product_id") or product.get("sku") or product.get("id")
    quantity = _number(product.get("quantity"), "quantity")
    if quantity is not None and (quantity != int(quantity) or abs(quantity) > 2**31 - 1):
        raise MessageError(
            f"quantity must be a whole number (got {product.get('quantity')!r})", "items"
        )
    return {
        "item_id": _text(item_id),
        "item_name": _text(product.get("name")),
        "item_category": _text(product.get("category")),
        "price": _number(product.get("price"), "price"),
        "quantity": None if quantity is None else int(quantity),
    }


def _section(ctx: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = ctx.get(key)
    return value if isinstance(value, Mapping) else {}


def _utm_from_url(url: str | None) -> dict[str, str]:
    if not url:
        return {}
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return {}
    return {k: v[0] for k, v in query.items() if k.startswith("utm_") and v and v[0]}


def to_canonical(
    message: Any, *, received_at: datetime | None = None, context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One Segment/RudderStack message as a canonical event (a dict of canonical columns).

    ``context`` is a batch-level context merged under the message's own (Segment's
    batch rule); ``received_at`` is the fallback time. ``ts`` comes back as a naive UTC
    ``datetime``, ``items`` as a list of dicts, ``properties`` as JSON text.
    Raises :class:`MessageError` naming the reason when the message cannot be used.
    """
    if not isinstance(message, Mapping):
        raise MessageError("a message must be a JSON object")
    mtype = message.get("type")
    if mtype not in MESSAGE_TYPES:
        raise MessageError(
            f"type {mtype!r} is not a message type: use one of {', '.join(MESSAGE_TYPES)}", "type"
        )
    ctx: dict[str, Any] = dict(context or {})
    own_ctx = message.get("context")
    if own_ctx is not None and not isinstance(own_ctx, Mapping):
        raise MessageError("context must be an object", "context")
    ctx.update(own_ctx or {})
    props_key = "traits" if mtype in ("identify", "group") else "properties"
    props = message.get(props_key)
    if props is None:
        props = {}
    if not isinstance(props, Mapping):
        raise MessageError(f"{props_key} must be an object", props_key)
    props = dict(props)

    user_id = _text(message.get("userId"))
    anonymous_id = _text(message.get("anonymousId"))
    if mtype == "alias":
        anonymous_id = _text(message.get("previousId")) or anonymous_id
    if user_id is None and anonymous_id is None:
        raise MessageError("the message has neither userId nor anonymousId", "anonymous_id")

    name = message.get("event")
    if mtype == "track" and (not isinstance(name, str) or not name.strip()):
        raise MessageError("a track message needs an event name (event)", "event")
    event = event_name(mtype, name, props)

    ts_value = next(
        (
            message.get(k)
            for k in ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
            if message.get(k) not in (None, "")
        ),
        None,
    )
    if ts_value is None:
        ts = (
            (received_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
            if (received_at is None or received_at.tzinfo)
            else received_at
        )
    else:
        try:
            ts = parse_timestamp(ts_value)
        except (ValueError, OverflowError, OSError):
            raise MessageError(
                f"timestamp {ts_value!r} is not a time: use ISO 8601, e.g. 2024-03-15T10:30:00Z",
                "ts",
            ) from None

    page_ctx = _section(ctx, "page")
    url = _text(page_ctx.get("url"))
    referrer = _text(page_ctx.get("referrer"))
    if mtype == "page":
        url = _text(props.get("url")) or url
        referrer = _text(props.get("referrer")) or referrer
    campaign = _section(ctx, "campaign")
    utm = _utm_from_url(url)
    device_ctx = _section(ctx, "device")
    device_type = _text(device_ctx.get("type"))
    device = (
        device_type.lower()
        if device_type and device_type.lower() in ("mobile", "tablet", "desktop")
        else device_from_user_agent(_text(ctx.get("userAgent")))
    )
    location = _section(ctx, "location")

    order_id = value = currency = None
    items = None
    if mtype == "track":
        order_id = _text(props.pop("order_id", None))
        currency_text = _text(props.pop("currency", None))
        currency = currency_text.upper() if currency_text else None
        for key in ("revenue", "value", "total"):
            if props.get(key) not in (None, ""):
                value = _number(props[key], key)
                break
        products = props.pop("products", None)
        if products is not None:
            if not isinstance(products, list):
                raise MessageError("products must be a list of product objects", "items")
            items = [_item(p) for p in products]
        elif name in ONE_PRODUCT_EVENTS:
            item = _item(props)
            if any(v is not None for v in item.values()):
                items = [item]
                if value is None and item["price"] is not None:
                    value = item["price"] * (
                        item["quantity"] if item["quantity"] is not None else 1
                    )
                    if abs(value) >= MAX_VALUE:
                        raise MessageError("price × quantity is too large", "value")
        for key in ("revenue", "value"):
            props.pop(key, None)
        if name != event:
            props["source_event"] = name
        if event == EXPOSURE_EVENT:
            props = as_exposure(str(name), props)[1]
    if mtype in ("identify", "group", "alias") and message.get("groupId") is not None:
        props["group_id"] = message.get("groupId")
    if mtype == "page" and message.get("name"):
        props.setdefault("name", message.get("name"))

    return {
        "event_id": _text(message.get("messageId")),
        "ts": ts,
        "event": event,
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "session_id": _text(ctx.get("sessionId")) or _text(props.pop("session_id", None)),
        "channel": None,
        "utm_source": _text(campaign.get("source")) or utm.get("utm_source"),
        "utm_medium": _text(campaign.get("medium")) or utm.get("utm_medium"),
        "utm_campaign": _text(campaign.get("name")) or utm.get("utm_campaign"),
        "referrer": referrer,
        "page": url,
        "device": device,
        "country": _text(location.get("country")),
        "order_id": order_id,
        "value": None if value is None else round(value, 2),
        "currency": currency,
        "items": items,
        "properties": json.dumps(props, default=str, ensure_ascii=False) if props else None,
    }


def messages_to_table(events: list[dict[str, Any]], lines: list[int]) -> pa.Table:
    """Canonical event dicts (as :func:`to_canonical` returns them) as an Arrow table
    with a ``__line`` column, ready for :class:`~shopfunnel.store.Staged`."""
    from shopfunnel.store import schema

    fields = [
        f if f.name != "ts" else pa.field("ts", pa.timestamp("us")) for f in schema.ARROW_SCHEMA
    ]
    fields = [f if f.name != "value" else pa.field("value", pa.float64()) for f in fields]
    arrow_schema = pa.schema([*fields, pa.field(LINE, pa.int64())])
    rows = [{**e, LINE: line} for e, line in zip(events, lines, strict=True)]
    return pa.Table.from_pylist(rows, schema=arrow_schema)


def read_segment(path: str | Path) -> Staged:
    """Stage a Segment or RudderStack export: JSON Lines, one message per line.

    A JSON array of messages, or a ``{"batch": [...]}`` object per line, is read too.
    Lines that are not JSON and messages that cannot become events are handed to the
    store as rejects (``Staged.rejects``, with their line and reason), so
    ``on_error="fail"`` stops the load and ``"skip"`` reports them, as for every
    importer; a file with no usable message at all raises at once.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"no file at {str(p)!r}: check the path")
    if p.is_dir() or p.stat().st_size == 0:
        raise InputError(f"{str(p)!r} is empty or a folder: give a JSON Lines file of messages")
    events: list[dict[str, Any]] = []
    lines: list[int] = []
    rejects: list[Reject] = []
    try:
        _read_messages(p, events, lines, rejects)
    except (UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputError(
            f"{p}: cannot be read as UTF-8 JSON Lines ({exc}): export the messages as JSON Lines, "
            "one message per line"
        ) from exc
    if rejects and not events:
        shown = "\n  ".join(str(r) for r in rejects[:10])
        more = f"\n  … and {len(rejects) - 10} more" if len(rejects) > 10 else ""
        raise ValidationError(
            f"{p}: none of its {len(rejects)} message(s) can be read as events; nothing was "
            f"loaded.\n  {shown}{more}\nIs this a Segment or RudderStack export (JSON Lines of "
            "messages with type, anonymousId or userId, and event for track calls)?",
            rejects,
        )
    if not events:
        raise InputError(f"{p}: no messages to load")
    return Staged(
        source=str(p),
        table=messages_to_table(events, lines),
        line_label="line",
        rejects=tuple(rejects),
    )


def _read_messages(
    p: Path, events: list[dict[str, Any]], lines: list[int], rejects: list[Reject]
) -> None:
    with _open_text(p) as fh:
        for number, raw in enumerate(fh, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                rejects.append(
                    Reject(str(p), number, "message", f"not JSON ({exc.msg})", text[:80])
                )
                continue
            messages, ctx = obj, None
            if isinstance(obj, Mapping) and isinstance(obj.get("batch"), list):
                messages, ctx = obj["batch"], obj.get("context")
            for message in messages if isinstance(messages, list) else [messages]:
                try:
                    events.append(
                        to_canonical(message, context=ctx if isinstance(ctx, Mapping) else None)
                    )
                    lines.append(number)
                except MessageError as exc:
                    rejects.append(Reject(str(p), number, exc.column, exc.reason))


def _open_text(p: Path) -> Any:
    if p.name.endswith(".gz"):
        import gzip

        return gzip.open(p, "rt", encoding="utf-8")
    return open(p, encoding="utf-8")
