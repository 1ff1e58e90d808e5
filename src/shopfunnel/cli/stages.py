"""Commands for the five-stage model: ``stages``, ``persons``, and the stage flow that
``shopfunnel flow --from D1 --to D2`` shows (the ``flow`` group lives in :mod:`.flows`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from shopfunnel import format as fmt
from shopfunnel.cli.application import app
from shopfunnel.cli.engine import Engine, EngineOpt, EventsOpt, TableOpt, open_source
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    console,
    emit,
    err_console,
    friendly_errors,
    rich_table,
    working,
)
from shopfunnel.model import Model, load_model
from shopfunnel.stages.placement import persons as select_persons
from shopfunnel.stages.placement import placement
from shopfunnel.stages.summary import stage_flow, stage_summary

MODEL_OPTION = typer.Option(
    "--model", help="The model file (default: ./shopfunnel.toml if present, else the defaults)."
)
AS_OF_OPTION = typer.Option(
    "--as-of", help="Place persons as of this date or time (default: the latest event)."
)
LOOKBACK_OPTION = typer.Option(
    "--lookback", help="Only events this recent count, e.g. 90d (default: the model's, 365d)."
)
BAR_WIDTH = 20
TABLE_ROWS = 50
TABLE_COLUMNS = [
    "person_id",
    "stage",
    "status",
    "days_since_last_event",
    "days_in_stage",
    "first_channel",
    "orders",
    "revenue",
]


def _model(path: Path | None) -> Model:
    model = load_model(path)
    for name in model.unknown_sections():
        err_console.print(
            f"note: {model.source}: section [{name}] is not used by this command",
            style="dim",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return model


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records: NaN becomes null, timestamps ISO text."""
    return json.loads(df.to_json(orient="records", date_format="iso"))


def _number(value: float) -> float | None:
    return None if pd.isna(value) else float(value)


