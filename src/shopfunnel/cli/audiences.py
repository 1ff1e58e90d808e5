"""``shopfunnel audience``: saved audiences (list, show, create, delete, refresh, history)
and exports for an e-mail tool or an ad platform."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shopfunnel import format as fmt
from shopfunnel.cli.application import app
from shopfunnel.cli.engine import Engine, EngineOpt, EventsOpt, TableOpt
from shopfunnel.cli.options import LOOKBACK_OPTION
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    TERMINAL_ROWS,
    Format,
    emit,
    err_console,
    friendly_errors,
    rich_table,
)
from shopfunnel.errors import ConfigError

PLATFORM_NAMES = ("csv", "meta", "google")
MODEL_OPTION = typer.Option(
    "--model",
    help="The model file (default: ./shopfunnel.toml, else shopfunnel.toml beside the store, else none).",
)
AS_OF_OPTION = typer.Option(
    "--as-of", help="Judge membership at this time, UTC (default: the store's latest event)."
)
EXPORT_OPTION = typer.Option(
    "--export",
    help="csv: for your e-mail tool (contacts only with --contacts); meta or google: "
    "SHA-256-hashed columns the ad platform accepts.",
)
CONTACTS_OPTION = typer.Option(
    "--contacts", help="Include e-mail and phone, in clear, in a csv export."
)

audience_app = typer.Typer(
    help=(
        "Saved audiences: who to reach, defined once, kept fresh.\n\n"
        "Built-ins on any store: abandoned-carts, abandoned-checkouts, browse-abandoners, "
        "stalled-STAGE, lapsed-customers, vip, one-time-buyers. Add your own in "
        "shopfunnel.toml ([audiences.NAME]) or with `audience create`. Rules: docs/audiences.md.\n\n"
        "Examples:\n\n"
        "    shopfunnel audience list --db shop.duckdb\n\n"
        "    shopfunnel audience show vip --db shop.duckdb --export csv --contacts --format csv --out vip.csv\n\n"
        "    shopfunnel audience create vip-carts --all abandoned-carts,vip --db shop.duckdb\n\n"
        "    shopfunnel audience refresh --db shop.duckdb   # record who entered and who left"
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(audience_app, name="audience")


@audience_app.command("list")
def audience_list(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    model: Annotated[Path | None, MODEL_OPTION] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """List every audience: where it is defined, its rule, and its size at the last refresh.

    `shopfunnel audience list --db shop.duckdb --format json`
    """
    from shopfunnel.audiences.saved import audience_table, store_model
    from shopfunnel.store.store import Store

    with friendly_errors():
        the_model = store_model(db, model)
        with Store(db, read_only=True) as store:
            frame = audience_table(store, the_model)
        shown = frame.assign(
            what=frame["description"].where(frame["description"] != "", frame["rule"])
        )
        shown = shown[["name", "source", "what", "members", "refreshed_as_of"]]
        emit(
            frame,
            format,
            out,
            table=lambda: rich_table(
                shown,
                title=f"{len(frame)} audiences ({db})",
                formats={"members": fmt.integer, "refreshed_as_of": fmt.timestamp},
            ),
        )


@audience_app.command("show")
def audience_show(
    name: Annotated[str, typer.Argument(help="The audience, e.g. vip or abandoned-carts.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    as_of: Annotated[str | None, AS_OF_OPTION] = None,
    export: Annotated[str, EXPORT_OPTION] = "csv",
    contacts: Annotated[bool, CONTACTS_OPTION] = False,
    model: Annotated[Path | None, MODEL_OPTION] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Who is in an audience now, computed from the events (nothing is recorded).

    One row per person: first and last seen, orders and revenue; e-mail and phone only with
    `--contacts`. For an ad platform:
    `shopfunnel audience show lapsed-customers --export meta --format csv --out meta.csv`.

    With --engine spark (and --events or --table) the built-in audiences and the model
    file's are computed on Apache Spark from raw events, with the store's members; rules
    of kind events or drop_off, and contacts exports, need a store (docs/spark.md).
    """
    from shopfunnel.audiences import export_audience
    from shopfunnel.audiences.evaluate import resolve_as_of
    from shopfunnel.audiences.lists import contacts as contact_table
    from shopfunnel.audiences.lists import profiles
    from shopfunnel.audiences.saved import audience_members, get_audience, store_model
    from shopfunnel.cli.engine import open_source

    with friendly_errors():
        _check_platform(export)
        if Engine(engine) == Engine.spark and (contacts or export != "csv"):
            raise ConfigError(
                "contacts (--contacts, --export meta or google) are read from a store's "
                "events, not on Spark: load the events into a store (`shopfunnel ingest`) "
                "and export from there with --db"
            )
        the_model = store_model(db if Engine(engine) == Engine.local else None, model)
        with open_source(db, engine, events, table) as store:
            audience = get_audience(store, name, the_model)
            when = resolve_as_of(store, as_of)
            people = audience_members(store, name, as_of=when, model=the_model)
            frame = (
                profiles(store, list(people["person_id"]), as_of=when)
                if when is not None
                else people
            )
            if contacts or export != "csv":
                frame = frame.merge(contact_table(store), on="person_id", how="left")
        exported = export_audience(frame, export, contacts=contacts)  # type: ignore[arg-type]
        if export != "csv" and len(exported) < len(frame):
            err_console.print(
                f"note: {len(frame) - len(exported)} of {len(frame)} person(s) "
                "left out: no e-mail and no phone with a country code"
            )
        title = f"{name}: {len(frame):,} persons as of {fmt.timestamp(when)} ({audience.description or audience.source})"
        emit(exported, format, out, table=lambda: _head(exported, title))


