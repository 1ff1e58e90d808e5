"""``shopfunnel erase``: remove a person from the store and everything derived from it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.output import DB_OPTION, console, err_console, friendly_errors
from shopfunnel.errors import ConfigError


@app.command()
def erase(
    person: Annotated[
        str | None, typer.Option("--person", help="The person id (as `persons` shows it).")
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Every person whose events carry this e-mail.")
    ] = None,
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    spool: Annotated[
        Path | None, typer.Option(help="The server's spool folder, if not DB.spool.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a person (a GDPR request): their events, identity links, audience memberships,
    sent flows and webhook entries, the timeline, and the spooled copies; keeps an audit line
    with a hash only. Stop `shopfunnel serve` first, or use DELETE /v1/persons/{id}."""
    from shopfunnel.server.spool import discard_loaded
    from shopfunnel.store.erase import compact_store, erase_person
    from shopfunnel.store.store import Store

    with friendly_errors():
        if (person is None) == (email is None):
            raise ConfigError("give --person ID or --email ADDRESS (one of them)")
        if not Path(db).exists():
            raise ConfigError(f"no store at {db!r}")
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError("erasing cannot be undone: add --yes to confirm")
            typer.confirm("Erase this person from the store for good?", abort=True)
        spool_dir = spool or Path(db + ".spool")
        spool_files = discard_loaded(spool_dir)
        with Store(db) as store:
            result = erase_person(store, person_id=person, email=email, requested_by="cli")
        saved = compact_store(db)
    if result.persons == 0:
        err_console.print("no such person in the store (the request is recorded in the audit)")
    rows = ", ".join(f"{n} from {table}" for table, n in sorted(result.rows.items())) or "no rows"
    console.print(
        f"erased {result.persons} person(s): {rows}; "
        f"{len(result.files) + spool_files} derived file(s) removed; "
        f"store rewritten ({saved:,} bytes freed). Audit: {result.subject_hash[:12]}…"
    )
