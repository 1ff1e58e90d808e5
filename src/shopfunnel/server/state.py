"""What one running server holds: its settings, the store connections, spool and writer."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

from shopfunnel.errors import ConfigError, StoreError
from shopfunnel.server import auth, intake, revocation
from shopfunnel.server.limits import LoginGuard, RateLimiter
from shopfunnel.server.spool import Spool
from shopfunnel.server.writer import Writer
from shopfunnel.store import erase
from shopfunnel.store.erase import Erasure
from shopfunnel.store.store import Store
from shopfunnel.webhooks import RetryPolicy, deliver_due

log = logging.getLogger("shopfunnel.server")


@dataclass(frozen=True)
class ServerSettings:
    """Limits and options of the server (keyword arguments of :func:`create_app`).

    ``max_body_bytes``: a request body above this is refused with 413 (Segment's batch
    limit is 500 KB). ``max_event_bytes``: one event above this is rejected (Segment:
    32 KB). ``rate_events_per_second`` / ``rate_burst_events``: token bucket per write
    key, 429 with ``Retry-After`` above it. ``max_pending_events``: acknowledged events
    not yet in the store above which the collector answers 503 with ``Retry-After``.
    ``allowed_origins``: browser origins (``https://shop.example``) that may send
    events; a request with any other ``Origin`` gets 403. ``cookie_secure``: mark the
    session cookie ``Secure``; ``None`` means yes unless the request is plain HTTP to
    a loopback address (local development). ``durability``: ``"spool"`` (acknowledge
    once fsynced in the spool; a background writer loads the store) or
    ``"transaction"`` (acknowledge once the batch's own DuckDB transaction committed);
    see docs/adr/0070. ``webhook_interval_seconds``: how often the due webhook deliveries
    are sent (:func:`shopfunnel.webhooks.deliver_due`); 0 turns the server's deliveries off.
    ``schedule_interval_seconds``: how often the followed audiences are refreshed and the
    scheduled flows run, at the wall clock (:func:`shopfunnel.audiences.schedule.run_scheduled`;
    their entries, exits and messages go to the outbox); 0 turns it off.
    ``webhook_retry``: the deliveries' back-off (:class:`shopfunnel.webhooks.RetryPolicy`).
    ``max_webhook_body_bytes``: the largest WooCommerce or Shopify order webhook accepted
    (413 above; an order with hundreds of lines is a few hundred KB).
    ``writer_max_batch`` / ``writer_max_wait_seconds``: the background writer loads what the
    spool holds once ``writer_max_wait_seconds`` passed after the first waiting event (or
    ``writer_max_batch`` events wait): new events reach the store and the dashboard about
    that long after their acknowledgement. Each load costs a fixed part whatever its size
    (about twenty statements, scans of stored columns), so 2 s halves that part against 1 s
    (ADR 0184); a writer behind by more than ``writer_max_batch`` events takes up to 8 times
    as many a load, paying that part, which grows with the store, once for all (ADR 0195).
    ``convert_workers``: processes that parse request bodies and convert their events
    (:mod:`shopfunnel.server.intake`) beside the event loop; 0 does it in the server's own
    process (docs/adr/0077).
    """

    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 512 * 1024
    max_event_bytes: int = 32 * 1024
    rate_events_per_second: float = 50_000.0
    rate_burst_events: float = 100_000.0
    max_pending_events: int = 500_000
    writer_max_batch: int = 50_000
    writer_max_wait_seconds: float = 2.0
    session_timeout: str = "30m"
    cookie_secure: bool | None = None
    spool_dir: str | None = None
    fsync: bool = True
    durability: Literal["spool", "transaction"] = "spool"
    webhook_interval_seconds: float = 10.0
    schedule_interval_seconds: float = 60.0
    webhook_retry: RetryPolicy = RetryPolicy()
    max_webhook_body_bytes: int = 2 * 1024 * 1024
    convert_workers: int = 0


@dataclass(frozen=True)
class AdminCheck:
    """Whether a caller is the admin; when not, ``retry_after`` > 0 says the password was not
    even checked because failed attempts from this address (or for the account) are backing
    off, and for how many seconds."""

    ok: bool
    retry_after: float = 0.0


@dataclass
class ServerState:
    store_path: str
    admin_password_hash: str
    settings: ServerSettings
    extra_write_keys: tuple[str, ...] = ()
    store: Store | None = None
    reader: Store | None = None
    spool: Spool | None = None
    writer: Writer | None = None
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    read_lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: auth.Sessions = field(default_factory=auth.Sessions)
    key_digests: dict[str, str] = field(default_factory=dict)
    platform_secrets: dict[str, list[str]] = field(default_factory=dict)
    admin_tokens: set[str] = field(default_factory=set)
    _admin_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _deliverer: threading.Thread | None = None
    _scheduler: threading.Thread | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC).replace(tzinfo=None))
    _erase_lock: threading.Lock = field(default_factory=threading.Lock)
    _revocations: threading.Thread | None = None
    _converters: ProcessPoolExecutor | None = None
    device_secret: bytes = b""

    def __post_init__(self) -> None:
        s = self.settings
        self.rate = RateLimiter(s.rate_events_per_second, s.rate_burst_events)
        self.login_guard = LoginGuard()
        if s.convert_workers < 0:
            raise ConfigError(f"convert_workers={s.convert_workers} is not valid: use 0 or more")
        if s.durability not in ("spool", "transaction"):
            raise ConfigError(
                f"durability={s.durability!r} is not valid: use 'spool' or 'transaction'"
            )
        if self.store_path == ":memory:":
            raise ConfigError("the server needs a store file (--db shop.duckdb), not ':memory:'")

    # -- lifecycle ------------------------------------------------------------------
    def open(self) -> None:
        s = self.settings
        self.store = Store(self.store_path, session_timeout=s.session_timeout)
        auth.ensure_tables(self.store.db)
        self.device_secret = auth.device_secret(self.store.db)
        self.reader = Store(self.store_path, session_timeout=s.session_timeout)
        self.refresh_keys()
        spool_dir = Path(s.spool_dir) if s.spool_dir else Path(self.store_path + ".spool")
        self.spool = Spool(spool_dir, sync=s.fsync)
        self.writer = Writer(
            self.store,
            self.spool,
            store_lock=self.write_lock,
            max_batch=s.writer_max_batch,
            max_wait_seconds=s.writer_max_wait_seconds,
        )
        recovered = self.writer.recover()
        if recovered:
            log.info("recovered %d spooled event(s) into the store", recovered)
        self.writer.start()
        self.spool.start(self.writer.submit)
        if s.convert_workers > 0:
            self._converters = ProcessPoolExecutor(
                s.convert_workers,
                mp_context=get_context("spawn"),
                initializer=intake.exit_with_parent,
                initargs=(os.getpid(),),
            )
            for done in [self._converters.submit(intake.warm_up) for _ in range(s.convert_workers)]:
                done.result(120)
        if s.webhook_interval_seconds > 0:
            self._deliverer = threading.Thread(
                target=self._deliver_webhooks, name="webhooks", daemon=True
            )
            self._deliverer.start()
        if s.schedule_interval_seconds > 0:
            self._scheduler = threading.Thread(
                target=self._run_schedule, name="schedule", daemon=True
            )
            self._scheduler.start()
        self._revocations = threading.Thread(
            target=self._serve_revocations, name="revocations", daemon=True
        )
        self._revocations.start()

    def _serve_revocations(self) -> None:
        """Answer `shopfunnel keys revoke` run while the server holds the store
        (:mod:`shopfunnel.server.revocation`)."""
        while True:
            try:
                revocation.serve_requests(self.store_path, self.revoke_key)
            except Exception:
                log.exception("revocations: a round failed; trying again")
            if self._stop.wait(revocation.POLL_SECONDS):
                return

    def _deliver_webhooks(self) -> None:
        """Every ``webhook_interval_seconds``: send the due deliveries (store under the
        write lock; no lock while a request is in flight)."""
        while not self._stop.wait(self.settings.webhook_interval_seconds):
            try:
                while deliver_due(
                    self.store,  # type: ignore[arg-type]
                    lock=self.write_lock,
                    policy=self.settings.webhook_retry,
                ).attempted:
                    if self._stop.is_set():
                        return
            except Exception:
                log.exception("webhooks: a delivery round failed; trying again next round")

    def _run_schedule(self) -> None:
        """Every ``schedule_interval_seconds``: refresh the followed audiences and run the
        scheduled flows at :attr:`clock` (the model file is read each round, so an edit
        applies without a restart); the store is used under the write lock, one audience or
        flow at a time, and an erase waits for the round to end."""
        from shopfunnel.audiences.saved import store_model
        from shopfunnel.audiences.schedule import run_scheduled

        while not self._stop.wait(self.settings.schedule_interval_seconds):
            try:
                # an erase reopens the store: not in the middle of a round
                with self._erase_lock:
                    done = run_scheduled(
                        self.store,  # type: ignore[arg-type]
                        now=self.clock(),
                        model=store_model(self.store_path),
                        lock=self.write_lock,
                    )
                for what, error in done.errors.items():
                    log.warning("schedule: %s: %s", what, error)
            except Exception:
                log.exception("schedule: a round failed; trying again next round")

    def erase_person(self, person_id: str, *, timeout_seconds: float = 30.0) -> Erasure:
        """Erase a person while the server runs (``DELETE /v1/persons/{id}``).

        1. the spool starts a new segment; the events acknowledged before are loaded first
           (so none of the person's events reaches the store after the erase);
        2. under both store locks: the rows and the timeline go
           (:func:`shopfunnel.store.erase.erase_person`), both connections close, the file is
           rewritten without the deleted bytes, and they open again;
        3. the older spool segments, all loaded, are deleted.
        """
        assert self.spool is not None and self.writer is not None
        with self._erase_lock:
            end, segment = self.spool.rotate(timeout_seconds)
            deadline = time.monotonic() + timeout_seconds
            while end is not None and self.spool.checkpoint() < end:
                if time.monotonic() > deadline:
                    raise StoreError("the store is still loading earlier events: retry shortly")
                time.sleep(0.02)
            s = self.settings
            with self.write_lock, self.read_lock:
                assert self.store is not None and self.reader is not None
                result = erase.erase_person(self.store, person_id=person_id, requested_by="api")
                events = self.store.db.scalar("SELECT count(*) FROM events")
                self.reader.close()
                self.store.close()
                try:
                    erase.compact_store(self.store_path)
                finally:
                    self.store = Store(self.store_path, session_timeout=s.session_timeout)
                    self.reader = Store(self.store_path, session_timeout=s.session_timeout)
                    self.writer.store = self.store
                if self.store.db.scalar("SELECT count(*) FROM events") != events:
                    raise StoreError(
                        "the store reopened after the erase does not hold the "
                        "expected events: stop the server and check the file"
                    )
            self.spool.drop_before(segment)
        return result

    async def prepare(self, body: bytes, kind: str, received_at: datetime) -> intake.Prepared:
        """:func:`shopfunnel.server.intake.prepare` in a worker process when there are any
        (the event loop serves other requests meanwhile), else here."""
        limit = self.settings.max_event_bytes
        if self._converters is None:
            return intake.prepare(body, kind, received_at, limit)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._converters, intake.prepare, body, kind, received_at, limit
        )

    def prepare_here(
        self, body: bytes, kind: str, received_at: datetime, *, convert: bool = True
    ) -> intake.Prepared:
        """:func:`shopfunnel.server.intake.prepare` in this process."""
        return intake.prepare(
            body, kind, received_at, self.settings.max_event_bytes, convert=convert
        )

    def close(self) -> None:
        self._stop.set()
        if self._converters is not None:
            self._converters.shutdown(wait=True, cancel_futures=True)
        for thread in (self._deliverer, self._scheduler, self._revocations):
            if thread is not None:
                thread.join(60)
        if self.spool is not None:
            self.spool.close()
        if self.writer is not None:
            self.writer.stop()
        for store in (self.reader, self.store):
            if store is not None:
                store.close()

    # -- keys and admin ---------------------------------------------------------------
    def refresh_keys(self) -> None:
        assert self.store is not None
        with self.write_lock:
            digests = auth.active_key_digests(self.store.db)
            self.platform_secrets = auth.platform_secrets(self.store.db)
        for key in self.extra_write_keys:
            digests[auth.key_digest(key)] = "command line"
        self.key_digests = digests

    def key_name(self, key: str | None) -> str | None:
        """The name of an active write key, or None."""
        if not key:
            return None
        return self.key_digests.get(auth.key_digest(key))

    def revoke_key(self, prefix: str) -> int:
        """Revoke the stored write keys starting with ``prefix``; refused from the next request
        on. Raises :class:`ConfigError` when no active key starts with it."""
        assert self.store is not None
        with self.write_lock:
            revoked = auth.revoke_write_key(self.store.db, prefix)
        self.refresh_keys()
        log.info("revoked %d write key(s) starting with %s", revoked, prefix)
        return revoked

    def check_admin_token(
        self, token: str | None, client: str = "?", device: str | None = None
    ) -> AdminCheck:
        """Whether ``token`` is the admin password. A right token is verified once with
        scrypt, then remembered (as a keyed digest, in memory only) so API calls stay fast.
        Unknown tokens are checked only when the :class:`LoginGuard` allows an attempt from
        ``client`` (the address) or ``device`` (a trusted browser's id), which bounds both
        guessing and the scrypt work a stranger can cause; only failures count."""
        if not token:
            return AdminCheck(False)
        marker = hashlib.sha256(b"admin-token\x00" + token.encode()).hexdigest()
        with self._admin_lock:
            if marker in self.admin_tokens:
                return AdminCheck(True)
        wait = self.login_guard.wait(client, device)
        if wait > 0:
            return AdminCheck(False, wait)
        if auth.verify_password(token, self.admin_password_hash):
            with self._admin_lock:
                self.admin_tokens.add(marker)
            self.login_guard.succeeded(client, device)
            return AdminCheck(True)
        self.login_guard.failed(client, device)
        return AdminCheck(False)
