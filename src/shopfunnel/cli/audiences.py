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
    export: Annotated[str, typer.Option(help="csv: contacts in clear for your email tool; meta or google: hashed columns the ad platform accepts.")] = "csv",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Build an audience, e.g. cart abandoners to win back by email or retargeting.

    `shopfunnel audience abandoned-carts --db shop.duckdb --export meta --format csv --out meta.csv`
    writes SHA-256-hashed EMAIL/PHONE columns ready for a Meta Custom Audience upload.
    """
    with friendly_errors():
        if name not in LISTS:
            raise ConfigError(f"no audience {name!r}: use one of {', '.join(LISTS)}")
        if export not in PLATFORMS:
            raise ConfigError(f"--export {export!r} is not known: use one of {', '.join(PLATFORMS)}")
        with Store(db, read_only=True) as store:
            people = abandoned_carts(store, after=after, lookback=lookback)
        emit(export_audience(people, export), format, out)  # type: ignore[arg-type]
