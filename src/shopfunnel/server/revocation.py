"""Revoking a write key from the command line while ``shopfunnel serve`` holds the store.

DuckDB lets one process open a store file for writing, so ``shopfunnel keys revoke``
cannot reach ``write_keys`` while the server runs. Instead it drops a request into the
store's control folder (``<store>.control/``, made private to the user) and waits for
the server's answer; the server looks at the folder every :data:`POLL_SECONDS`, revokes
under its own write lock, refreshes the keys it accepts and writes the answer. So a
revocation from the command line takes effect within a fraction of a second, and the
command says whether it did (see docs/adr/0074).

Whoever can write files beside the store can already replace the store itself, so the
folder needs no password; the server still ignores request files owned by another user,
and a request can only revoke (never create or reveal) a key.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from shopfunnel.errors import ConfigError, StoreError

log = logging.getLogger("shopfunnel.server")
POLL_SECONDS = 0.2
REQUEST, ANSWER = ".revoke", ".answer"
MAX_PREFIX = 100


def control_dir(store_path: str | os.PathLike[str]) -> Path:
    """The control folder of the store at ``store_path``."""
    return Path(str(store_path) + ".control")


def _write_atomically(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def request_revocation(
    store_path: str | os.PathLike[str], prefix: str, *, timeout_seconds: float = 5.0
) -> int:
    """Ask the server running on ``store_path`` to revoke the keys starting with ``prefix``;
    the number revoked. Raises :class:`ConfigError` when the server refuses (no such key)
    and :class:`StoreError` when no server answers within ``timeout_seconds`` (the request
    is withdrawn, so nothing happens later by surprise)."""
    folder = control_dir(store_path)
    folder.mkdir(mode=0o700, exist_ok=True)
    name = secrets.token_hex(8)
    request, answer = folder / (name + REQUEST), folder / (name + ANSWER)
    _write_atomically(request, {"revoke": prefix})
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if answer.exists():
            break
        time.sleep(POLL_SECONDS / 4)
    else:
        try:
            request.unlink()  # withdrawn: no server took it
        except FileNotFoundError:  # taken just now: its answer follows at once
            for _ in range(50):
                if answer.exists():
                    break
                time.sleep(0.1)
        if not answer.exists():
            raise StoreError(
                f"the store {str(store_path)!r} is open in another program that did not take the "
                f"revocation within {timeout_seconds:g} s: if `shopfunnel serve` runs on it, check "
                "that it runs this version; otherwise close the other program and run again"
            )
    reply = json.loads(answer.read_text(encoding="utf-8"))
    answer.unlink()
    if "error" in reply:
        raise ConfigError(str(reply["error"]))
    return int(reply["revoked"])


def serve_requests(store_path: str | os.PathLike[str], revoke: Callable[[str], int]) -> int:
    """Answer every pending request in the control folder with ``revoke(prefix)``; the
    number of requests answered. Called by the server every :data:`POLL_SECONDS`."""
    folder = control_dir(store_path)
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(REQUEST)]
    except FileNotFoundError:
        return 0
    answered = 0
    for entry in entries:
        path = Path(entry.path)
        try:
            if hasattr(os, "getuid") and entry.stat().st_uid != os.getuid():
                log.warning("ignored a revocation request owned by another user in %s", folder)
                continue
            body = json.loads(path.read_text(encoding="utf-8"))
            path.unlink()
        except (OSError, ValueError):
            continue  # withdrawn or half-written: it is not ours to answer
        prefix = body.get("revoke") if isinstance(body, dict) else None
        reply: dict[str, object]
        if not isinstance(prefix, str) or not prefix or len(prefix) > MAX_PREFIX:
            reply = {
                "error": "a revocation request names a key prefix, as `shopfunnel keys list` shows it"
            }
        else:
            try:
                reply = {"revoked": revoke(prefix)}
            except ConfigError as exc:
                reply = {"error": str(exc)}
        _write_atomically(path.with_name(path.name.removesuffix(REQUEST) + ANSWER), reply)
        answered += 1
    return answered
