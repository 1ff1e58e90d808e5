"""From a request body to spool lines: parse, check the shape, convert every event.

:func:`prepare` is a pure function of the body, so the collector can run it in its own
thread or, with ``convert_workers`` > 0, in worker processes: parsing JSON and converting
Segment messages is the Python work of the collector, and in worker processes it runs
beside the event loop (which keeps the HTTP handling, the keys, the rate limits and the
spool) instead of behind it (see docs/adr/0077). The answer a request gets is the same
either way: the collector answers in the order of its docstring whatever was computed first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from shopfunnel.server.events import incoming_many

SINGLE_TYPES = ("track", "page", "identify", "screen", "alias", "group")
MAX_EVENTS_PER_BATCH = 10_000


@dataclass(frozen=True)
class Prepared:
    """What a body holds. ``parse_error``: not JSON (400). ``body_key``: its ``writeKey``.
    ``shape_error``: (status, message) when it is JSON of the wrong shape. ``count``: the
    messages in it (what the rate limit counts). ``data``: the accepted events as spool
    lines, ``accepted`` of them; ``rejected``: the refused ones (index, field, reason)."""

    parse_error: str | None = None
    body_key: str | None = None
    shape_error: tuple[int, str] | None = None
    count: int = 0
    data: bytes = b""
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def prepare(
    body: bytes, kind: str, received_at: datetime, max_event_bytes: int, *, convert: bool = True
) -> Prepared:
    """Parse ``body`` (a request to ``/v1/<kind>``), check its shape and convert its events
    (with ``convert=False`` only parse and check: what the collector needs to know the
    key and the count before it spends the conversion on a request it may refuse)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Prepared(parse_error=f"the body is not valid JSON ({exc})")
    body_key = payload.get("writeKey") if isinstance(payload, Mapping) else None
    body_key = body_key if isinstance(body_key, str) else None
    if not isinstance(payload, Mapping):
        return Prepared(body_key=body_key, shape_error=(422, "the body must be a JSON object"))
    context = payload.get("context") if kind == "batch" else None
    if context is not None and not isinstance(context, Mapping):
        return Prepared(body_key=body_key, shape_error=(422, "context must be an object"))
    if kind == "batch":
        messages = payload.get("batch")
        if not isinstance(messages, list) or not messages:
            return Prepared(
                body_key=body_key,
                shape_error=(
                    422,
                    'the body must be {"batch": [event, ...]} with at least one event',
                ),
            )
        if len(messages) > MAX_EVENTS_PER_BATCH:
            return Prepared(
                body_key=body_key,
                shape_error=(413, f"at most {MAX_EVENTS_PER_BATCH} events per batch"),
            )
    else:
        message = dict(payload)
        message.pop("writeKey", None)
        message.setdefault("type", kind)
        if message["type"] != kind:
            return Prepared(
                body_key=body_key,
                shape_error=(422, f"/v1/{kind} takes {kind} messages, not {message['type']!r}"),
            )
        messages = [message]
    if not convert:
        return Prepared(body_key=body_key, count=len(messages))
    accepted, rejected = incoming_many(
        messages, received_at=received_at, context=context, max_event_bytes=max_event_bytes
    )
    line = orjson.OPT_APPEND_NEWLINE
    data = b"".join([orjson.dumps(r, option=line) for r in accepted])
    return Prepared(
        body_key=body_key, count=len(messages), data=data, accepted=len(accepted), rejected=rejected
    )


def warm_up() -> None:
    """Nothing: submitted once when a worker pool starts, so the first request does not
    wait for the workers to import this module."""


def exit_with_parent(parent: int, every_seconds: float = 0.5) -> None:
    """A converter worker's initializer: a thread that ends the worker once ``parent`` (the
    server) is gone. A server killed outright (``kill -9``, the OOM killer) cannot shut its
    pool down, and the workers, waiting on a queue nobody writes to, would live on."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_seconds)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