@audience_app.command("create")
def audience_create(
    name: Annotated[
        str, typer.Argument(help="A new name: lower-case letters, digits, '-' or '_'.")
    ],
    rule: Annotated[
        str | None,
        typer.Option(
            "--rule",
            help='The rule as a TOML inline table or JSON, e.g. \'{kind = "events", '
            'event = "view_item", where = {item_category = "shoes"}, at_least = 2, '
            'within = "7d"}\'.',
        ),
    ] = None,
    all_of: Annotated[
        str | None,
        typer.Option("--all", help="Persons in every one of these audiences (comma-separated)."),
    ] = None,
    any_of: Annotated[
        str | None,
        typer.Option("--any", help="Persons in at least one of these audiences (comma-separated)."),
    ] = None,
    but_not: Annotated[
        str | None,
        typer.Option(
            "--but-not", help="With --all or --any: leave out the persons of these audiences."
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What the audience is for.")] = "",
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    model: Annotated[Path | None, MODEL_OPTION] = None,
) -> None:
    """Save an audience in the store.

    Kinds of rule: stage, rfm, drop_off, events, abandoned, orders, clv, lapsed, all, any,
    not (fields: docs/audiences.md). Examples:

        shopfunnel audience create shoe-fans --rule '{kind = "events", event = "view_item", where = {item_category = "shoes"}, at_least = 2, within = "7d"}'

        shopfunnel audience create stalled-deciders --rule '{kind = "stage", stage = "decision", status = "stalled"}'

        shopfunnel audience create vip-carts --all abandoned-carts,vip

        shopfunnel audience create carts-not-vip --all abandoned-carts --but-not vip
    """
    from shopfunnel.audiences.saved import create_audience, parse_rule_text, store_model
    from shopfunnel.store.store import Store

    with friendly_errors():
        spec = _rule_from_options(rule, all_of, any_of, but_not)
        the_model = store_model(db, model)
        with Store(db) as store:
            made = create_audience(
                store,
                name,
                spec if not isinstance(spec, str) else parse_rule_text(spec),
                description=description,
                model=the_model,
            )
        err_console.print(
            f"saved audience {made.name!r}: see who is in it with "
            f"`shopfunnel audience show {made.name} --db {db}`"
        )


@audience_app.command("delete")
def audience_delete(
    name: Annotated[str, typer.Argument(help="An audience made with `audience create`.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    model: Annotated[Path | None, MODEL_OPTION] = None,
) -> None:
    """Delete an audience kept in the store, with its membership history.

    Built-ins cannot be deleted; those of shopfunnel.toml are removed there.
    """
    from shopfunnel.audiences.saved import delete_audience, store_model
    from shopfunnel.store.store import Store

    with friendly_errors():
        the_model = store_model(db, model)
        with Store(db) as store:
            removed = delete_audience(store, name, model=the_model)
        err_console.print(f"deleted audience {name!r} and {removed:,} history row(s)")


@audience_app.command("refresh")
def audience_refresh(
    names: Annotated[
        list[str] | None, typer.Argument(help="The audiences (default: every one).")
    ] = None,
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    as_of: Annotated[str | None, AS_OF_OPTION] = None,
    model: Annotated[Path | None, MODEL_OPTION] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Recompute audiences and record who entered and who left since the last refresh.

    Each entry gets a stable id; entries and exits go to the webhook outbox when the store
    has an endpoint (`shopfunnel webhooks add`). The table shows counts; `--format csv`
    (or json) writes the changes themselves: audience, person_id, change (enter or exit),
    at, entry_id. While `shopfunnel serve` runs it keeps refreshing, every minute, each
    audience refreshed once (docs/audiences.md); without the server, run it from cron, e.g.
    every 15 minutes:

        shopfunnel audience refresh abandoned-carts vip --db shop.duckdb --format csv --out changes.csv
    """
    import pandas as pd

    from shopfunnel.audiences.membership import publish, refresh_audience
    from shopfunnel.audiences.saved import all_audiences, store_model
    from shopfunnel.store.store import Store

    with friendly_errors():
        if Engine(engine) == Engine.spark or events is not None or table is not None:
            raise ConfigError(
                "audience refresh records who entered and left each saved audience in the "
                "store's own tables, which a read-only lake does not have: load the events "
                "into a store (`shopfunnel ingest`) and refresh there with --db; to see "
                "who is in an audience now on Spark: `shopfunnel audience show NAME "
                "--engine spark --events PATH`"
            )
        the_model = store_model(db, model)
        rows, frames = [], []
        with Store(db) as store:
            chosen = names or [a.name for a in all_audiences(store, the_model)]
            for name in chosen:
                done = refresh_audience(store, name, as_of=as_of, model=the_model)
                queued = publish(store, name)
                rows.append(
                    {
                        "audience": name,
                        "as_of": done.as_of,
                        "members": done.members,
                        "entered": done.entered,
                        "exited": done.exited,
                        "to_webhooks": queued,
                    }
                )
                frames.append(done.changes)
        summary = pd.DataFrame(rows)
        changed = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if format == Format.table:
            emit(
                summary,
                format,
                out,
                table=lambda: rich_table(
                    summary, title="refreshed", formats={"as_of": fmt.timestamp}
                ),
            )
        else:
            emit(changed, format, out)


@audience_app.command("history")
def audience_history(
    name: Annotated[str, typer.Argument(help="The audience.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """The membership history of an audience: one row per entry (entered_at, exited_at,
    entry_id), over every refresh so far."""
    from shopfunnel.audiences.membership import audience_history
    from shopfunnel.store.store import Store

    with friendly_errors():
        with Store(db, read_only=True) as store:
            frame = audience_history(store, name)
        emit(frame, format, out, table=lambda: _head(frame, f"{name}: {len(frame):,} entries"))


@audience_app.command("abandoned-carts")
def audience_abandoned_carts(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    after: Annotated[
        str,
        typer.Option(
            help="A cart counts as abandoned once it is this old with no purchase after it."
        ),
    ] = "1h",
    lookback: Annotated[str, LOOKBACK_OPTION] = "30d",
    export: Annotated[str, EXPORT_OPTION] = "csv",
    contacts: Annotated[bool, CONTACTS_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Cart abandoners with what is in their cart, e.g. to win back by e-mail or retargeting.

    `shopfunnel audience abandoned-carts --db shop.duckdb --export meta --format csv --out meta.csv`
    writes SHA-256-hashed EMAIL/PHONE columns ready for a Meta Custom Audience upload.
    Contacts in clear only with `--export csv --contacts`.
    """
    from shopfunnel.audiences import abandoned_carts, export_audience
    from shopfunnel.store.store import Store

    with friendly_errors():
        _check_platform(export)
        with Store(db, read_only=True) as store:
            people = abandoned_carts(store, after=after, lookback=lookback)
        exported = export_audience(people, export, contacts=contacts)  # type: ignore[arg-type]
        if export != "csv" and len(exported) < len(people):
            err_console.print(
                f"note: {len(people) - len(exported)} of {len(people)} person(s) "
                "left out: no e-mail and no phone with a country code"
            )
        emit(exported, format, out)


# -- helpers --------------------------------------------------------------------------------
def _check_platform(export: str) -> None:
    if export not in PLATFORM_NAMES:
        raise ConfigError(
            f"--export {export!r} is not known: use one of {', '.join(PLATFORM_NAMES)}"
        )


def _rule_from_options(
    rule: str | None, all_of: str | None, any_of: str | None, but_not: str | None
) -> Any:
    given = [x for x in (rule, all_of, any_of) if x]
    if len(given) != 1:
        raise ConfigError(
            "give exactly one of --rule, --all or --any, e.g. --all abandoned-carts,vip"
        )
    if rule:
        if but_not:
            raise ConfigError('--but-not goes with --all or --any; in --rule write kind = "not"')
        return rule
    names = [n.strip() for n in (all_of or any_of or "").split(",") if n.strip()]
    spec: dict[str, Any] = {"kind": "all" if all_of else "any", "of": names}
    if but_not:
        excluded = [n.strip() for n in but_not.split(",") if n.strip()]
        nots = [{"kind": "not", "rule": n} for n in excluded]
        spec = (
            {"kind": "all", "of": [spec, *nots]}
            if spec["kind"] == "any"
            else {"kind": "all", "of": [*names, *nots]}
        )
    return spec


def _head(frame: Any, title: str) -> Any:
    if len(frame) > TERMINAL_ROWS:
        err_console.print(
            f"showing the first {TERMINAL_ROWS:,} of {len(frame):,} rows: write them "
            "all with --out FILE (and --format csv or json)"
        )
    return rich_table(
        frame.head(TERMINAL_ROWS),
        title=title,
        formats={c: fmt.timestamp for c in frame.columns if c.endswith(("_at", "_seen"))},
    )
