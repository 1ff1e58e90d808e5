"""Signing outbound webhooks, and the check a receiver runs.

Every request shopfunnel sends to a webhook endpoint carries four headers:

=============================  ============================================================
``X-Shopfunnel-Webhook-Id``    the entry's idempotency key: the same on every attempt and on
                               every endpoint. A receiver stores the keys it has handled and
                               ignores a key it has seen (a resend after a timeout or a crash).
``X-Shopfunnel-Topic``         ``audience.entered``, ``audience.exited``, …
``X-Shopfunnel-Timestamp``     when this attempt was signed, in whole seconds since 1970 (UTC)
``X-Shopfunnel-Signature``     ``sha256=`` + lower-case hex of HMAC-SHA256(secret, ``t.body``)
=============================  ============================================================

The signed string is the timestamp's decimal digits, one ``.``, then the raw request body
bytes, exactly as received (verify before parsing the JSON). Because the timestamp is signed,
a receiver refuses a request whose timestamp is further than a replay window (five minutes by
default) from its own clock, so a captured request cannot be played again later; within the
window, the idempotency key makes a replay harmless.

A receiver in Python::

    from shopfunnel.webhooks import verify_signature, SignatureError

    try:
        verify_signature(SECRET, raw_body, request.headers)
    except SignatureError:
        return 401
    key = request.headers["X-Shopfunnel-Webhook-Id"]
    if already_handled(key):
        return 200          # a resend: do nothing, but say yes so it stops
    handle(json.loads(raw_body)); remember(key); return 200

In another language: ``hex(hmac_sha256(key=secret, msg=timestamp + "." + body))`` compared
in constant time with the part after ``sha256=``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from shopfunnel.errors import ShopfunnelError

ID_HEADER = "X-Shopfunnel-Webhook-Id"
TOPIC_HEADER = "X-Shopfunnel-Topic"
TIMESTAMP_HEADER = "X-Shopfunnel-Timestamp"
SIGNATURE_HEADER = "X-Shopfunnel-Signature"
SCHEME = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ShopfunnelError):
    """A webhook request is not signed by the secret, or is outside the replay window."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 keyed by ``secret`` over ``b"<timestamp>." + body``."""
    mac = hmac.new(
        secret.encode("utf-8"), f"{int(timestamp)}.".encode("ascii") + body, hashlib.sha256
    )
    return SCHEME + mac.hexdigest()


def signed_headers(
    secret: str, *, idempotency_key: str, topic: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The headers of one delivery attempt (see the module docstring)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "Content-Type": "application/json",
        ID_HEADER: idempotency_key,
        TOPIC_HEADER: topic,
        TIMESTAMP_HEADER: str(t),
        SIGNATURE_HEADER: signature(secret, t, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def verify_signature(
    secrets: str | Iterable[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a received webhook; return its timestamp, or raise :class:`SignatureError`.

    ``secrets`` is the endpoint's secret, or several while one is being rotated (any one
    may match). ``body`` is the raw request body. The request is refused when a header is
    missing, the timestamp is not a whole number or is more than ``tolerance_seconds`` away
    from ``now`` (default: this machine's clock), or no secret gives the same signature
    (compared in constant time).
    """
    stamp = _header(headers, TIMESTAMP_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if stamp is None or given is None:
        raise SignatureError(
            f"the request has no {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header: it was not "
            "sent by shopfunnel"
        )
    if not stamp.isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER} must be whole seconds since 1970")
    t = int(stamp)
    clock = time.time() if now is None else now
    if abs(clock - t) > tolerance_seconds:
        raise SignatureError(
            f"the request was signed {abs(clock - t):.0f} s from this machine's clock, outside "
            f"the {tolerance_seconds:.0f} s replay window: check both clocks (NTP)"
        )
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    ok = False
    for secret in keys:  # every secret is tried, so timing does not say which one matched
        ok |= hmac.compare_digest(signature(secret, t, body).encode(), given.strip().encode())
    if not ok:
        raise SignatureError("the signature does not match: wrong secret, or the body was changed")
    return t
