"""``load-dataset``: put a built-in real data set into a store in one command."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.output import DB_OPTION, console, friendly_errors


class DatasetName(StrEnum):
    cdnow = "cdnow"


class CdnowKind(StrEnum):
    master = "master"
    sample = "sample"


@app.command("load-dataset")
def load_dataset(
    name: Annotated[
        DatasetName,
        typer.Argument(
            help=("cdnow: purchases at an online CD store, 1997-1998 (23,570 customers).")
        ),
    ],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    kind: Annotated[
        CdnowKind,
        typer.Option(
            "--kind",
            help=("master (all 69,659 purchases) or sample (the 1/10 sample of the papers)."),
        ),
    ] = CdnowKind.master,
) -> None:
    """Load a built-in data set into the store (through the order-export importer).

    Loading it twice adds nothing. Then try `shopfunnel clv --db DB`.
    """
    from shopfunnel.ingest.datasets import load_dataset as load
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        result = load(name.value, store, kind=kind.value)  # type: ignore[arg-type]
        console.print(
            f"{name.value} ({kind.value}): read {result.rows_read:,} orders, added "
            f"{result.rows_added:,}, {result.duplicates:,} already stored, into {db}"
        )
