"""The Typer application every command module registers on, and the lazy command table.

``shopfunnel --help`` and every command must start fast, so a command's module (and the
libraries it needs: pandas, DuckDB, numba, FastAPI, Plotly) is imported only when that
command runs. :data:`COMMANDS` names each command's module and its one-line help, which the
top-level help lists without importing anything; a test checks the table against what the
modules really register.
"""

from __future__ import annotations

import importlib

import typer
from typer.core import TyperCommand, TyperGroup

# command -> (module under shopfunnel.cli, one-line help shown by `shopfunnel --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "Build a sample store in a DuckDB file and show what shopfunnel sees in it."),
    "funnel": ("funnel", "Count a funnel: persons reaching each step in order within the window."),
    "stages": (
        "stages",
        "Persons per stage (Awareness → Retention), conversion between stages, and who is active, stalled, lapsed or gone.",
    ),
    "persons": ("stages", "The persons at a stage with a status: an audience, e.g."),
    "flow": (
        "flows",
        "Flows: who is due a message now (cart and browse abandonment, post-purchase, win-back), each sent once.",
    ),
    "diagnose": (
        "diagnose",
        "Find the weakest stage and why, ranked by revenue at stake, with the tactics that fit.",
    ),
    "whatif": (
        "diagnose",
        "Replay a tiered discount or a free-shipping threshold on past orders: share of orders affected, cost, and the uplift in orders or order value...",
    ),
    "report": (
        "report",
        "Write one self-contained HTML report: the diagnosis first, then every chart.",
    ),
    "retention": (
        "customers",
        "Do customers come back? Cohorts by first order, repeat-purchase rate, time between orders, orders per customer, AOV, revenue per customer, refund...",
    ),
    "rfm": (
        "customers",
        "Recency, frequency and monetary scores (1-5 by quantile) and Shopify-style groups: champions, loyal, active, new, promising, needs_attention,...",
    ),
    "clv": (
        "customers",
        "Customer lifetime value: BG/NBD (P(alive), expected purchases) and Gamma-Gamma (expected spend per purchase), fitted on the store's orders.",
    ),
    "winback": (
        "customers",
        "Lapsed customers to win back, most valuable first (export with --format csv --out).",
    ),
    "audience": ("audiences", "Saved audiences: who to reach, defined once, kept fresh."),
    "ingest": ("data", "Load event files into the store."),
    "spark-cache": (
        "spark_cache",
        "The events Spark prepared with the store's load rules (persons, sessions, channels), kept as Parquet per source: show where, or clear them.",
    ),
    "info": (
        "data",
        "What the store holds: events, persons, sessions, orders, date range, events by name and channel.",
    ),
    "load-dataset": (
        "datasets",
        "Load a built-in data set into the store (through the order-export importer).",
    ),
    "sample": (
        "sample",
        "Write a realistic sample store's events to a Parquet file, ready for `shopfunnel ingest`.",
    ),
    "serve": (
        "serve",
        "Run the event collector, the tracking snippet (/sdk.js), the dashboard (/) and the JSON API (/v1).",
    ),
    "keys": (
        "serve",
        "Write keys: what a storefront or a Segment/RudderStack SDK sends events with.",
    ),
    "erase": (
        "erase",
        "Erase a person (a GDPR request): their events, identity links, audience memberships, sent flows and webhook entries, the timeline, and the spooled...",
    ),
    "experiment": (
        "experiments",
        "Experiments: who saw which variant and what it changed; compare two arms and check the split (frequentist or Bayesian, as GrowthBook).",
    ),
    "offer": (
        "offers",
        "Offers: tiered discounts, free shipping and time-limited deals with one code per person.",
    ),
    "referral": (
        "referrals",
        "The referral programme: codes, the ledger of referred first orders, payouts.",
    ),
    "giveaway": ("giveaways", "Giveaways anyone can re-draw from the recorded seed and entrants."),
    "preview": (
        "giveaways",
        "The most loyal customers for an exclusive preview: RFM champions or top CLV.",
    ),
    "recommend": (
        "recommend",
        "Items viewed or bought together, for an item or for persons (a CSV for an e-mail tool with --format csv --out recs.csv).",
    ),
    "person": (
        "journey",
        "One person's journey: identities, sessions with channel and device, events in order with products and values, stage changes, orders, audiences and...",
    ),
    "webhooks": (
        "webhooks",
        "Webhooks: audience entries and exits POSTed as signed JSON to your URLs, with retries.",
    ),
}


def load_command_module(name: str) -> None:
    """Import the module that registers command ``name``."""
    importlib.import_module(f"shopfunnel.cli.{COMMANDS[name][0]}")


def load_all_commands() -> None:
    """Import every command module (for tests, and for a name that is not in the table)."""
    for module in sorted({m for m, _ in COMMANDS.values()}):
        importlib.import_module(f"shopfunnel.cli.{module}")


class LazyGroup(TyperGroup):
    """Lists every command of :data:`COMMANDS`; one whose module is not imported shows
    its one-line help from the table (a placeholder, never run: :func:`shopfunnel.cli.main`
    imports the module of the command it runs)."""

    def list_commands(self, ctx):  # type: ignore[no-untyped-def]
        return list(dict.fromkeys([*super().list_commands(ctx), *COMMANDS]))

    def get_command(self, ctx, cmd_name):  # type: ignore[no-untyped-def]
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1])
        return command


app = typer.Typer(
    name="shopfunnel",
    cls=LazyGroup,
    help=(
        "See your store's sales funnel and act on it.\n\n"
        "Start with `shopfunnel demo` (a sample store in shopfunnel.duckdb), or load your own "
        "events with `shopfunnel ingest FILE --db shop.duckdb`."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Say how long the command took and its peak memory."
    ),
) -> None:
    # Also makes the app a group whatever number of command modules is loaded (one, for a run).
    from shopfunnel.cli.output import set_verbose  # every command prints through it

    set_verbose(verbose)
    if verbose:
        import time

        started = time.perf_counter()

        def report() -> None:
            import resource
            import sys

            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"took {time.perf_counter() - started:.2f} s, peak memory {peak_mib:,.0f} MiB",
                file=sys.stderr,
            )

        ctx.call_on_close(report)
