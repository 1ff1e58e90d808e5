"""Segment / RudderStack messages → canonical events, a whole batch at a time.

The same mapping as :func:`shopfunnel.ingest.segment.to_canonical` (the reference; its
docstring defines every rule), organised for batches of hundreds of messages:

1. one pass reads each message's fields into columns (type, name, ids, time, the
   page, campaign, device and location parts of the context, the properties);
2. each column's **distinct** values are converted once per batch — event names,
   user agents (→ device), page URLs (→ ``utm_*``), currencies — since a batch repeats
   them many times (a visitor's user agent, a product page, ``Product Viewed``);
3. what depends on one message's own properties (order id, value, items, the leftover
   properties as JSON) is done per message with the reference's own helpers.

A message that fails any check is converted again by the reference function, so its
error (reason and column) is exactly the reference's; tests compare both on random
messages (tests/ingest/test_segment_bulk.py). The result list holds, per message, the
event dict or the :class:`~shopfunnel.ingest.segment.MessageError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]
from typing import Any

from shopfunnel.ingest.exposures import as_exposure
from shopfunnel.ingest.segment import (
    _MAX,
    _MIN,
    MAX_VALUE,
    MESSAGE_TYPES,
    ONE_PRODUCT_EVENTS,
    MessageError,
    _item,
    _number,
    _text,
    _utm_from_url,
    device_from_user_agent,
    event_name,
    parse_timestamp,
    to_canonical,
)
from shopfunnel.store.schema import EXPOSURE_EVENT

_REFERENCE_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)
# ``json.dumps(props, default=str, ensure_ascii=False)`` builds the C encoder anew on every
# call (JSONEncoder.iterencode); built once here, with the same settings, it writes the same
# text (tests compare the two). ``_MARKERS`` is its circular-reference check, emptied when an
# encoding fails half-way so a later call starts clean.
_MARKERS: dict[int, Any] = {}
_C_ENCODER = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        _MARKERS,
        _REFERENCE_ENCODER.default,
        c_encode_basestring,
        None,
        _REFERENCE_ENCODER.key_separator,
        _REFERENCE_ENCODER.item_separator,
        False,
        False,
        True,
    )
)


def encode_properties(props: Mapping[str, Any]) -> str:
    """``json.dumps(props, default=str, ensure_ascii=False)``, the reference's properties
    text, without building an encoder per call."""
    if _C_ENCODER is None or c_encode_basestring is None:
        return _REFERENCE_ENCODER.encode(props)
    try:
        return "".join(_C_ENCODER(props, 0))
    except BaseException:
        _MARKERS.clear()
        raise


_fromisoformat = datetime.fromisoformat


def _timestamp(value: Any) -> datetime:
    """:func:`~shopfunnel.ingest.segment.parse_timestamp` with a fast path for ISO 8601
    text without surrounding spaces; anything else (and every error) goes to the reference."""
    if type(value) is str:
        size = len(value)
        # UTC already, so read without the zone: JavaScript's toISOString() ("...Z") and
        # Python's isoformat() of a UTC time ("...+00:00", segment-analytics-python's);
        # stripping the zone from a parsed time (``replace(tzinfo=None)``) costs ten
        # times the parse itself
        utc = 0
        if (size == 24 and value[19] == "." or size == 20) and value[-1] == "Z":
            utc = 1
        elif size > 16 and value.endswith("+00:00"):
            utc = 6
        if utc and value[10] == "T":
            try:
                ts = _fromisoformat(value[:-utc])
            except ValueError:
                return parse_timestamp(value)
            if ts.tzinfo is None and _MIN <= ts <= _MAX:
                return ts
            return parse_timestamp(value)
        try:
            ts = _fromisoformat(value)
        except ValueError:
            return parse_timestamp(value)
        offset = ts.utcoffset()
        if offset is not None:
            ts = (ts - offset).replace(tzinfo=None)
        if _MIN <= ts <= _MAX:
            return ts
    return parse_timestamp(value)


_TIME_KEYS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
_DEVICE_TYPES = ("mobile", "tablet", "desktop")
_CONTEXT_KEYS = ("page", "campaign", "device", "userAgent", "location", "sessionId")
_EMPTY: Mapping[str, Any] = {}


class _Slow(Exception):
    """This message needs the reference function (it fails a check, or is unusual)."""


def _section(ctx: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = ctx.get(key)
    if value is None:
        return _EMPTY
    return value if type(value) is dict or isinstance(value, Mapping) else _EMPTY


def _fast_text(value: Any) -> str | None:
    if value is None:
        return None
    return (value or None) if type(value) is str else _text(value)


def _amount(value: Any, field: str) -> float | None:
    """:func:`~shopfunnel.ingest.segment._number` with a fast path for JSON numbers."""
    kind = type(value)
    if kind is float:
        if value == value and -MAX_VALUE < value < MAX_VALUE:
            return value
    elif kind is int and -MAX_VALUE < value < MAX_VALUE:
        return float(value)
    return _number(value, field)


def _product(product: Any) -> dict[str, Any]:
    """:func:`~shopfunnel.ingest.segment._item` with a fast path for ordinary products."""
    if type(product) is dict:
        get = product.get
        quantity = get("quantity")
        if quantity is None or type(quantity) is int and -(2**31) < quantity < 2**31:
            return {
                "item_id": _fast_text(get("product_id") or get("sku") or get("id")),
                "item_name": _fast_text(get("name")),
                "item_category": _fast_text(get("category")),
                "price": _amount(get("price"), "price"),
                "quantity": quantity,
            }
    return _item(product)


def _utm(url: str | None, memo: dict[str, dict[str, str]]) -> dict[str, str]:
    if url is None:
        return {}
    found = memo.get(url)
    if found is None:
        # no "utm_" and no percent-escape that could spell it: nothing to parse
        found = _utm_from_url(url) if ("utm_" in url or "%" in url) else {}
        memo[url] = found
    return found


def _device(device_type: str | None, user_agent: Any, memo: dict[Any, str | None]) -> str | None:
    if device_type:
        lowered = device_type.lower()
        if lowered in _DEVICE_TYPES:
            return lowered
    if user_agent is None or type(user_agent) is str:
        if user_agent in memo:
            return memo[user_agent]
        device = memo[user_agent] = device_from_user_agent(_fast_text(user_agent))
        return device
    return device_from_user_agent(_text(user_agent))


Failure = MessageError | TypeError | ValueError | OverflowError
FAILURES = (MessageError, TypeError, ValueError, OverflowError)


def to_canonical_many(
    messages: Sequence[Any],
    *,
    received_at: datetime | None = None,
    context: Mapping[str, Any] | None = None,
) -> list[dict[str, Any] | Failure]:
    """Each message as :func:`~shopfunnel.ingest.segment.to_canonical` would return it, or
    the exception it would raise (a :class:`MessageError` with the reason; a ``TypeError``
    or ``ValueError`` only for objects JSON cannot hold). ``received_at`` (the fallback
    time) is read once for the whole batch: without it, the time of this call."""
    if received_at is None or received_at.tzinfo:
        fallback_ts = (received_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    else:
        fallback_ts = received_at
    batch_ctx: Mapping[str, Any] = context or _EMPTY
    names: dict[Any, str] = {}
    urls: dict[str, dict[str, str]] = {}
    devices: dict[Any, str | None] = {}
    currencies: dict[str, str | None] = {}
    out: list[dict[str, Any] | Failure] = []
    for message in messages:
        try:
            out.append(_convert(message, batch_ctx, fallback_ts, names, urls, devices, currencies))
        except (_Slow, *FAILURES, OSError, AttributeError):
            try:
                out.append(to_canonical(message, received_at=fallback_ts, context=context))
            except FAILURES as exc:
                out.append(exc)
    return out


def _convert(
    message: Any,
    batch_ctx: Mapping[str, Any],
    fallback_ts: datetime,
    names: dict[Any, str],
    urls: dict[str, dict[str, str]],
    devices: dict[Any, str | None],
    currencies: dict[str, str | None],
) -> dict[str, Any]:
    if type(message) is not dict:
        raise _Slow
    get = message.get
    mtype = get("type")
    if mtype not in MESSAGE_TYPES:
        raise _Slow
    own = get("context")
    if own is None or own == {}:
        ctx = batch_ctx
    elif type(own) is dict:
        ctx = {**batch_ctx, **own} if batch_ctx else own
    else:
        raise _Slow
    props = get("traits" if mtype in ("identify", "group") else "properties")
    if props is None:
        props = {}
    elif type(props) is dict:
        props = props.copy()
    else:
        raise _Slow

    user_id = get("userId")
    if type(user_id) is not str or not user_id:
        user_id = _fast_text(user_id)
    anonymous_id = get("anonymousId")
    if type(anonymous_id) is not str or not anonymous_id:
        anonymous_id = _fast_text(anonymous_id)
    if mtype == "alias":
        anonymous_id = _fast_text(get("previousId")) or anonymous_id
    if user_id is None and anonymous_id is None:
        raise _Slow

    name = get("event")
    if mtype == "track":
        event = names.get(name) if type(name) is str else None
        if event is None:
            if type(name) is not str or not name.strip():
                raise _Slow
            event = event_name(mtype, name, props)
            if name != "Checkout Step Completed":  # the only name whose event depends on properties
                names[name] = event
    else:
        event = event_name(mtype, name, props)

    ts_value = get("timestamp")
    if ts_value is None or ts_value == "":
        for key in _TIME_KEYS[1:]:
            ts_value = get(key)
            if ts_value is not None and ts_value != "":
                break
        else:
            ts_value = None
    ts = fallback_ts if ts_value is None else _timestamp(ts_value)  # errors: the reference's

    page_ctx = ctx.get("page")
    if type(page_ctx) is not dict:
        page_ctx = _section(ctx, "page")
    url = _fast_text(page_ctx.get("url"))
    referrer = _fast_text(page_ctx.get("referrer"))
    if mtype == "page":
        url = _fast_text(props.get("url")) or url
        referrer = _fast_text(props.get("referrer")) or referrer
    campaign = _section(ctx, "campaign")
    utm = _utm(url, urls) if url is not None else _EMPTY
    device_ctx = ctx.get("device")
    device = _device(
        None if device_ctx is None else _fast_text(_section(ctx, "device").get("type")),
        ctx.get("userAgent"),
        devices,
    )
    location = _section(ctx, "location")

    order_id = value = currency = None
    items = None
    if mtype == "track":
        pop = props.pop
        order_id = _fast_text(pop("order_id", None))
        raw_currency = pop("currency", None)
        if type(raw_currency) is str:
            if raw_currency not in currencies:
                currencies[raw_currency] = raw_currency.upper() or None
            currency = currencies[raw_currency]
        else:
            currency_text = _text(raw_currency)
            currency = currency_text.upper() if currency_text else None
        for key in ("revenue", "value", "total"):
            amount = props.get(key)
            if amount is not None and amount != "":
                value = _amount(amount, key)
                break
        products = pop("products", None)
        if products is not None:
            if type(products) is not list:
                raise _Slow
            items = [_product(p) for p in products]
        elif name in ONE_PRODUCT_EVENTS:
            item = _product(props)
            if any(v is not None for v in item.values()):
                items = [item]
                if value is None and item["price"] is not None:
                    value = item["price"] * (
                        item["quantity"] if item["quantity"] is not None else 1
                    )
                    if abs(value) >= MAX_VALUE:
                        raise _Slow
        pop("revenue", None)
        pop("value", None)
        if name != event:
            props["source_event"] = name
        if event == EXPOSURE_EVENT:
            props = as_exposure(str(name), props)[1]
    elif mtype in ("identify", "group", "alias") and get("groupId") is not None:
        props["group_id"] = get("groupId")
    if mtype == "page" and get("name"):
        props.setdefault("name", get("name"))

    session = _fast_text(ctx.get("sessionId")) or (
        _fast_text(props.pop("session_id", None)) if props else None
    )
    return {
        "event_id": _fast_text(get("messageId")),
        "ts": ts,
        "event": event,
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "session_id": session,
        "channel": None,
        "utm_source": (_fast_text(campaign.get("source")) if campaign else None)
        or utm.get("utm_source"),
        "utm_medium": (_fast_text(campaign.get("medium")) if campaign else None)
        or utm.get("utm_medium"),
        "utm_campaign": (_fast_text(campaign.get("name")) if campaign else None)
        or utm.get("utm_campaign"),
        "referrer": referrer,
        "page": url,
        "device": device,
        "country": _fast_text(location.get("country")) if location else None,
        "order_id": order_id,
        "value": None if value is None else round(value, 2),
        "currency": currency,
        "items": items,
        "properties": encode_properties(props) if props else None,
    }
