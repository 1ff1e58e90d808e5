"""``shopfunnel giveaway`` (draws anyone can repeat from the recorded seed and entrants) and
``shopfunnel preview`` (the most loyal customers for an exclusive preview); docs/programs.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.options import (
    AUDIENCE_OPTION,
    LIST_CONTACTS_OPTION,
    LIST_EXPORT_OPTION,
    PERSONS_FILE_OPTION,
)
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    emit,
    friendly_errors,
)
from shopfunnel.cli.programs import audience_spec, list_out

giveaway_app = typer.Typer(
    help="Giveaways anyone can re-draw from the recorded seed and entrants.", no_args_is_help=True
)
app.add_typer(giveaway_app, name="giveaway")


@giveaway_app.command("draw")
def giveaway_draw(
    name: Annotated[str, typer.Argument(help="The draw's name (a draw is never redone).")],
    winners: Annotated[int, typer.Option(help="How many winners.")] = 1,
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    audience: Annotated[str | None, AUDIENCE_OPTION] = None,
    persons_file: Annotated[Path | None, PERSONS_FILE_OPTION] = None,
    seed: Annotated[
        str | None,
        typer.Option(
            help="The seed: ideally one nobody controls, published after the entrants (default: 128 random bits)."
        ),
    ] = None,
    exclude_winners_of: Annotated[
        str | None,
        typer.Option(
            "--exclude-winners-of",
            help="Keep out the winners of these draws (comma-separated, or all).",
        ),
    ] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Draw winners among an audience and record the seed and the entrants, so anyone can
    repeat it (docs/programs.md, "Giveaways")."""
    from shopfunnel.programs.giveaways import draw_giveaway
    from shopfunnel.store.store import Store

    excluded: Any = (
        ()
        if exclude_winners_of is None
        else (
            "all"
            if exclude_winners_of.strip() == "all"
            else [d.strip() for d in exclude_winners_of.split(",") if d.strip()]
        )
    )
    with friendly_errors(), Store(db) as store:
        record = draw_giveaway(
            store,
            name,
            audience_spec(audience, persons_file, None),
            winners=winners,
            seed=seed,
            exclude_winners_of=excluded,
        )
    emit(record.to_dict(), format)


@giveaway_app.command("show")
def giveaway_show(
    name: Annotated[str, typer.Argument(help="The draw.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """The record of a draw; csv gives the entrants (sorted) with the winners' rank."""
    import pandas as pd

    from shopfunnel.programs.giveaways import get_draw
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        d = get_draw(store, name)
    if format == Format.csv:
        rank = {p: i + 1 for i, p in enumerate(d.winners)}
        emit(
            pd.DataFrame(
                {
                    "person_id": list(d.entrants),
                    "winner_rank": pd.array([rank.get(p) for p in d.entrants], dtype="Int64"),
                }
            ),
            format,
            out,
        )
        return
    emit(d.to_dict(), format, out)


@giveaway_app.command("verify")
def giveaway_verify(
    name: Annotated[str, typer.Argument(help="The draw.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Repeat a draw from its record and say whether it gives the recorded winners."""
    from shopfunnel.programs.giveaways import verify_draw
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        check = verify_draw(store, name)
    emit(check, format)
    if not (check["winners_match"] and check["entrants_match"]):
        raise typer.Exit(code=1)


@giveaway_app.command("list")
def giveaway_list(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Every draw: name, entrants, winners, seed, entrants' digest, when."""
    from shopfunnel.programs.giveaways import list_draws
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        emit(list_draws(store), format, out)


@app.command()
def preview(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    by: Annotated[
        str, typer.Option(help="rfm (champions by spend) or clv (expected value).")
    ] = "rfm",
    limit: Annotated[int, typer.Option(help="At most this many persons.")] = 100,
    groups: Annotated[
        str, typer.Option(help="With --by rfm: the RFM groups, comma-separated.")
    ] = "champions",
    export: Annotated[str, LIST_EXPORT_OPTION] = "csv",
    contacts: Annotated[bool, LIST_CONTACTS_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """The most loyal customers for an exclusive preview: RFM champions or top CLV."""
    from shopfunnel.programs.giveaways import preview_list
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        people = preview_list(
            store,
            by=by,  # type: ignore[arg-type]
            limit=limit,
            groups=[g for g in groups.split(",") if g.strip()],
        )
        emit(list_out(store, people, export, contacts), format, out)
