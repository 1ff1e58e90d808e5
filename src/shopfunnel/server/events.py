"""Checking one incoming event against the canonical schema, in Python, per event.

The collector must answer each event with accepted or rejected (and why) before it
acknowledges a batch, so the checks the store runs in bulk on a load
(:mod:`shopfunnel.store.store`) are mirrored here for one JSON object, from the same
declaration (:data:`shopfunnel.store.schema.COLUMNS`): unknown fields are refused, ``ts`` and
``event`` are required, one of ``anonymous_id`` / ``user_id`` is required, each value
must be readable as its column's type. The store validates the rows again when the
background writer loads them, so a gap between the two can only drop a row with a
logged reason, never write a bad one.

Incoming items are either canonical events (no ``type`` field) or Segment/RudderStack
messages (with ``type``), mapped by :func:`shopfunnel.ingest.segment.to_canonical`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from shopfunnel.ingest.segment import MessageError, parse_timestamp, to_canonical
from shopfunnel.ingest.segment_bulk import to_canonical_many
from shopfunnel.store import schema

ITEM_FIELDS = schema.ITEM_FIELDS
MAX_TEXT = 8192
MAX_VALUE = 10**16


class EventError(ValueError):
    def __init__(self, reason: str, column: str = "event"):
        super().__init__(reason)
        self.reason = reason
        self.column = column


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool | dict | list):
        raise EventError(f"{name} must be text (got {type(value).__name__})", name)
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TEXT:
        raise EventError(f"{name} is longer than {MAX_TEXT} characters", name)
    return text or None


def _money(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise EventError(f"{name} must be a number (got {type(value).__name__})", name)
    try:
        number = float(value)
    except ValueError:
        raise EventError(f"{name} must be a number (got {value!r})", name) from None
    if number != number or abs(number) >= MAX_VALUE:
        raise EventError(f"{name} must be a finite number below 10^16 (got {value!r})", name)
    return f"{number:.2f}" if not isinstance(value, str) else value.strip()


def _items(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise EventError("items must be a JSON array of item objects", "items") from None
    if not isinstance(value, list):
        raise EventError(
            "items must be a list of {item_id, item_name, item_category, price, quantity}", "items"
        )
    out = []
    for item in value:
        if not isinstance(item, Mapping):
            raise EventError("each item must be an object", "items")
        unknown = [k for k in item if k not in ITEM_FIELDS]
        if unknown:
            raise EventError(
                f"unknown item field(s) {unknown}: items take {', '.join(ITEM_FIELDS)}", "items"
            )
        price = item.get("price")
        quantity = item.get("quantity")
        if price is not None and (
            isinstance(price, bool)
            or not isinstance(price, int | float)
            or price != price
            or abs(price) > 1e300
        ):
            raise EventError(f"item price must be a number (got {price!r})", "items")
        if quantity is not None and (
            isinstance(quantity, bool) or not isinstance(quantity, int) or abs(quantity) > 2**31 - 1
        ):
            raise EventError(f"item quantity must be a whole number (got {quantity!r})", "items")
        out.append(
            {
                "item_id": _text("item_id", item.get("item_id")),
                "item_name": _text("item_name", item.get("item_name")),
                "item_category": _text("item_category", item.get("item_category")),
                "price": None if price is None else float(price),
                "quantity": quantity,
            }
        )
    return out


def _properties(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise EventError("properties must be a JSON object", "properties") from None
    if not isinstance(value, Mapping):
        raise EventError("properties must be an object", "properties")
    return json.dumps(value, ensure_ascii=False, allow_nan=False) if value else None


TEXT_COLUMNS = tuple(c.name for c in schema.COLUMNS if c.sql_type == "VARCHAR")
REQUIRED = tuple(c.name for c in schema.COLUMNS if c.required)
_SPECIAL = {"ts", "value", "items", "properties"}
assert set(schema.COLUMN_NAMES) == set(TEXT_COLUMNS) | _SPECIAL


def canonical_event(obj: Any) -> dict[str, Any]:
    """Check one canonical event object; return the record to spool.

    The record has every canonical column: ``ts`` as ISO 8601 text in naive UTC,
    ``value`` as decimal text, ``items`` as a list of dicts and ``properties`` as JSON text.
    Raises :class:`EventError` naming the column and the reason.
    """
    if not isinstance(obj, Mapping):
        raise EventError("an event must be a JSON object")
    unknown = [k for k in obj if k not in schema.BY_NAME]
    if unknown:
        raise EventError(
            f"unknown field(s) {', '.join(map(repr, unknown[:5]))}: canonical events take "
            f"{', '.join(schema.COLUMN_NAMES)} (send a Segment message with a 'type' instead)",
            str(unknown[0]),
        )
    for name in REQUIRED:
        value = obj.get(name)
        if value is None or value == "":
            raise EventError(f"{name} is required and missing", name)
    record: dict[str, Any] = {}
    for name in TEXT_COLUMNS:
        value = obj.get(name)
        if value is None or (type(value) is str and value and len(value) <= MAX_TEXT):
            record[name] = value
        else:
            record[name] = _text(name, value)
    ts = obj["ts"]
    try:
        record["ts"] = parse_timestamp(ts).isoformat()
    except (ValueError, OverflowError, OSError, TypeError):
        raise EventError(
            f"ts {ts!r} cannot be read as a timestamp: use ISO 8601, e.g. "
            "2024-03-15T10:30:00Z, or epoch seconds",
            "ts",
        ) from None
    value = obj.get("value")
    record["value"] = None if value is None else _money("value", value)
    items = obj.get("items")
    record["items"] = None if items is None else _items(items)
    props = obj.get("properties")
    record["properties"] = None if props is None else _properties(props)
    if record["anonymous_id"] is None and record["user_id"] is None:
        raise EventError("the event has neither anonymous_id nor user_id", "anonymous_id")
    return record


def from_message(
    message: Any, *, received_at: datetime, context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A Segment/RudderStack message as a spool record (see :func:`canonical_event`)."""
    try:
        event = to_canonical(message, received_at=received_at, context=context)
    except MessageError as exc:
        raise EventError(exc.reason, exc.column) from None
    return _spool_record(event)


