"""``shopfunnel offer``: create an offer, issue its codes, check a code, read its result,
list the carts just short of a threshold (docs/programs.md, "Offers")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.options import (
    AUDIENCE_OPTION,
    FREE_SHIPPING_OPTION,
    LIST_CONTACTS_OPTION,
    LIST_EXPORT_OPTION,
    LOOKBACK_OPTION,
    MARGIN_OPTION,
    PERSONS_FILE_OPTION,
)
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    console,
    emit,
    err_console,
    friendly_errors,
)
from shopfunnel.cli.programs import audience_spec, list_out, summary_table

offer_app = typer.Typer(
    help="Offers: tiered discounts, free shipping and time-limited deals with one code per person.",
    no_args_is_help=True,
)
app.add_typer(offer_app, name="offer")


@offer_app.command("create")
def offer_create(
    name: Annotated[str, typer.Argument(help="The offer's name, e.g. spring-tiers.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    tiers: Annotated[
        str | None, typer.Option(help="Tiered discount THRESHOLD:PERCENT,… e.g. 100:5,300:10.")
    ] = None,
    free_shipping: Annotated[float | None, FREE_SHIPPING_OPTION] = None,
    shipping_fee: Annotated[
        float | None,
        typer.Option(
            "--shipping-fee", help="What shipping costs otherwise (the cost of each free shipment)."
        ),
    ] = None,
    start: Annotated[
        str, typer.Option(help="First day (or time) of the offer, YYYY-MM-DD[THH:MM], UTC.")
    ] = ...,  # type: ignore[assignment]
    end: Annotated[str | None, typer.Option(help="When it ends (exclusive).")] = None,
    days: Annotated[float | None, typer.Option(help="Or its length in days.")] = None,
    audience: Annotated[str | None, AUDIENCE_OPTION] = None,
    persons_file: Annotated[Path | None, PERSONS_FILE_OPTION] = None,
    description: Annotated[str, typer.Option(help="A note for people.")] = "",
    holdout: Annotated[
        float,
        typer.Option(
            help="Share of the audience that gets no code (e.g. 0.1), so `offer show` can "
            "read the offer's real lift against them."
        ),
    ] = 0.0,
) -> None:
    """Create an offer: a rule (tiers and/or free shipping), a period and who qualifies.

    Example: `shopfunnel offer create spring --tiers 100:5,300:10 --start 2024-04-01
    --days 14 --audience customers --holdout 0.1`
    """
    from shopfunnel.programs.offers import create_offer
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        offer = create_offer(
            store,
            name,
            starts_at=start,
            ends_at=end,
            days=days,
            tiers=tiers,
            free_shipping_from=free_shipping,
            shipping_fee=shipping_fee,
            audience=audience_spec(audience, persons_file),
            description=description,
            holdout=holdout,
        )
    held = f", {offer.holdout:.0%} held out" if offer.holdout else ""
    console.print(
        f"offer {offer.name}: {offer.rule}, {offer.starts_at:%Y-%m-%d %H:%M} to "
        f"{offer.ends_at:%Y-%m-%d %H:%M} (UTC), for {offer.audience}{held}. "
        f"Next: shopfunnel offer codes {offer.name} --out codes.csv"
    )


@offer_app.command("list")
def offer_list(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Every offer: name, rule, period, audience."""
    import pandas as pd

    from shopfunnel.programs.offers import list_offers
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        offers = pd.DataFrame(
            [o.to_dict() for o in list_offers(store)],
            columns=["name", "rule", "starts_at", "ends_at", "audience", "description"],
        )
    emit(offers[["name", "rule", "starts_at", "ends_at", "audience", "description"]], format, out)


@offer_app.command("show")
def offer_show(
    name: Annotated[str, typer.Argument(help="The offer.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    margin: Annotated[float | None, MARGIN_OPTION] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """The offer and its result on what happened: redemption rate, redeemers' order value
    against comparable non-redeemers, cost and break-even uplift (docs/programs.md)."""
    from shopfunnel.cli.output import records
    from shopfunnel.programs.offer_results import offer_result
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        result = offer_result(store, name, gross_margin=margin)
    if format == Format.csv:
        emit(result.uses, format, out)
        return
    data = {**result.to_dict(), "uses": records(result.uses)}

    def render() -> object:
        from rich.console import Group

        o = result.offer
        head = (
            f"{o.name}: {o.rule}; {o.starts_at:%Y-%m-%d %H:%M} to {o.ends_at:%Y-%m-%d %H:%M} UTC; "
            f"audience {o.audience}"
        )
        return Group(head, summary_table(result.summary, "result"), *result.notes)

    emit(data, format, out, table=render)


@offer_app.command("codes")
def offer_codes_command(
    name: Annotated[str, typer.Argument(help="The offer.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    prefix: Annotated[
        str, typer.Option(help="Put this in front of every new code, e.g. SPRING-.")
    ] = "",
    contacts: Annotated[bool, LIST_CONTACTS_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.csv,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Give a unique code to everyone who qualifies (those with one keep it) and write the
    offer's codes: person_id, code, issued_at."""
    from shopfunnel.programs.offers import issue_offer_codes
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        codes = issue_offer_codes(store, name, prefix=prefix)
        codes = list_out(store, codes, "csv", contacts)
    err_console.print(f"{len(codes):,} code(s) for offer {name}")
    emit(codes, format, out)


@offer_app.command("check")
def offer_check(
    code: Annotated[str, typer.Argument(help="A code, as the customer typed it.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Can this code be used now? valid, used (one use each), not_started, expired or unknown."""
    from shopfunnel.programs.codes import code_status
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        emit(code_status(store, code), format)


@offer_app.command("near")
def offer_near(
    name: Annotated[str, typer.Argument(help="The offer.")],
    within: Annotated[
        float, typer.Option(help="List carts at most this much short of a threshold, e.g. 15.")
    ] = ...,  # type: ignore[assignment]
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    after: Annotated[
        str, typer.Option(help="A cart counts once it is this old with no purchase after it.")
    ] = "1h",
    lookback: Annotated[str, LOOKBACK_OPTION] = "30d",
    export: Annotated[str, LIST_EXPORT_OPTION] = "csv",
    contacts: Annotated[bool, LIST_CONTACTS_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Open carts of qualifying persons just short of the offer's next threshold, with a
    line for the message ("add USD 12.00 for free shipping") and their code."""
    from shopfunnel.programs.offer_carts import near_threshold
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        near = list_out(
            store,
            near_threshold(store, name, within=within, after=after, lookback=lookback),
            export,
            contacts,
        )
    emit(near, format, out)
