"""``shopfunnel demo``: the whole product on a sample store, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.rule import Rule

from shopfunnel.cli import data as data_cmds
from shopfunnel.cli import funnel as funnel_cmds
from shopfunnel.cli import report as report_cmds
from shopfunnel.cli import stages as stages_cmds
from shopfunnel.cli.application import app
from shopfunnel.cli.output import DB_OPTION, Format, console, friendly_errors
from shopfunnel.model import load_model
from shopfunnel.store.store import Store

# The demo store has one planted incident, so the diagnosis has something real to find.
DEMO_INCIDENT = "checkout-failure:2024-03-12:3:mobile"


def _build_store(db: str, events: int, seed: int) -> None:
    """Generate the sample straight into a new store at ``db`` (no Parquet in between;
    the same store as ``shopfunnel sample`` + ``shopfunnel ingest`` make, ADR 0164), with
    a progress bar, then add the sample's offer and codes."""
    from shopfunnel.cli.programs import load_sample_programs
    from shopfunnel.cli.sample import sample_progress
    from shopfunnel.sample import load_sample, parse_incident

    incident = parse_incident(DEMO_INCIDENT)
    with Store(db) as store:
        with sample_progress() as progress:
            task = progress.add_task("generating and loading events", total=events)
            result = load_sample(
                store,
                events,
                seed=seed,
                incidents=[incident],
                chunk_events=min(1_000_000, max(events // 10, 100_000)),
                progress=lambda done: progress.update(task, completed=done),
            )
        console.print(
            f"loaded {result.rows_added:,} sample events (seed {seed}) into {db} "
            f"with 1 incident: {incident}"
        )
        load_sample_programs(store, seed=seed)  # the sample's offer and codes (docs/programs.md)


def _has_events(db: str) -> bool:
    if not Path(db).exists():
        return False
    with Store(db, read_only=True) as store:
        return store.info()["events"] > 0


@app.command()
def demo(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    events: Annotated[
        int, typer.Option("--events", "-n", help="Size of the sample store.")
    ] = 500_000,
    seed: Annotated[int, typer.Option(help="Random seed of the sample store.")] = 1,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Rebuild the store even if it already holds events.")
    ] = False,
    report: Annotated[
        Path, typer.Option("--report", help="Where to write the HTML report.")
    ] = Path("report.html"),
) -> None:
    """Build a sample store in a DuckDB file and show what shopfunnel sees in it.

    Generates a realistic store (channels, devices, multi-session journeys, checkout steps,
    repeat purchases, and a planted three-day mobile checkout failure), loads it into
    `--db`, then prints the store summary, the purchase funnel and the five stages, writes
    the self-contained HTML report (`--report`), prints the diagnosis's top findings and
    one flow run: the cart abandoners due a reminder now, with what they left behind (a
    dry run: nothing is marked sent).
    Run it again to reuse the store; `--fresh` rebuilds it.
    """
    with friendly_errors():
        if fresh or not _has_events(db):
            import shutil

            from shopfunnel.store.timeline import folder_for

            for leftover in (Path(db), Path(db + ".wal")):
                leftover.unlink(missing_ok=True)
            beside = folder_for(db)  # the old store's timeline and caches go with it
            if beside is not None:
                shutil.rmtree(beside, ignore_errors=True)
            console.print(Rule("1. a sample store"))
            _build_store(db, events, seed)
        else:
            console.print(f"using the existing store {db} (pass --fresh to rebuild it)")
        model = load_model(None)
        console.print(Rule("2. what the store holds"))
        data_cmds.info(db=db, format=Format.table, out=None)
        console.print(Rule("3. the purchase funnel"))
        funnel_cmds.funnel_command(
            steps=",".join(model.funnel.steps),
            db=db,
            window=str(model.funnel.window),
            allow_unknown=True,
        )
        console.print(Rule("4. the five stages"))
        stages_cmds.stages(db=db)
        console.print(Rule("5. the report, and what to fix first"))
        report_cmds.report(db=db, out=report)
        console.print(Rule("6. a flow: who to remind of their cart now"))
        from shopfunnel.cli.flows import flow_run

        flow_run(
            name="cart-abandonment",
            db=db,
            dry_run=True,
            now=None,
            contacts=False,
            model=None,
            format=Format.table,
            out=None,
        )
        me = invocation()
        console.print(
            f"\nOpen {report} in a browser. Next: `{me} diagnose --db {db}`, `{me} funnel --db {db} --steps view_item,add_to_cart,purchase --by device`, "
            f"`{me} persons --db {db} --stage decision --status stalled`, "
            f"`{me} offer show spring-tiers --db {db}`, "
            f"`{me} flow run cart-abandonment --db {db}` (marks them sent), "
            f"`{me} --help` for everything."
        )


def invocation() -> str:
    """How to call shopfunnel again from here: ``shopfunnel`` when that name on PATH is this
    program, else the path it was started by (``.venv/bin/shopfunnel`` after ``make demo``),
    or ``python -m shopfunnel``."""
    import os
    import shutil
    import sys

    started = sys.argv[0]
    if os.path.basename(started) != "shopfunnel":
        return f"{os.path.relpath(sys.executable) if os.path.isabs(sys.executable) else sys.executable} -m shopfunnel"
    found = shutil.which("shopfunnel")
    if found and os.path.realpath(found) == os.path.realpath(started):
        return "shopfunnel"
    return os.path.relpath(started)
