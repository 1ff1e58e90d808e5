"""``shopfunnel serve`` (collector, dashboard, API) and ``shopfunnel keys`` (write keys)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.output import (
    DB_OPTION,
    console,
    err_console,
    friendly_errors,
    store_table_command,
)
from shopfunnel.errors import ConfigError

PASSWORD_ENV = "SHOPFUNNEL_ADMIN_PASSWORD"
keys_app = typer.Typer(
    help="Write keys: what a storefront or a Segment/RudderStack SDK sends events with.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


def _admin_hash(db: str) -> str:
    """The admin password hash: from $SHOPFUNNEL_ADMIN_PASSWORD (stored hashed, replacing an
    older one), else the one stored by an earlier start, else asked for at the terminal."""
    from shopfunnel.server import auth
    from shopfunnel.store.store import Store

    password = os.environ.get(PASSWORD_ENV)
    with Store(db) as store:
        stored = auth.stored_admin_hash(store.db)
        if password is None and stored is not None:
            return stored
        if password is None:
            if not sys.stdin.isatty():
                raise ConfigError(
                    f"no admin password is set for {db}: set {PASSWORD_ENV} (at least "
                    f"{auth.MIN_PASSWORD_LENGTH} characters) or start once from a terminal to be asked"
                )
            password = typer.prompt(
                "Admin password for the dashboard", hide_input=True, confirmation_prompt=True
            )
        if stored is not None and auth.verify_password(password, stored):
            return stored
        new = auth.hash_password(password)
        auth.store_admin_hash(store.db, new)
        return new


@app.command()
def serve(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    host: Annotated[
        str, typer.Option(help="Address to listen on. Keep 127.0.0.1 behind a TLS proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            help="The store's own site(s) whose pages may send events, e.g. https://shop.example (repeatable).",
        ),
    ] = None,
    spool: Annotated[
        Path | None, typer.Option(help="Folder of the durable event spool (default: DB.spool).")
    ] = None,
    max_body_kb: Annotated[
        int, typer.Option(help="Largest request body accepted, in KB (413 above).")
    ] = 512,
    rate: Annotated[
        float, typer.Option(help="Events per second allowed per write key (429 above).")
    ] = 50_000.0,
    max_pending: Annotated[
        int,
        typer.Option(
            help="Acknowledged events not yet in the store above which the collector answers 503."
        ),
    ] = 500_000,
    durability: Annotated[
        str,
        typer.Option(
            help="spool (default: fsynced log, loaded in the background) or transaction (one DuckDB transaction per request)."
        ),
    ] = "spool",
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log every request line (off by default: query strings may hold write keys, paths person ids)."
        ),
    ] = False,
    webhook_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between rounds of due webhook deliveries (0: leave them to `shopfunnel webhooks deliver`)."
        ),
    ] = 10.0,
    schedule_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between rounds that refresh the followed audiences and run the flows with schedule = true (0: leave them to cron: `shopfunnel audience refresh`, `shopfunnel flow run`)."
        ),
    ] = 60.0,
    workers: Annotated[
        int,
        typer.Option(
            help="Processes that parse and convert incoming events beside the server (0: in the server process)."
        ),
    ] = 2,
) -> None:
    """Run the event collector, the tracking snippet (/sdk.js), the dashboard (/) and the JSON API (/v1).

    The admin password comes from $SHOPFUNNEL_ADMIN_PASSWORD, or the one set at an earlier
    start, or a prompt; only its scrypt hash is stored. Create write keys first with
    `shopfunnel keys create`. The server owns the store file while it runs.
    """
    import uvicorn

    from shopfunnel.server import create_app

    with friendly_errors():
        if host not in ("127.0.0.1", "localhost", "::1"):
            err_console.print(
                "note: serve the dashboard through HTTPS (a TLS proxy); session "
                "cookies are marked Secure off loopback."
            )
        application = create_app(
            db,
            admin_password_hash=_admin_hash(db),
            allowed_origins=tuple(allow_origin or ()),
            spool_dir=str(spool) if spool else None,
            max_body_bytes=max_body_kb * 1024,
            rate_events_per_second=rate,
            rate_burst_events=max(rate * 2, 1000.0),
            max_pending_events=max_pending,
            durability=durability,
            webhook_interval_seconds=webhook_interval,
            schedule_interval_seconds=schedule_interval,
            convert_workers=workers,
        )
        console.print(f"shopfunnel: collecting into {db} — dashboard at http://{host}:{port}/")
        if not allow_origin:
            err_console.print(
                "note: no --allow-origin given, so browsers (the /sdk.js snippet) cannot "
                "send events; server-side SDKs can."
            )
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
            timeout_graceful_shutdown=10,
        )


@keys_app.command("create")
def keys_create(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    name: Annotated[str, typer.Option(help="A label, e.g. the site or SDK using it.")] = "default",
) -> None:
    """Create a write key and print it (only this once; the store keeps its hash).
    While the server runs, create keys with POST /v1/keys instead."""
    from shopfunnel.server import auth
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        key = auth.create_write_key(store.db, name)
    sys.stdout.write(key + "\n")


def _write_keys(store: Any) -> Any:
    from shopfunnel.server import auth

    return auth.list_write_keys(store.db)


store_table_command(
    keys_app,
    "list",
    _write_keys,
    "List write keys: their first characters, name, creation time and whether revoked.",
)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[
        str, typer.Argument(help="The key's first characters, as `keys list` shows them.")
    ],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
) -> None:
    """Revoke a write key: the collector refuses it at once, also while `shopfunnel serve`
    runs on the store (the running server is asked through DB.control/ and answers within
    a second)."""
    from shopfunnel.errors import StoreError
    from shopfunnel.server import auth, revocation
    from shopfunnel.store.store import Store

    with friendly_errors():
        try:
            store = Store(db)
        except StoreError as exc:
            if not _locked_by_another_process(exc):
                raise
            n = revocation.request_revocation(db, prefix)
            console.print(
                f"revoked {n} key(s) starting with {prefix} (by the running server: "
                "refused from now on)"
            )
            return
        with store:
            n = auth.revoke_write_key(store.db, prefix)
    console.print(f"revoked {n} key(s) starting with {prefix}")


def _locked_by_another_process(exc: BaseException) -> bool:
    """Whether opening the store failed because another process holds its lock."""
    return "lock" in str(exc.__cause__ or exc).lower()


@keys_app.command("platform-secret")
def keys_platform_secret(
    platform: Annotated[str, typer.Argument(help="woocommerce or shopify.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    name: Annotated[
        str,
        typer.Option(
            help="A label, to keep several (one per WooCommerce webhook, or old and new while rotating)."
        ),
    ] = "default",
    secret_env: Annotated[
        str | None,
        typer.Option(
            help="Take the secret from this environment variable (else it is asked for, or read from standard input)."
        ),
    ] = None,
    generate: Annotated[
        bool,
        typer.Option(
            help="Make a random secret and print it once (WooCommerce: paste it into the webhook's Secret field)."
        ),
    ] = False,
) -> None:
    """Keep the secret that signs the store platform's order webhooks: a WooCommerce
    webhook's secret, or the Shopify app's client secret. Restart `serve` to use it."""
    import secrets as random_secrets

    from shopfunnel.server import auth
    from shopfunnel.store.store import Store

    with friendly_errors():
        if platform not in auth.PLATFORMS:
            raise ConfigError(
                f"platform {platform!r} is not known: use {' or '.join(auth.PLATFORMS)}"
            )
        if generate:
            secret = random_secrets.token_urlsafe(32)
        elif secret_env is not None:
            secret = os.environ.get(secret_env, "")
            if not secret:
                raise ConfigError(f"the environment variable {secret_env} is not set or empty")
        elif sys.stdin.isatty():
            secret = typer.prompt(f"{platform} webhook secret", hide_input=True)
        else:
            secret = sys.stdin.readline().strip()
        with Store(db) as store:
            auth.set_platform_secret(store.db, platform, secret, name)
    err_console.print(f"kept the {platform} secret {name!r}; restart `shopfunnel serve` to use it")
    if generate:
        sys.stdout.write(secret + "\n")


def _platform_secrets(store: Any) -> Any:
    from shopfunnel.server import auth

    return auth.list_platform_secrets(store.db)


store_table_command(
    keys_app,
    "platform-secrets",
    _platform_secrets,
    "List the kept platform secrets: platform, name, a fingerprint and when kept (never the secret).",
)


@keys_app.command("remove-platform-secret")
def keys_remove_platform_secret(
    platform: Annotated[str, typer.Argument(help="woocommerce or shopify.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    name: Annotated[
        str, typer.Option(help="Which one, as `keys platform-secrets` shows.")
    ] = "default",
) -> None:
    """Forget a platform secret; webhooks signed with it are refused from the next start on."""
    from shopfunnel.server import auth
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        auth.remove_platform_secret(store.db, platform, name)
    console.print(f"removed the {platform} secret {name!r}")
