"""``shopfunnel flow``: flows (audience + delay + exit rule + cooldown): list them, run one.

Without a sub-command, ``flow --from D1 --to D2`` still shows the stage flow between two
dates (:func:`shopfunnel.cli.stages.flow`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shopfunnel import format as fmt
from shopfunnel.cli.application import app
from shopfunnel.cli.engine import Engine, EngineOpt, EventsOpt, TableOpt
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    TERMINAL_ROWS,
    Format,
    console,
    emit,
    err_console,
    friendly_errors,
    records,
    rich_table,
)

MODEL_OPTION = typer.Option(
    "--model",
    help="The model file (default: ./shopfunnel.toml, else shopfunnel.toml beside the store, else none).",
)

flow_app = typer.Typer(
    help=(
        "Flows: who is due a message now (cart and browse abandonment, post-purchase, win-back), "
        "each sent once.\n\n"
        "A flow is a trigger, a delay, an exit rule and a cooldown; `flow run` lists who is due "
        "with what they left behind (cart items and value, last product viewed) and marks them "
        "sent. Change a flow or add one in shopfunnel.toml ([flows.NAME]); rules: docs/audiences.md.\n\n"
        "Examples:\n\n"
        "    shopfunnel flow list --db shop.duckdb\n\n"
        "    shopfunnel flow run cart-abandonment --db shop.duckdb --dry-run\n\n"
        "    shopfunnel flow run cart-abandonment --db shop.duckdb --now 2024-04-29T18:00 "
        "--contacts --format csv --out carts.csv   # for your e-mail tool, from cron\n\n"
        "Without a command, `flow --from D1 --to D2` shows the stage flow: persons by state at "
        "D1 (rows) and D2 (columns)."
    ),
    no_args_is_help=True,
    invoke_without_command=True,
    rich_markup_mode="markdown",
)
app.add_typer(flow_app, name="flow")


@flow_app.callback()
def flow_group(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option("--from", help="Stage flow: the first date.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Stage flow: the second date.")] = None,
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    model: Annotated[Path | None, MODEL_OPTION] = None,
    lookback: Annotated[
        str | None,
        typer.Option("--lookback", help="Stage flow: only events this recent count, e.g. 90d."),
    ] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if start is None or end is None:
        console.print(ctx.get_help())
        raise typer.Exit(code=0 if start is None and end is None else 2)
    from shopfunnel.cli.stages import flow as stage_flow_command

    stage_flow_command(
        start=start,
        end=end,
        db=db,
        format=format,
        out=out,
        model=model,
        lookback=lookback,
        engine=engine,
        events=events,
        table=table,
    )


@flow_app.command("list")
def flow_list(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    model: Annotated[Path | None, MODEL_OPTION] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """List the flows: trigger, exit, delay, cooldown, lookback, and how many were sent."""
    from shopfunnel.audiences.flows import flow_table
    from shopfunnel.audiences.saved import store_model
    from shopfunnel.store.store import Store

    with friendly_errors():
        the_model = store_model(db, model)
        with Store(db, read_only=True) as store:
            frame = flow_table(store, the_model)
        shown = frame.drop(columns=["description"])
        emit(
            frame,
            format,
            out,
            table=lambda: rich_table(
                shown, title=f"flows ({db})", formats={"last_sent_at": fmt.timestamp}
            ),
        )


@flow_app.command("run")
def flow_run(
    name: Annotated[str, typer.Argument(help="The flow, e.g. cart-abandonment.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Judge at this time, UTC (default: the store's latest event; on a live "
            "store pass the wall clock, e.g. $(date -u +%Y-%m-%dT%H:%M)).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List who is due without marking them sent.")
    ] = False,
    contacts: Annotated[
        bool,
        typer.Option("--contacts", help="Add e-mail and phone, in clear (for your e-mail tool)."),
    ] = False,
    model: Annotated[Path | None, MODEL_OPTION] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """List who is due this flow now, with what they left behind, and mark them sent.

    Each person is sent a flow once per trigger and not again within its cooldown; run it
    as often as you like (from cron: every 15 minutes). `--dry-run` marks nothing. Write the
    list for your e-mail tool with `--contacts --format csv --out due.csv`. Each message
    marked sent also goes to the webhook endpoints (`flow.due`); a flow with
    `schedule = true` in shopfunnel.toml is run by `shopfunnel serve` every minute.
    """
    from shopfunnel.audiences.flows import due_now, run_flow
    from shopfunnel.audiences.saved import store_model
    from shopfunnel.store.store import Store

    with friendly_errors():
        the_model = store_model(db, model)
        with Store(db, read_only=dry_run) as store:
            if dry_run:
                result = due_now(store, name, now=now, model=the_model, contacts=contacts)
            else:
                result = run_flow(store, name, now=now, model=the_model, contacts=contacts)
        counts = result.counts
        note = (
            f"{name} at {fmt.timestamp(result.now)}: {counts['due']:,} due"
            + (f", {counts['held_out']:,} held out" if counts["held_out"] else "")
            + f" (of {counts['triggered']:,} triggered: {counts['exited']:,} exited, "
            f"{counts['already_sent']:,} already sent, {counts['cooling_down']:,} in cooldown"
            + (
                f", {counts['not_in_audience']:,} not in {result.flow.audience}"
                if result.flow.audience
                else ""
            )
            + ")"
            + (
                " — dry run, nothing marked"
                if dry_run
                else (" — marked sent" if result.recorded else "")
            )
        )
        err_console.print(note, markup=False, highlight=False)
        if format == Format.json:
            emit(
                {
                    "flow": name,
                    "now": result.now,
                    "dry_run": dry_run,
                    "counts": counts,
                    "due": records(result.due),
                },
                format,
                out,
            )
            return
        emit(result.due, format, out, table=lambda: _due_table(result.due))


@flow_app.command("sent")
def flow_sent(
    name: Annotated[str | None, typer.Argument(help="One flow (default: all).")] = None,
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """The record of what flows marked sent (and held out): person, trigger, due and sent times."""
    from shopfunnel.audiences.flows import sends
    from shopfunnel.store.store import Store

    with friendly_errors():
        with Store(db, read_only=True) as store:
            frame = sends(store, name)
        emit(
            frame,
            format,
            out,
            table=lambda: rich_table(
                frame.head(TERMINAL_ROWS),
                title=f"{len(frame):,} sends",
                formats={c: fmt.timestamp for c in ("trigger_at", "due_at", "sent_at")},
            ),
        )


def _due_table(due: Any) -> Any:
    cols = [
        c
        for c in (
            "person_id",
            "trigger_event",
            "trigger_at",
            "cart_items",
            "cart_value",
            "last_viewed_item",
            "email",
        )
        if c in due.columns
    ]
    if len(due) > TERMINAL_ROWS:
        err_console.print(
            f"showing the first {TERMINAL_ROWS:,} of {len(due):,}: write them all "
            "with --out FILE (and --format csv)"
        )
    return rich_table(
        due.head(TERMINAL_ROWS)[cols],
        title=f"{len(due):,} due",
        formats={"trigger_at": fmt.timestamp},
    )
