"""The OpenAPI document: every answer a client can get, with its body.

FastAPI describes the 200s and its own 422; this module adds, for each kind of route,
the errors the server really sends and the shape of their bodies:

- collector routes (write key): 400, 401, 403, 413, 422, 429, 503 as ``CollectorError``
  (``success``, ``error``, ``code``, ``message``, and ``accepted``/``rejected`` on a 400);
- store-platform webhooks (signed): 400, 401, 413, 422 as ``CollectorError``;
- admin routes: 401, 422, 429 (400 when they take a body; 404/503 where a route says so) as ``Error``
  (``{"detail": text}``, or FastAPI's list of parameter errors on a 422);
- 429 and 503 carry ``Retry-After``; routes with ``?format=csv`` also answer ``text/csv``.

The fuzzing test (tests/server/test_server_fuzz.py) checks answers against this document.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "description": "What went wrong and what to do; on a 422 from parameter checks, a list of errors.",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
        }
    },
}
COLLECTOR_ERROR = {
    "type": "object",
    "required": ["success", "error", "code", "message"],
    "properties": {
        "success": {"type": "boolean", "enum": [False]},
        "error": {"type": "string"},
        "code": {
            "type": "string",
            "enum": [
                "bad_request",
                "unauthorized",
                "forbidden",
                "too_large",
                "invalid",
                "rate_limited",
                "unavailable",
                "error",
            ],
        },
        "message": {
            "type": "string",
            "description": "The same text as error (Segment's libraries read it).",
        },
        "accepted": {"type": "integer"},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "field": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
COLLECTOR_CODES = {
    "400": "Not JSON, or no event could be accepted (each rejected event with its index and reason)",
    "401": "Missing, unknown or revoked write key",
    "403": "Origin not allowed",
    "413": "Body too large (as sent or inflated), or more events than the key's burst",
    "422": "JSON of the wrong shape",
    "429": "The write key's rate limit (counted in events) is spent: retry after Retry-After",
    "503": "The writer is behind: retry after Retry-After",
}
WEBHOOK_CODES = ("400", "401", "413", "422")
ADMIN_CODES = {
    "401": "Admin authentication required (a write key is never enough)",
    "422": "A parameter is wrong: the reason (or FastAPI's list of parameter errors)",
    "429": "Failed admin attempts from this address are backing off: retry after Retry-After",
}
OTHER_CODES = {"404": "Not found", "503": "Busy: retry after Retry-After"}


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


def _answer(description: str, schema_name: str, code: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": _json(schema_name)}
    if code in ("429", "503"):
        answer["headers"] = RETRY_AFTER
    return answer


def document_answers(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers, their bodies, ``Retry-After`` and CSV to ``schema`` (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR
    components["CollectorError"] = COLLECTOR_ERROR
    for path, operations in schema.get("paths", {}).items():
        for op in operations.values():
            responses = op.setdefault("responses", {})
            security = str(op.get("security", ""))
            if "writeKey" in security:
                for code, description in COLLECTOR_CODES.items():
                    responses[code] = _answer(description, "CollectorError", code)
            elif path.startswith("/v1/webhooks/") and "admin" not in security:
                for code in WEBHOOK_CODES:
                    responses[code] = _answer(
                        responses.get(code, {}).get("description", code), "CollectorError", code
                    )
            elif "admin" in security:
                for code, description in ADMIN_CODES.items():
                    responses[code] = _answer(description, "Error", code)
                if "requestBody" in op:  # FastAPI answers a body it cannot parse with 400
                    responses["400"] = _answer("The body cannot be read (not JSON)", "Error", "400")
                for code, description in OTHER_CODES.items():
                    if code in responses:
                        responses[code] = _answer(
                            responses[code].get("description", description), "Error", code
                        )
            if any(p.get("name") == "format" for p in op.get("parameters", [])):
                ok = next((c for c in ("200", "201") if c in responses), None)
                if ok is not None:
                    responses[ok].setdefault("content", {})["text/csv"] = {
                        "schema": {
                            "type": "string",
                            "description": "The table as CSV (with ?format=csv); text cells that "
                            "start like a spreadsheet formula begin with an apostrophe.",
                        }
                    }
    return schema
