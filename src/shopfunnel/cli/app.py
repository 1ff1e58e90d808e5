"""The Typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="shopfunnel",
    help=(
        "See your store's sales funnel and act on it.\n\n"
        "Start with `shopfunnel demo` (a sample store in shopfunnel.duckdb), or load your own "
        "events with `shopfunnel ingest FILE --db shop.duckdb`."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
