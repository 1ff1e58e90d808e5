"""``shopfunnel audience``: lists of people to reach, exported for email or ad platforms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfunnel.audiences import PLATFORMS, abandoned_carts, export_audience
from shopfunnel.cli.application import app
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    emit,
    err_console,
    friendly_errors,
)
from shopfunnel.errors import ConfigError
from shopfunnel.store.store import Store

LISTS = ("abandoned-carts",)


@app.command()
def audience(
    name: Annotated[str, typer.Argument(help=f"Which list: {', '.join(LISTS)}.")] = "abandoned-carts",
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    after: Annotated[str, typer.Option(help="A cart counts as abandoned once it is this old with no purchase after it.")] = "1h",
    lookback: Annotated[str, typer.Option(help="Only carts from this period before the last event.")] = "30d",
    export: Annotated[str, typer.Option(help="csv: for your e-mail tool (contacts only with --contacts); meta or google: hashed columns the ad platform accepts.")] = "csv",
    contacts: Annotated[bool, typer.Option("--contacts", help="Include e-mail and phone, in clear, in a csv export.")] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Build an audience, e.g. cart abandoners to win back by email or retargeting.

    `shopfunnel audience abandoned-carts --db shop.duckdb --export meta --format csv --out meta.csv`
    writes SHA-256-hashed EMAIL/PHONE columns ready for a Meta Custom Audience upload.
    Contacts in clear only with `--export csv --contacts`.
    """
    with friendly_errors():
        if name not in LISTS:
            raise ConfigError(f"no audience {name!r}: use one of {', '.join(LISTS)}")
        if export not in PLATFORMS:
            raise ConfigError(f"--export {export!r} is not known: use one of {', '.join(PLATFORMS)}")
        with Store(db, read_only=True) as store:
            people = abandoned_carts(store, after=after, lookback=lookback)
        exported = export_audience(people, export, contacts=contacts)  # type: ignore[arg-type]
        if export != "csv" and len(exported) < len(people):
            err_console.print(f"note: {len(people) - len(exported)} of {len(people)} person(s) "
                              "left out: no e-mail and no phone with a country code")
        emit(exported, format, out)
