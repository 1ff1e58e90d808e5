"""Command-line options shared by more than one command, declared once.

Use as ``Annotated[str | None, AUDIENCE_OPTION] = None``: the declaration carries the flag
and its help text, the command keeps its own default. The three options every printing
command takes (``--db``, ``--format``, ``--out``) live beside the printing in
:mod:`shopfunnel.cli.output`.
"""

from __future__ import annotations

import typer

# who a programme is for (offers, giveaways, recommendations)
AUDIENCE_OPTION = typer.Option(
    "--audience",
    help="Who qualifies: all, customers, stage=NAME, status=NAME, rfm=G1|G2, persons=ID1|ID2 "
    "(conditions joined by commas), e.g. 'rfm=champions|loyal'.",
)
PERSONS_FILE_OPTION = typer.Option(
    "--persons-file",
    help="A file of person ids instead: one per line, or a CSV with a person_id column.",
)

# a person list written for delivery by a programme command
LIST_CONTACTS_OPTION = typer.Option(
    "--contacts", help="Add e-mail and phone, in clear, to a csv list."
)
LIST_EXPORT_OPTION = typer.Option(
    help="csv (for your e-mail tool), or meta / google (hashed contacts for an ad platform)."
)

# open carts (audience abandoned-carts, offer near)
LOOKBACK_OPTION = typer.Option(help="Only carts from this period before the last event.")

# an order-value rule replayed or run (whatif, offer create, offer show)
FREE_SHIPPING_OPTION = typer.Option(
    "--free-shipping", help="Free shipping from this order value, e.g. 75."
)
MARGIN_OPTION = typer.Option(
    "--margin",
    help="Gross margin (0.4 for 40%) for the break-even; default judges on revenue.",
)
