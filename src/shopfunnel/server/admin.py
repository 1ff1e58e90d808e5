"""Who is the admin: a dashboard session cookie, or the admin token as a Bearer header.

A write key is never enough: admin routes answer 401 to it. While failed attempts from
the caller's address (or for the account) are backing off, a token is not checked at all
and the answer is 429 with ``Retry-After`` (:class:`shopfunnel.server.limits.LoginGuard`).
"""

from __future__ import annotations

import ipaddress
import math

from fastapi import HTTPException, Request

from shopfunnel.server import auth
from shopfunnel.server.state import AdminCheck, ServerState

COOKIE = "sf_session"
DEVICE_COOKIE = "sf_device"


def state_of(request: Request) -> ServerState:
    return request.app.state.server


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


def trusted_device(request: Request) -> str | None:
    """The id of the browser's signed device cookie (set at an earlier log-in), or None."""
    return auth.device_of(state_of(request).device_secret, request.cookies.get(DEVICE_COOKIE))


def check_password(request: Request, password: str) -> AdminCheck:
    """A log-in attempt with ``password`` from this request's address and device."""
    return state_of(request).check_admin_token(
        password, client_address(request), trusted_device(request)
    )


def admin_check(request: Request) -> AdminCheck:
    """Whether the caller is the admin (checked once per request: a failure counts once)."""
    cached = getattr(request.state, "admin_check", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        result = check_password(request, header[7:].strip())
    else:
        result = AdminCheck(state_of(request).sessions.valid(request.cookies.get(COOKIE)))
    request.state.admin_check = result
    return result


def is_admin(request: Request) -> bool:
    return admin_check(request).ok


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def require_admin(request: Request) -> None:
    """FastAPI dependency for the JSON API: 401 unless the caller is the admin, 429 while
    failed attempts from the caller's address back off."""
    check = admin_check(request)
    if check.retry_after > 0:
        raise HTTPException(
            status_code=429,
            detail="too many failed admin attempts from this address: wait and try again",
            headers={"Retry-After": retry_after(check.retry_after)},
        )
    if not check.ok:
        raise HTTPException(
            status_code=401,
            detail="admin authentication required: send 'Authorization: Bearer <admin token>' "
            "(a write key cannot read data)",
            headers={"WWW-Authenticate": 'Bearer realm="shopfunnel"'},
        )


def cookie_secure(request: Request) -> bool:
    """Secure cookies, except over plain HTTP to a loopback address (local use)."""
    configured = state_of(request).settings.cookie_secure
    if configured is not None:
        return configured
    if request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https":
        return True
    host = request.url.hostname or ""
    try:
        return not (host == "localhost" or ipaddress.ip_address(host).is_loopback)
    except ValueError:
        return True
