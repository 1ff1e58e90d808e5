"""``shopfunnel recommend``: items viewed or bought together, for an item, for persons, or
measured against most-popular on held-out sessions (docs/programs.md, "Recommendations")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.options import AUDIENCE_OPTION, PERSONS_FILE_OPTION
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    emit,
    err_console,
    friendly_errors,
)
from shopfunnel.cli.programs import audience_spec
from shopfunnel.errors import ConfigError


@app.command()
def recommend(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    item: Annotated[
        str | None, typer.Option("--item", help="Items related to this item id.")
    ] = None,
    person: Annotated[
        list[str] | None,
        typer.Option("--person", help="Recommendations for this person (repeat for more)."),
    ] = None,
    audience: Annotated[str | None, AUDIENCE_OPTION] = None,
    persons_file: Annotated[Path | None, PERSONS_FILE_OPTION] = None,
    evaluate: Annotated[
        bool,
        typer.Option(
            "--evaluate",
            help="Measure the hit rate on each person's held-out last session against most popular.",
        ),
    ] = False,
    kind: Annotated[
        str, typer.Option(help="viewed (together in a session) or bought (together in an order).")
    ] = "viewed",
    score: Annotated[str, typer.Option(help="cosine or lift.")] = "cosine",
    top: Annotated[int, typer.Option(help="Items per item or person.")] = 10,
    min_support: Annotated[
        int,
        typer.Option(
            "--min-support", help="A pair must occur in at least this many sessions or orders."
        ),
    ] = 3,
    include_viewed: Annotated[
        bool,
        typer.Option("--include-viewed", help="Let a person's viewed items be recommended back."),
    ] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Items viewed or bought together, for an item or for persons (a CSV for an e-mail
    tool with --format csv --out recs.csv). Definitions: docs/programs.md."""
    from shopfunnel.programs import recommend as r
    from shopfunnel.programs.audience import qualifying_persons
    from shopfunnel.store.store import Store

    with friendly_errors():
        chosen = (
            sum(x is not None and x != [] for x in (item, person, audience or persons_file))
            + evaluate
        )
        if chosen != 1:
            raise ConfigError(
                "give one of --item ID, --person ID, --audience SPEC / --persons-file FILE, or --evaluate"
            )
        with Store(db, read_only=True) as store:
            if evaluate:
                result = r.evaluate_recommendations(
                    store,
                    ks=(5, 10),
                    kind=kind,  # type: ignore[arg-type]
                    score=score,  # type: ignore[arg-type]
                    include_viewed=include_viewed,
                    min_support=min_support,
                )
            elif item is not None:
                result = r.related_items(
                    store,
                    item,
                    kind=kind,  # type: ignore[arg-type]
                    score=score,  # type: ignore[arg-type]
                    top=top,
                    min_support=min_support,
                )
            else:
                who = person or qualifying_persons(
                    store, audience_spec(audience, persons_file, None)
                )
                result = r.recommend_for_persons(
                    store,
                    who,
                    kind=kind,  # type: ignore[arg-type]
                    score=score,  # type: ignore[arg-type]
                    top=top,
                    include_viewed=include_viewed,
                    min_support=min_support,
                )
        if result.empty and not evaluate:
            err_console.print(
                "nothing to recommend: no pair reaches --min-support (try a lower one)"
            )
        emit(result, format, out)