def _spool_record(event: dict[str, Any]) -> dict[str, Any]:
    """A converted message as a spool record: ``ts`` as ISO text, ``value`` as decimal text,
    text columns within :data:`MAX_TEXT`."""
    event["ts"] = event["ts"].isoformat()
    if event["value"] is not None:
        event["value"] = f"{event['value']:.2f}"
    for name in ("event_id", "anonymous_id", "user_id", "session_id", "page", "referrer"):
        if event[name] is not None and len(event[name]) > MAX_TEXT:
            raise EventError(f"{name} is longer than {MAX_TEXT} characters", name)
    return event


def incoming(
    obj: Any, *, received_at: datetime, context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A spool record from a canonical event or (when it has ``type``) a Segment message."""
    if isinstance(obj, Mapping) and "type" in obj:
        return from_message(obj, received_at=received_at, context=context)
    return canonical_event(obj)


def _refusal(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, EventError):
        return exc.column, exc.reason
    if isinstance(exc, MessageError):
        return exc.column, exc.reason
    return "event", f"cannot be read: {exc}"


def incoming_many(
    messages: Sequence[Any],
    *,
    received_at: datetime,
    context: Mapping[str, Any] | None = None,
    max_event_bytes: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The spool records of a request's messages and the refused ones (``index``, ``field``,
    ``reason``), as checking each with :func:`incoming` (after refusing those whose JSON is
    over ``max_event_bytes``) would give; Segment/RudderStack messages are converted
    together (:func:`shopfunnel.ingest.segment_bulk.to_canonical_many`)."""
    results: list[dict[str, Any] | Exception | None] = [None] * len(messages)
    segment_at: list[int] = []
    for index, message in enumerate(messages):
        try:
            is_object = type(message) is dict or isinstance(message, Mapping)
            if is_object and len(orjson.dumps(message)) > max_event_bytes:
                raise EventError(f"the event is larger than {max_event_bytes} bytes", "event")
            if is_object and "type" in message:
                segment_at.append(index)
            else:
                results[index] = canonical_event(message)
        except (EventError, TypeError, ValueError, OverflowError) as exc:
            results[index] = exc
    if segment_at:
        converted = to_canonical_many(
            [messages[i] for i in segment_at], received_at=received_at, context=context
        )
        for index, event in zip(segment_at, converted, strict=True):
            if type(event) is dict:
                try:
                    results[index] = _spool_record(event)
                except EventError as exc:
                    results[index] = exc
            else:
                results[index] = event
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, result in enumerate(results):
        if type(result) is dict:
            accepted.append(result)
        else:
            assert isinstance(result, Exception)
            field, reason = _refusal(result)
            rejected.append({"index": index, "field": field, "reason": reason})
    return accepted, rejected
