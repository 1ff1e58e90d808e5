"""``shopfunnel funnel``: count a funnel over the store and show it as bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from shopfunnel.cli import output
from shopfunnel.cli.application import app
from shopfunnel.cli.engine import (
    Engine,
    EngineOpt,
    EventsOpt,
    TableOpt,
    is_spark,
    open_source,
)
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    emit,
    friendly_errors,
    rich_table,
)
from shopfunnel.errors import ConfigError

BAR_WIDTH = 20
STEPS_OPTION = typer.Option(
    "--steps",
    help="Steps in order, comma-separated; filters in brackets: "
    "'view_item[item_category=shoes|boots],add_to_cart,purchase' (quote keys or values with "
    'commas: ["utm campaign"="spring, sale"]).',
)
EXCLUDE_OPTION = typer.Option(
    "--exclude",
    help="An event that ends an attempt when it comes between the first and last "
    "step (repeatable); EVENT:2-3 only between steps 2 and 3. E.g. --exclude remove_from_cart.",
)
HOLD_OPTION = typer.Option(
    "--hold",
    help="A property every step of an attempt must share: item_id, order_id or a "
    "properties key your events carry.",
)
OPTIONAL_OPTION = typer.Option(
    "--optional", help="A step number that may be skipped (repeatable; not the first or last)."
)
ALLOW_UNKNOWN_OPTION = typer.Option(
    "--allow-unknown",
    help="Count even if a step, filter key, --by or --hold names nothing in "
    "the store (otherwise it is refused with the closest names).",
)
OPEN_OPTION = typer.Option(
    "--open", help="Open funnel: an attempt may start at any step (as GA4's open funnels)."
)
WINDOW_OPTION = typer.Option(
    "--window", help="Time allowed from step 1 to the last step: 30m, 12h, 7d…"
)
ORDER_OPTION = typer.Option(
    "--order", help="ordered (other events may come between), strict (none may) or any."
)
BY_OPTION = typer.Option(
    "--by", help="Break down by a column or property: channel, device, country, utm_campaign…"
)
ATTRIBUTION_OPTION = typer.Option("--attribution", help="For --by: first, last or per_step.")
TREND_OPTION = typer.Option(
    "--trend", help="Conversion by day, week or month of the attempt's start."
)
COUNT_BY_OPTION = typer.Option("--count-by", help="person (default) or session.")
DROPPED_OPTION = typer.Option(
    "--dropped", help="List the persons who reached step K and not K+1 instead (with --out F)."
)


def _bar_table(result: object) -> object:
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    # the step table's columns: printing a funnel needs no pandas (docs/adr/0158)
    persons_by_step = [int(p) for p in result._steps["persons"]]  # type: ignore[attr-defined]
    first = persons_by_step[0] if persons_by_step else 0
    table = Table(title=result._title(), header_style="bold")  # type: ignore[attr-defined]
    for col, justify in [
        ("step", "right"),
        ("name", "left"),
        ("", "left"),
        ("persons", "right"),
        ("from start", "right"),
        ("from previous", "right"),
        ("drop-off", "right"),
        ("median time", "right"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    shown = result._display_columns()  # type: ignore[attr-defined]
    rows = [dict(zip(shown, values, strict=True)) for values in zip(*shown.values(), strict=True)]
    for row, persons in zip(rows, persons_by_step, strict=True):
        filled = round(BAR_WIDTH * persons / first) if first else 0
        bar = f"[cyan]{'█' * filled}[/][dim]{'░' * (BAR_WIDTH - filled)}[/]"
        drop = row["drop-off"]
        table.add_row(
            str(row["step"]),
            escape(str(row["name"])),
            bar,
            f"{persons:,}",
            row["from start"],
            row["from previous"],
            f"[red]{drop:,}[/]" if drop else "0",
            row["median time"],
        )
    from shopfunnel import format as fmt
    from shopfunnel.funnel.result import TREND_NOTE

    rates = {c: fmt.pct for c in ("conversion_from_previous", "conversion_from_start")}
    parts: list[Any] = [table]
    if result.breakdown is not None:  # type: ignore[attr-defined]
        parts.append(
            rich_table(
                result.breakdown,  # type: ignore[attr-defined]
                title=f"by {result.by} "  # type: ignore[attr-defined]
                f"({result.attribution} touch)",  # type: ignore[attr-defined]
                formats=rates,
            )
        )
    trend = result.trend_with_total()  # type: ignore[attr-defined]
    if trend is not None:
        parts.append(
            rich_table(
                trend.drop(columns=["conversion"]),
                title=f"trend by period of the attempt's start ({TREND_NOTE})",
                formats=rates,
            )
        )
    return Group(*parts)


@app.command("funnel")
def funnel_command(
    steps: Annotated[str, STEPS_OPTION],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    window: Annotated[str, WINDOW_OPTION] = "7d",
    order: Annotated[str, ORDER_OPTION] = "ordered",
    by: Annotated[str | None, BY_OPTION] = None,
    attribution: Annotated[str, ATTRIBUTION_OPTION] = "first",
    trend: Annotated[str | None, TREND_OPTION] = None,
    count_by: Annotated[str, COUNT_BY_OPTION] = "person",
    dropped: Annotated[int | None, DROPPED_OPTION] = None,
    exclude: Annotated[list[str] | None, EXCLUDE_OPTION] = None,
    hold: Annotated[str | None, HOLD_OPTION] = None,
    optional: Annotated[list[int] | None, OPTIONAL_OPTION] = None,
    open_entry: Annotated[bool, OPEN_OPTION] = False,
    allow_unknown: Annotated[bool, ALLOW_UNKNOWN_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Count a funnel: persons reaching each step in order within the window.

    An attempt starts at any step-1 event; the window includes its end; events at the same
    instant are taken in step order. See docs/funnels.md for every definition.

    Examples:

    shopfunnel funnel --steps view_item,add_to_cart,begin_checkout,purchase --by device

    shopfunnel funnel --steps 'view_item[item_category=shoes],add_to_cart,purchase' --exclude remove_from_cart --hold item_id

    shopfunnel funnel --steps view_item,add_to_cart,begin_checkout,purchase --optional 3 --open --trend week

    shopfunnel funnel --steps view_item,purchase --engine spark --events 'lake/events/*.parquet'
    """
    from shopfunnel.funnel.api import funnel
    from shopfunnel.funnel.syntax import parse_exclusion, parse_steps

    with friendly_errors():
        if not steps.strip():
            raise ConfigError("--steps is empty: give event names, e.g. --steps view_item,purchase")
        step_list = parse_steps(steps)
        exclusions = [parse_exclusion(e, len(step_list)) for e in exclude or []]
        if Engine(engine) == Engine.local:
            from shopfunnel import jit

            jit.start_in_background()  # numba starts while the store opens
        with open_source(db, engine, events, table) as source, _timeline_note(source):
            result = funnel(
                source,
                step_list,
                window=window,
                order=order,
                by=by,
                attribution=attribution,
                trend=trend,
                count_by=count_by,
                exclusions=exclusions,
                hold=hold,
                optional_steps=optional or [],
                open_entry=open_entry,
                allow_unknown=allow_unknown,
            )
            if dropped is not None:
                persons = result.dropped(dropped)
                fmt = Format.csv if format == Format.table and out is not None else format
                emit(persons, fmt, out)
                if out is not None:
                    output.console.print(f"{len(persons):,} dropped after step {dropped}")
                return
        if format == Format.csv:
            emit(_long_table(result), format, out)
        else:
            emit(result.to_dict(), format, out, table=lambda: _bar_table(result))


