"""The ``sample`` command: write a sample store's events to a Parquet file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from shopfunnel.cli.application import app
from shopfunnel.cli.output import console, friendly_errors
from shopfunnel.sample import (
    DEFAULT_DAYS,
    DEFAULT_START,
    events_for_sessions,
    parse_incident,
    write_sample,
)

_INCIDENT_HELP = (
    "Plant an incident (repeatable), e.g. checkout-failure:2024-02-10:3:mobile, "
    "payment-outage:2024-03-01T10:00:12h, traffic-spike:2024-03-20:2:flash_promo, "
    "conversion-drop:2024-03-01:30:add_payment_info:0.76:device=mobile. "
    "The forms are listed above."
)


def sample_progress() -> Progress:
    """The progress bar of a sample being made: what, a bar, done of total, time."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@app.command()
def sample(
    events: Annotated[
        int, typer.Option("--events", "-n", help="How many events to write (exactly).")
    ] = 1_000_000,
    out: Annotated[Path, typer.Option("--out", "-o", help="The Parquet file to write.")] = Path(
        "sample.parquet"
    ),
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: the same seed gives the same events.")
    ] = 0,
    start: Annotated[
        str, typer.Option("--start", help="First day of the sample (UTC date).")
    ] = DEFAULT_START,
    days: Annotated[
        int, typer.Option("--days", help="How many days the sample covers.")
    ] = DEFAULT_DAYS,
    incident: Annotated[list[str] | None, typer.Option("--incident", help=_INCIDENT_HELP)] = None,
    sessions_per_day: Annotated[
        float | None,
        typer.Option(
            "--sessions-per-day",
            help="Size the sample by traffic instead of --events: about this many sessions a "
            "day (10 makes a small shop).",
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            help="Run an A/B test with a planted effect: KEY[:EFFECT[:START]], "
            "EFFECT in log-odds at the purchase step (1.0 lifts about 84% to 93%); exposure events "
            "come on top of --events. See docs/sample.md.",
        ),
    ] = None,
) -> None:
    """Write a realistic sample store's events to a Parquet file, ready for `shopfunnel ingest`.

    Visitors arrive through channels of different quality, browse a catalogue over
    several sessions, abandon carts, check out in steps, buy again over months and
    sometimes ask for refunds. Rates are calibrated to published figures (about 48% of
    sessions view a product, 14.5% add to cart, 3.3% buy); see docs/sample.md.

    **Incidents** (`--incident`, repeatable; START is a UTC date `2024-02-10` or time
    `2024-03-01T10:00`; DAYS may end in `d`, HOURS in `h`):

    - `checkout-failure:START[:DAYS[:DEVICE[:STEP]]]`: checkout broken on one device
      (defaults 3 days, mobile, add_payment_info): nobody on DEVICE gets past STEP.

    - `payment-outage:START[:HOURS]`: no purchase on any device for HOURS (default 12);
      checkouts and payment attempts go on.

    - `traffic-spike:START[:DAYS[:CAMPAIGN[:CHANNEL[:MULTIPLIER]]]]`: a campaign
      (defaults 2 days, flash_promo, paid social, 4 times the channel's new visitors)
      brings visitors who barely convert.

    - `conversion-drop:START[:DAYS[:STEP[:KEEP[:SEGMENT]]]]`: STEP converts at KEEP
      times its usual rate (defaults 30 days, add_payment_info, 0.5) on SEGMENT
      (`device=mobile`, `channel=email`, `country=DE`, or `all`, the default).

    Example: `shopfunnel sample --events 1000000 --seed 1 --out s.parquet
    --incident checkout-failure:2024-02-10:3:mobile`

    A small shop with a month-long mobile checkout problem and a 20-day payment failure:
    `shopfunnel sample --sessions-per-day 10 --days 180 --out small.parquet
    --incident conversion-drop:2024-03-01:30:add_payment_info:0.76:device=mobile
    --incident conversion-drop:2024-05-01:20:purchase:0.375`
    """
    with friendly_errors():
        from shopfunnel.sample.experiment import parse_experiment

        planted = [parse_incident(spec) for spec in incident or []]
        test = parse_experiment(experiment) if experiment else None
        if sessions_per_day is not None:
            events = events_for_sessions(
                sessions_per_day,
                seed=seed,
                start=start,
                days=days,
                incidents=planted,
                experiment=test,
            )
        with sample_progress() as progress:
            task = progress.add_task(f"writing {out.name}", total=events)
            path = write_sample(
                out,
                events,
                seed=seed,
                start=start,
                days=days,
                incidents=planted,
                experiment=test,
                chunk_events=min(2_000_000, max(events // 20, 100_000)),
                progress=lambda done: progress.update(task, completed=done),
            )
        console.print(
            f"wrote {events:,} events to {path}"
            + (
                f" with {len(planted)} incident(s): " + "; ".join(map(str, planted))
                if planted
                else ""
            )
            + (f" and experiment {test.key!r} (effect {test.effect:g})" if test else "")
        )
