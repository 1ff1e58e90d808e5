"""``shopfunnel webhooks``: endpoints that receive audience entries and exits, and delivery."""

from __future__ import annotations

import os
import sys
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

webhooks_app = typer.Typer(
    help="Webhooks: audience entries and exits POSTed as signed JSON to your URLs, with retries.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[
        str, typer.Argument(help="Where to POST, e.g. https://hooks.example.com/shopfunnel.")
    ],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    topics: Annotated[
        str,
        typer.Option(help="'*' or a comma-separated list, e.g. audience.entered,audience.exited."),
    ] = "*",
    secret_env: Annotated[
        str | None,
        typer.Option(
            help="Take the signing secret from this environment variable (default: a random one, printed once)."
        ),
    ] = None,
) -> None:
    """Add a webhook endpoint and print its id and signing secret (the secret only this once).

    The receiver checks X-Shopfunnel-Signature with the secret and ignores an
    X-Shopfunnel-Webhook-Id it has already handled (docs/server.md, "Webhooks out").
    """
    from shopfunnel.store.store import Store
    from shopfunnel.webhooks import add_endpoint

    with friendly_errors():
        secret = None
        if secret_env is not None:
            secret = os.environ.get(secret_env)
            if not secret:
                raise ConfigError(f"the environment variable {secret_env} is not set or empty")
        with Store(db) as store:
            endpoint = add_endpoint(store, url, secret=secret, topics=topics)
    err_console.print(f"added {endpoint.endpoint_id} → {endpoint.url} (topics: {endpoint.topics})")
    if secret is None:
        err_console.print("signing secret (shown only now; give it to the receiver):")
        sys.stdout.write(endpoint.secret + "\n")


def _endpoints(store: Any) -> Any:
    from shopfunnel.webhooks import list_endpoints

    return list_endpoints(store)


store_table_command(
    webhooks_app,
    "list",
    _endpoints,
    "List webhook endpoints: id, URL, topics and when added (never the secret).",
)


@webhooks_app.command("remove")
def webhooks_remove(
    endpoint_id: Annotated[
        str, typer.Argument(help="The endpoint's id, as `webhooks list` shows it.")
    ],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
) -> None:
    """Remove an endpoint; its deliveries still pending are dropped."""
    from shopfunnel.store.store import Store
    from shopfunnel.webhooks import remove_endpoint

    with friendly_errors(), Store(db) as store:
        dropped = remove_endpoint(store, endpoint_id)
    console.print(f"removed {endpoint_id} ({dropped} delivery record(s) with it)")


def _delivery_status(store: Any) -> Any:
    from shopfunnel.webhooks import delivery_status

    return delivery_status(store)


store_table_command(
    webhooks_app,
    "status",
    _delivery_status,
    "Per endpoint: deliveries pending, delivered and failed, the oldest pending entry, "
    "the next attempt and the last error.",
)


@webhooks_app.command("deliver")
def webhooks_deliver(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 10.0,
    max_attempts: Annotated[
        int,
        typer.Option(
            help="Failed attempts after which a delivery is 'failed' (see `webhooks retry`)."
        ),
    ] = 20,
) -> None:
    """Send every delivery that is due now (for cron when `shopfunnel serve` is not running;
    the server does this by itself). Failed attempts are retried with back-off on later runs."""
    from shopfunnel.store.store import Store
    from shopfunnel.webhooks import RetryPolicy, deliver_due

    with friendly_errors(), Store(db) as store:
        totals = [0, 0, 0, 0]
        while True:
            report = deliver_due(
                store, timeout_seconds=timeout, policy=RetryPolicy(max_attempts=max_attempts)
            )
            for i, n in enumerate(
                (report.attempted, report.delivered, report.retrying, report.failed)
            ):
                totals[i] += n
            if report.attempted == 0:
                break
    attempted, delivered, retrying, failed = totals
    console.print(
        f"{attempted} attempt(s): {delivered} delivered, {retrying} to retry later, "
        f"{failed} failed for good"
    )
    if failed:
        raise typer.Exit(code=2)


@webhooks_app.command("retry")
def webhooks_retry(
    endpoint_id: Annotated[
        str | None, typer.Argument(help="Only this endpoint's (default: all).")
    ] = None,
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
) -> None:
    """Arm failed deliveries again; they go out with the next `webhooks deliver`."""
    from shopfunnel.store.store import Store
    from shopfunnel.webhooks import retry_failed

    with friendly_errors(), Store(db) as store:
        n = retry_failed(store, endpoint_id)
    console.print(f"{n} failed delivery(ies) armed again")