def _long_table(result: Any) -> Any:
    """Every table of the result in one CSV: a ``table`` column says which (steps,
    total_conversions, breakdown, trend) each row belongs to; columns a table lacks are
    empty. The trend ends with its ``total`` rows (the funnel itself, not the sum of the
    periods)."""
    import pandas as pd

    breakdown, trend = result.breakdown, result.trend_with_total()
    taken = {
        "table",
        *result.steps.columns,
        *result.total_conversions.columns,
        *(trend.columns if trend is not None else []),
    }
    if breakdown is not None and result.by_column in taken:  # a property called "period"
        breakdown = breakdown.rename(columns={result.by_column: f"{result.by_column} (by)"})
    parts = [
        ("steps", result.steps),
        ("total_conversions", result.total_conversions),
        ("breakdown", breakdown),
        ("trend", trend),
    ]
    # whole numbers stay whole where another table leaves their column empty
    frames = [
        frame.assign(table=name).astype(
            {c: "Int64" for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])}
        )
        for name, frame in parts
        if frame is not None
    ]
    long = pd.concat(frames, ignore_index=True)
    return long[["table", *[c for c in long.columns if c != "table"]]]


@contextmanager
def _timeline_note(store: Any) -> Iterator[None]:
    """A spinner while a large store's timeline is (re)built: the first funnel after a
    load sorts the events once (docs/funnels.md)."""
    if is_spark(store):
        yield
        return
    from shopfunnel.store.summary import event_count
    from shopfunnel.store.timeline import is_current

    if is_current(store) or event_count(store) < 1_000_000:
        yield
        return
    with output.err_console.status(
        "Sorting the events by person once, for fast funnels (again only after a load)…"
    ):
        yield
