"""``shopfunnel report``: write the HTML report of a store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shopfunnel.cli.application import app
from shopfunnel.cli.diagnose import AOV_OPTION
from shopfunnel.cli.engine import Engine, EngineOpt, EventsOpt, TableOpt, open_source
from shopfunnel.cli.output import DB_OPTION, console, err_console, friendly_errors, say_time


@app.command()
def report(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    title: Annotated[
        str | None, typer.Option("--title", help="The page title (default: Your sales funnel).")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="The model file (default: ./shopfunnel.toml if present, else the defaults).",
        ),
    ] = None,
    aov: Annotated[float | None, AOV_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Write one self-contained HTML report: the diagnosis first, then every chart.

    The file works offline (plotly.js is inside it, once) and can be mailed or opened
    from disk. With --engine spark the sections are computed on Apache Spark from raw
    events (--events or --table) with the store's rules; experiments and programs need a
    store (docs/spark.md).

    \b
    shopfunnel report --engine spark --events 'lake/events/*.parquet' --out report.html
    """
    from shopfunnel.diagnosis.order_value import check_aov
    from shopfunnel.model import load_model
    from shopfunnel.report import make_report

    with friendly_errors():
        average_order_value = check_aov(aov)
        started = time.perf_counter()
        funnel_model = load_model(model)
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        with open_source(db, engine, events, table) as store, progress:
            task = progress.add_task("report", total=None)
            built = make_report(
                store,
                title=title,
                model=funnel_model,
                average_order_value=average_order_value,
                progress=lambda name: progress.update(task, description=f"report: {name}"),
            )
        for sid, seconds in sorted(built.seconds.items(), key=lambda kv: -kv[1]):
            say_time(f"section {sid}", seconds)
        for sid, problem in built.problems.items():
            err_console.print(
                f"[yellow]note:[/] section {sid} left out: {problem}", highlight=False
            )
        out.write_text(built.html, encoding="utf-8")
        size_mb = out.stat().st_size / 1e6
        console.print(
            f"wrote {out} ({size_mb:.1f} MB, {len(built.seconds)} sections) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        if built.top_findings:
            console.print("[bold]What to fix first[/]")
            for line in built.top_findings:
                console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
