"""Secrets of the server: the admin password, write keys and dashboard sessions.

- The admin password (or token) is kept only as a salted scrypt hash
  (``scrypt$n$r$p$salt$hash``), in the store's ``server_settings`` table; the clear
  text is never written or logged.
- Write keys are random 32-byte tokens shown once when created; the store keeps their
  SHA-256 (they are long random secrets, so a fast hash is enough) in ``write_keys``.
  A write key can only send events.
- Dashboard sessions are random tokens held in memory (a restart logs everyone out),
  sent as an ``HttpOnly``, ``SameSite=Strict`` cookie.
- A browser that logged in once gets a long-lived **device cookie**: a random id signed
  with a secret kept in ``server_settings``. It survives restarts and exempts that browser
  from the back-off strangers' failed log-ins cause (:class:`shopfunnel.server.limits.LoginGuard`);
  it grants nothing by itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.store.db import Database

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
KEY_PREFIX = "sfk_"
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` as ``scrypt$n$r$p$salt$hash`` (base64)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(
            f"the admin password is too short ({len(password)} characters): use at least "
            f"{MIN_PASSWORD_LENGTH}, e.g. a token from `python -c 'import secrets; print(secrets.token_urlsafe())'`"
        )
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password` (constant time)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# -- storage in the store's own file (the events table is never touched) --------------------
def ensure_tables(db: Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS server_settings (key VARCHAR PRIMARY KEY, value VARCHAR)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS write_keys (key_hash VARCHAR PRIMARY KEY, prefix VARCHAR, "
        "name VARCHAR, created_at TIMESTAMP, revoked BOOLEAN DEFAULT false)"
    )


def stored_admin_hash(db: Database) -> str | None:
    ensure_tables(db)
    return db.scalar("SELECT value FROM server_settings WHERE key = 'admin_password_hash'")


def store_admin_hash(db: Database, password_hash: str) -> None:
    ensure_tables(db)
    db.execute(
        "INSERT OR REPLACE INTO server_settings VALUES ('admin_password_hash', ?)", [password_hash]
    )


def device_secret(db: Database) -> bytes:
    """The secret that signs device cookies, made on first use and kept in the store."""
    ensure_tables(db)
    stored = db.scalar("SELECT value FROM server_settings WHERE key = 'device_secret'")
    if stored is None:
        stored = secrets.token_hex(32)
        db.execute("INSERT OR REPLACE INTO server_settings VALUES ('device_secret', ?)", [stored])
    return bytes.fromhex(stored)


def _device_signature(secret: bytes, device: str) -> str:
    return hmac.new(secret, b"device\x00" + device.encode(), hashlib.sha256).hexdigest()


def new_device_cookie(secret: bytes) -> str:
    """A device cookie value: ``<random id>.<HMAC of the id>``."""
    device = secrets.token_urlsafe(18)
    return f"{device}.{_device_signature(secret, device)}"


def device_of(secret: bytes, cookie: str | None) -> str | None:
    """The device id of a cookie signed with ``secret``, or None when it is not."""
    if not cookie or cookie.count(".") != 1 or len(cookie) > 200:
        return None
    device, signature = cookie.split(".")
    return device if hmac.compare_digest(signature, _device_signature(secret, device)) else None


def create_write_key(db: Database, name: str = "default") -> str:
    """Create a write key, store its hash, and return the key (shown only this once)."""
    ensure_tables(db)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    db.execute(
        "INSERT INTO write_keys VALUES (?, ?, ?, ?, false)",
        [key_digest(key), key[: len(KEY_PREFIX) + 6], name, datetime.now(UTC).replace(tzinfo=None)],
    )
    return key


def list_write_keys(db: Database) -> pd.DataFrame:
    """Write keys without their secret: prefix, name, created_at, revoked."""
    ensure_tables(db)
    return db.df("SELECT prefix, name, created_at, revoked FROM write_keys ORDER BY created_at")


def revoke_write_key(db: Database, prefix: str) -> int:
    """Mark the active write keys starting with ``prefix`` (as `keys list` shows it) revoked;
    the number revoked. Raises :class:`ConfigError` when none is active."""
    ensure_tables(db)
    n = int(
        db.scalar("SELECT count(*) FROM write_keys WHERE prefix = ? AND NOT revoked", [prefix]) or 0
    )
    if n == 0:
        raise ConfigError(f"no active write key starts with {prefix!r}: see `shopfunnel keys list`")
    db.execute("UPDATE write_keys SET revoked = true WHERE prefix = ?", [prefix])
    return n


def active_key_digests(db: Database) -> dict[str, str]:
    ensure_tables(db)
    return dict(db.rows("SELECT key_hash, name FROM write_keys WHERE NOT revoked"))


@dataclass
class Sessions:
    """Dashboard login sessions: random tokens with an expiry, in memory."""

    ttl_seconds: float = 12 * 3600

    def __post_init__(self) -> None:
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def new(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[key_digest(token)] = time.monotonic() + self.ttl_seconds
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._tokens.get(key_digest(token))
            if expiry is None:
                return False
            if expiry < time.monotonic():
                del self._tokens[key_digest(token)]
                return False
            return True

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._tokens.pop(key_digest(token), None)


# -- store-platform webhook secrets (WooCommerce, Shopify) ------------------------------------
# Kept in clear: the server needs them to compute the platforms' HMACs. Anyone who can read
# the store file can read them, as with the outbound webhook secrets.
PLATFORMS = ("woocommerce", "shopify")


def _ensure_platform_secrets(db: Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS platform_webhook_secrets (platform VARCHAR NOT NULL, "
        "name VARCHAR NOT NULL, secret VARCHAR NOT NULL, created_at TIMESTAMP, "
        "PRIMARY KEY (platform, name))"
    )


def _check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise ConfigError(f"platform {platform!r} is not known: use {' or '.join(PLATFORMS)}")


def set_platform_secret(db: Database, platform: str, secret: str, name: str = "default") -> None:
    """Keep the webhook secret of a WooCommerce webhook or the Shopify app's client secret
    under ``name`` (replacing one of the same name). Several may be kept per platform (one
    per WooCommerce webhook, or old and new during a rotation): a signature by any is valid."""
    _check_platform(platform)
    if len(secret.strip()) < 8:
        raise ConfigError("the secret is too short (under 8 characters): copy the whole secret")
    _ensure_platform_secrets(db)
    db.execute(
        "INSERT OR REPLACE INTO platform_webhook_secrets VALUES (?, ?, ?, ?)",
        [platform, name, secret.strip(), datetime.now(UTC).replace(tzinfo=None)],
    )


def platform_secrets(db: Database) -> dict[str, list[str]]:
    """Every kept secret, by platform."""
    _ensure_platform_secrets(db)
    found: dict[str, list[str]] = {p: [] for p in PLATFORMS}
    for platform, secret in db.rows("SELECT platform, secret FROM platform_webhook_secrets"):
        found.setdefault(platform, []).append(secret)
    return found


def list_platform_secrets(db: Database) -> pd.DataFrame:
    """The kept secrets without their value: platform, name, a fingerprint (first 8 hex of
    its SHA-256, to tell two apart), created_at."""
    _ensure_platform_secrets(db)
    return db.df(
        "SELECT platform, name, left(sha256(secret), 8) AS fingerprint, created_at "
        "FROM platform_webhook_secrets ORDER BY platform, created_at"
    )


def remove_platform_secret(db: Database, platform: str, name: str = "default") -> None:
    _check_platform(platform)
    _ensure_platform_secrets(db)
    if not db.scalar(
        "SELECT count(*) FROM platform_webhook_secrets WHERE platform = ? AND name = ?",
        [platform, name],
    ):
        raise ConfigError(
            f"no {platform} secret named {name!r}: see `shopfunnel keys platform-secrets`"
        )
    db.execute(
        "DELETE FROM platform_webhook_secrets WHERE platform = ? AND name = ?", [platform, name]
    )
