"""``shopfunnel person``: one person's journey, the view support and marketing open first.

Definitions: :mod:`shopfunnel.journey.person`. Contacts (e-mails, phones) are shown only with
``--contacts`` (ADR 0118).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    console,
    emit,
    friendly_errors,
    rich_table,
)
from shopfunnel.errors import ConfigError

if TYPE_CHECKING:
    from shopfunnel.journey import Journey


@app.command()
def person(
    person_id: Annotated[
        str | None,
        typer.Argument(
            help="A person id, customer id (user_id) or anonymous id.", show_default=False
        ),
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Find the person by e-mail instead.")
    ] = None,
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    contacts: Annotated[
        bool,
        typer.Option(
            "--contacts", help="Show the e-mails and phones the events carry (personal data)."
        ),
    ] = False,
    events: Annotated[int, typer.Option("--events", help="Show the latest N events.")] = 200,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """One person's journey: identities, sessions with channel and device, events in order
    with products and values, stage changes, orders, audiences and flows, experiments, offer
    codes and referrals. Search by id, or by --email."""
    from shopfunnel.journey import find_persons, person_journey
    from shopfunnel.store.store import Store

    with friendly_errors():
        if (person_id is None) == (email is None):
            raise ConfigError(
                "give a person id (shopfunnel person ID) or --email ADDRESS, one of them"
            )
        if fmt == Format.csv:
            raise ConfigError("a journey is several tables: use --format table or json")
        if not Path(db).exists():
            raise ConfigError(f"no store at {db!r}: give the store with --db FILE")
        with Store(db, read_only=True) as store:
            query, by = (email, "email") if email is not None else (person_id, "id")
            assert query is not None
            matches = find_persons(store, query, by=by)  # type: ignore[arg-type]
            if not matches:
                what = "e-mail" if by == "email" else "id"
                raise ConfigError(
                    f"no person with that {what} in the store: check it, or search by "
                    f"{'id' if by == 'email' else '--email'}"
                )
            if len(matches) > 1:
                found = [{"person_id": m.person_id, "matched_by": m.matched_by} for m in matches]
                if fmt == Format.json:
                    emit({"matches": found}, fmt, out)
                    return
                import pandas as pd

                console.print(f"{len(matches)} persons match: show one with `shopfunnel person ID`")
                console.print(rich_table(pd.DataFrame(found)))
                raise typer.Exit(code=2)
            journey = person_journey(
                store, matches[0].person_id, contacts=contacts, events_limit=events
            )
    if fmt == Format.json:
        emit(journey.to_dict(), fmt, out)
        return
    emit(journey.to_dict(), fmt, out, table=lambda: _tables(journey))


def _tables(journey: Journey) -> Any:
    from rich.console import Group
    from rich.text import Text

    from shopfunnel import format as f
    from shopfunnel.journey.person import EVENT_COLUMNS_SHOWN, PART_TITLES

    s = journey.summary
    head = Text(
        f"{s['person_id']} · stage {s['stage'] or '–'} · {f.integer(s['events'])} events in "
        f"{f.integer(s['sessions'])} sessions, {f.timestamp(s['first_seen'])} to "
        f"{f.timestamp(s['last_seen'])} · {f.integer(s['orders'])} orders, "
        f"{f.money(s['revenue'], s['currency'])} (refunded {f.money(s['refunded'], s['currency'])})"
        f" · first channel {s['first_channel'] or '–'}, last {s['last_channel'] or '–'}"
        f"{'' if s['identified'] else ' · not identified'}",
        style="bold",
    )
    parts: list[Any] = [head, *(Text(n, style="dim") for n in journey.notes)]
    for name, frame in journey.tables().items():
        if name == "events":
            frame = frame[EVENT_COLUMNS_SHOWN]
        if len(frame):
            parts.append(rich_table(frame, title=PART_TITLES[name]))
        else:
            parts.append(Text(f"{PART_TITLES[name]}: none", style="dim"))
    return Group(*parts)
