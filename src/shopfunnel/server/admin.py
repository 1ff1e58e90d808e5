"""Who is the admin: a dashboard session cookie, or the admin token as a Bearer header.

A write key is never enough: admin routes answer 401 to it.
"""

from __future__ import annotations

import ipaddress

from fastapi import HTTPException, Request

from shopfunnel.server.state import ServerState

COOKIE = "sf_session"


def state_of(request: Request) -> ServerState:
    return request.app.state.server


def is_admin(request: Request) -> bool:
    state = state_of(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return state.is_admin_token(header[7:].strip(), request.client.host if request.client else "?")
    return state.sessions.valid(request.cookies.get(COOKIE))


def require_admin(request: Request) -> None:
    """FastAPI dependency for the JSON API: 401 unless the caller is the admin."""
    if not is_admin(request):
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