@app.command()
def stages(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    model: Annotated[Path | None, MODEL_OPTION] = None,
    as_of: Annotated[str | None, AS_OF_OPTION] = None,
    lookback: Annotated[str | None, LOOKBACK_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Persons per stage (Awareness → Retention), conversion between stages, and who is active, stalled, lapsed or gone.

    A person's stage is the furthest reached in the lookback period. A prospect is **stalled**
    when not seen for longer than 80% of those who came back to move on from that stage
    took, and **gone** past 95%; a customer is **lapsed** past their usual gap between
    orders and **gone** past the gap that 95% of repeat orders come within. See docs/stages.md.
    """
    with friendly_errors():
        the_model = _model(model)
        _start_kernels(engine)
        with (
            open_source(db, engine, events, table) as store,
            working("placing everyone in a stage…"),
        ):
            placed = placement(store, model=the_model, as_of=as_of, lookback=lookback)
            summary = stage_summary(store, placed=placed)
        payload = {
            "as_of": placed.as_of,
            "lookback_days": placed.lookback_days,
            "persons": placed.count,
            "lapsed_after_days": _number(placed.lapsed_after_days),
            "customer_gone_after_days": _number(placed.customer_gone_after_days),
            "lapsed_source": placed.lapsed_source,
            "model": the_model.source or "defaults",
            "stages": _records(summary),
        }

        def render() -> object:
            top = max(int(summary["reached"].max()), 1) if len(summary) else 1
            table = Table(
                title=f"stages as of {placed.as_of or '–'} (lookback {placed.lookback_days:g} days)",
                header_style="bold",
                box=box.SIMPLE_HEAD,
                pad_edge=False,
                collapse_padding=True,
            )
            names = max((len(n) for n in summary["stage"]), default=5)
            bar_width = min(BAR_WIDTH, console.width - names - 84)
            table.add_column("stage", no_wrap=True, min_width=names)
            if bar_width >= 3:
                table.add_column("", no_wrap=True, overflow="crop", max_width=bar_width)
            for name in (
                "reached",
                "at",
                "conv.",
                "active",
                "stalled",
                "lapsed",
                "gone",
                "stalled\nafter",
                "gone\nafter",
            ):
                table.add_column(name, justify="right", no_wrap=True)
            for row in summary.itertuples(index=False):
                bar = "█" * max(round(bar_width * row.reached / top), 1 if row.reached else 0)
                lead = [Text(bar.ljust(bar_width), style="cyan")] if bar_width >= 3 else []
                table.add_row(
                    row.stage,
                    *lead,
                    f"{row.reached:,}",
                    f"{row.at_stage:,}",
                    fmt.pct(row.conversion_from_previous),
                    f"{row.active:,}",
                    f"{row.stalled:,}",
                    f"{row.lapsed:,}",
                    f"{row.gone:,}",
                    _days(row.stalled_after_days),
                    _days(row.gone_after_days),
                )
            notes = [
                "reached: at this stage or later; at: at this stage now; conv.: reached / "
                "previous stage's reached.",
                *placed.status_notes(),
            ]
            return Group(table, Text("\n".join(notes), style="dim"))

        emit(summary if format == Format.csv else payload, format, out, table=render)


@app.command("persons")
def persons_command(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    stage: Annotated[
        str | None, typer.Option("--stage", help="Only this stage (any case), e.g. decision.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only this status: active, stalled, lapsed or gone."),
    ] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    model: Annotated[Path | None, MODEL_OPTION] = None,
    as_of: Annotated[str | None, AS_OF_OPTION] = None,
    lookback: Annotated[str | None, LOOKBACK_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """The persons at a stage with a status: an audience, e.g. `--stage decision --status stalled --out stalled.csv`.

    Statuses: active (seen or bought within the usual time), stalled (a prospect past it,
    still likely to come back: worth a reminder), lapsed (a customer past their usual gap
    between orders) and gone (past the point where almost nobody comes back).
    """
    with friendly_errors():
        the_model = _model(model)
        with (
            open_source(db, engine, events, table) as store,
            working("placing everyone in a stage…"),
        ):
            found = select_persons(
                store, stage, status, model=the_model, as_of=as_of, lookback=lookback
            )

        def render() -> object:
            shown = found[TABLE_COLUMNS].head(TABLE_ROWS)
            title = (
                f"{len(found):,} persons"
                + (f" at {stage}" if stage else "")
                + (f", {status}" if status else "")
            )
            table = rich_table(shown, title=title)
            if len(found) > TABLE_ROWS:
                more = Text(
                    f"showing {TABLE_ROWS} of {len(found):,}: use --out FILE --format csv for all",
                    style="dim",
                )
                return Group(table, more)
            return table

        emit(found, format, out, table=render)


def flow(
    start: Annotated[
        str, typer.Option("--from", help="The first date (a date alone means the end of that day).")
    ],
    end: Annotated[str, typer.Option("--to", help="The second date.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    model: Annotated[Path | None, MODEL_OPTION] = None,
    lookback: Annotated[str | None, LOOKBACK_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Stage flow between two dates: persons by state at --from (rows) and at --to (columns).

    States are the stages, `lapsed`, and `not seen` (no event in the lookback period yet,
    or any more).
    """
    with friendly_errors():
        the_model = _model(model)
        _start_kernels(engine)
        with (
            open_source(db, engine, events, table) as store,
            working(f"placing everyone at {start} and {end}…"),
        ):
            matrix = stage_flow(store, start, end, model=the_model, lookback=lookback)
        flat = matrix.reset_index()
        flat.columns = [str(c) for c in flat.columns]
        payload = {
            "from": start,
            "to": end,
            "states": list(matrix.columns),
            "rows": _records(flat),
        }

        def render() -> object:
            return rich_table(flat, title=f"stage flow: {start} (rows) → {end} (columns)")

        emit(flat if format == Format.csv else payload, format, out, table=render)


def _start_kernels(engine: Engine) -> None:
    """Start numba in a thread while the store opens (:func:`shopfunnel.jit.
    start_in_background`): the placement's pass over the timeline is compiled code."""
    if Engine(engine) == Engine.local:
        from shopfunnel import jit

        jit.start_in_background()


def _days(days: float) -> str:
    """A duration given in days, as people read it (``9d 14h``, ``3h 20m``)."""
    return fmt.duration(days * 86_400)
