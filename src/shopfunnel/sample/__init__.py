"""The sample store: a seeded, realistic event stream so shopfunnel runs with no data of
one's own, and so analyses can be tested against planted incidents.

The model (parameters in :mod:`shopfunnel.sample.model`, full description in
``docs/sample.md``):

- **Visitors** arrive on weekday-weighted days and hour-of-day-weighted times (a 60-day
  warm-up before the start keeps returning traffic steady), each with a first channel
  (GA4 channel names: organic search, paid search, paid social, …, with consistent UTM
  values and referrers), a device (more mobile at weekends), a country, a favourite
  category of the catalogue (8 categories × 40 products, log-normal prices) and, for 8%,
  an account.
- **Sessions** take up to six conditional steps, view_item → add_to_cart →
  begin_checkout → add_shipping_info → add_payment_info → purchase, each with probability
  ``sigmoid(intercept + effects)``; the log-odds effects are the channel (email and search
  above social and display), the device (mobile worse at checkout), returning, logged in,
  customer, cart waiting, weekend, shipping cost shown, forced account creation and a
  declined payment.
- **Journeys**: what a session ended with sets whether and when the visitor returns
  (browse, abandoned cart, purchase, customer), through a returning channel mix and
  sometimes on another device; customers buy again over months (at most 6 orders);
  4% of orders are refunded 2–30 days later.
- **Calibration**: the six intercepts are fitted (``benchmarks/calibrate_sample.py``) so
  that over all sessions 48% view a product, 14.5% add to cart and 3.3% buy (SaleCycle
  2017 via Smart Insights, as in DESIGN.md); the effects' directions follow Baymard
  (85.65% cart abandonment on mobile vs 70.19% overall; extra costs and forced account
  creation as top reasons to abandon). ``tests/test_sample.py`` holds the rates.
- **Incidents** (:class:`CheckoutFailure`, :class:`PaymentOutage`, :class:`TrafficSpike`,
  :class:`ConversionDrop`) are interventions on that model, applied by session start and
  (failures and outages) held by event time.
- **Traffic**: the size is a number of events, or ``sessions_per_day`` (from 10 a day up),
  turned into events by the events per session of the seed's first block
  (:func:`events_for_sessions`).

Blocks of 20,000 visitors each draw from their own stream ``(seed, block)``, so output
is deterministic, exact in size, and a smaller sample is a subset of a larger one.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from shopfunnel.errors import ConfigError
from shopfunnel.sample.engine import iter_blocks, make_plan
from shopfunnel.sample.experiment import PlantedExperiment
from shopfunnel.sample.incidents import (
    INCIDENT_SYNTAX,
    CheckoutFailure,
    ConversionDrop,
    Incident,
    PaymentOutage,
    TrafficSpike,
    parse_incident,
)
from shopfunnel.sample.plan import Plan
from shopfunnel.store import schema
from shopfunnel.store.staged import LoadResult

if TYPE_CHECKING:
    from shopfunnel.store.store import Store

DEFAULT_START = "2024-01-01"
DEFAULT_DAYS = 120


def _check_n(n_events: int) -> int:
    if not isinstance(n_events, int) or isinstance(n_events, bool) or n_events < 1:
        raise ConfigError(
            f"n_events={n_events!r} is not valid: ask for a whole number of events ≥ 1"
        )
    return n_events


def events_for_sessions(
    sessions_per_day: float,
    *,
    seed: int = 0,
    start: str | date | datetime = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    incidents: Sequence[Incident] = (),
    experiment: PlantedExperiment | None = None,
) -> int:
    """How many events make a sample of about ``sessions_per_day`` sessions a day: the
    sessions × the events per session of the seed's first block of visitors (which the
    sample starts with, so the figure holds for small samples too). A planted
    ``experiment``'s exposure events are not counted (they come on top of the size)."""
    if not isinstance(sessions_per_day, int | float) or not sessions_per_day >= 1:
        raise ConfigError(
            f"sessions_per_day={sessions_per_day!r} is not valid: ask for at least 1 session a day"
        )
    from shopfunnel.sample.engine import simulate_block
    from shopfunnel.sample.experiment import count_exposures

    plan = make_plan(seed, start, days, tuple(incidents), experiment)
    block = simulate_block(plan, 0)
    sessions = len(set(block.column("session_id").to_pylist()))
    rows = block.num_rows - (count_exposures(block) if experiment is not None else 0)
    per_session = rows / max(sessions, 1)
    return max(1, round(float(sessions_per_day) * int(days) * per_session))


def _size(n_events: int | None, sessions_per_day: float | None, **plan_args) -> int:
    if (n_events is None) == (sessions_per_day is None):
        raise ConfigError(
            "give the sample's size as a number of events or as sessions_per_day (one of them)"
        )
    if sessions_per_day is not None:
        return events_for_sessions(sessions_per_day, **plan_args)
    return _check_n(n_events)  # type: ignore[arg-type]


def _planned(
    n_events: int | None,
    sessions_per_day: float | None,
    chunk_events: int,
    seed: int,
    start: str | date | datetime,
    days: int,
    incidents: Sequence[Incident],
    experiment: PlantedExperiment | None,
) -> tuple[int, Plan]:
    """The checked size and the plan of a sample written in chunks."""
    if chunk_events < 1:
        raise ConfigError(f"chunk_events={chunk_events!r} must be at least 1")
    n = _size(
        n_events,
        sessions_per_day,
        seed=seed,
        start=start,
        days=days,
        incidents=incidents,
        experiment=experiment,
    )
    return n, make_plan(seed, start, days, tuple(incidents), experiment)


def generate_sample(
    n_events: int | None = None,
    *,
    seed: int = 0,
    start: str | date | datetime = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    incidents: Sequence[Incident] = (),
    experiment: PlantedExperiment | None = None,
    sessions_per_day: float | None = None,
) -> pa.Table:
    """Exactly ``n_events`` canonical events (schema :data:`shopfunnel.store.schema.ARROW_SCHEMA`)
    of a simulated store open from ``start`` (midnight UTC) for ``days`` days; or, with
    ``sessions_per_day`` instead, about that many sessions a day.

    The same arguments give the same table; a smaller ``n_events`` gives a prefix (by
    simulated visitor) of a larger one. Rows are sorted by time within each block of
    visitors, not globally. ``incidents`` plants :class:`CheckoutFailure`,
    :class:`PaymentOutage`, :class:`TrafficSpike` and :class:`ConversionDrop` incidents;
    ``experiment`` runs a :class:`PlantedExperiment` (its exposure events come on top of
    ``n_events``).
    """
    n_events = _size(
        n_events,
        sessions_per_day,
        seed=seed,
        start=start,
        days=days,
        incidents=incidents,
        experiment=experiment,
    )
    plan = make_plan(seed, start, days, tuple(incidents), experiment)
    tables = list(iter_blocks(_check_n(n_events), plan))
    return pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]


def write_sample(
    path: str | os.PathLike[str],
    n_events: int | None = None,
    *,
    seed: int = 0,
    start: str | date | datetime = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    incidents: Sequence[Incident] = (),
    experiment: PlantedExperiment | None = None,
    chunk_events: int = 2_000_000,
    progress: Callable[[int], None] | None = None,
    sessions_per_day: float | None = None,
) -> Path:
    """Write the same events as :func:`generate_sample` to a Parquet file at ``path``,
    ``chunk_events`` rows at a time so memory stays bounded whatever ``n_events`` is.

    Generation and Parquet encoding overlap: a writer thread encodes one chunk while the
    next is generated (at most one chunk waits), so two cores are used. ``progress`` is
    called from the calling thread with the number of events generated so far, after each
    chunk; its last call, with ``n_events``, comes once the file is complete. The file
    appears complete or not at all (written beside it, then renamed).
    """
    n, plan = _planned(
        n_events, sessions_per_day, chunk_events, seed, start, days, incidents, experiment
    )
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{str(target)!r} is a folder: give a file name such as sample.parquet")
    if not target.parent.exists():
        raise ConfigError(
            f"no folder {str(target.parent)!r} to write {target.name} into: create it first"
        )
    partial = target.with_name(target.name + ".partial")

    def write_chunks(chunks: Iterator[pa.Table]) -> None:
        with pq.ParquetWriter(partial, schema.ARROW_SCHEMA, compression="zstd") as writer:
            for chunk in chunks:
                writer.write_table(chunk, row_group_size=1_000_000)

    try:
        _overlapped(n, plan, chunk_events, write_chunks, progress)
        partial.replace(target)
    finally:
        if partial.exists():
            partial.unlink()
    return target


def load_sample(
    store: Store,
    n_events: int | None = None,
    *,
    seed: int = 0,
    start: str | date | datetime = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    incidents: Sequence[Incident] = (),
    experiment: PlantedExperiment | None = None,
    chunk_events: int = 1_000_000,
    progress: Callable[[int], None] | None = None,
    sessions_per_day: float | None = None,
) -> LoadResult:
    """Load the same events as :func:`write_sample` straight into an empty ``store``: the
    store equals the one ``write_sample`` + :meth:`~shopfunnel.store.store.Store.load`
    builds (same rows, persons and identities), with no Parquet file in between.

    Generation and loading overlap: DuckDB writes one chunk (whole blocks of visitors,
    about ``chunk_events`` rows) in a worker thread while the next is generated.
    ``progress`` is called as in :func:`write_sample`, its last call once the store is
    written. If anything fails the store is left empty (see
    :func:`~shopfunnel.store.prepare.load_blocks`).
    """
    from shopfunnel.store.prepare import load_blocks

    n, plan = _planned(
        n_events, sessions_per_day, chunk_events, seed, start, days, incidents, experiment
    )
    result: list[LoadResult] = []

    def load(chunks: Iterator[pa.Table]) -> None:
        # one batch per chunk: DuckDB keeps the rows of a one-batch table in order
        whole = (chunk.combine_chunks() for chunk in chunks)
        result.append(load_blocks(store, whole, source=f"the sample (seed {seed})"))

    _overlapped(n, plan, chunk_events, load, progress)
    return result[0]


def _overlapped(
    n: int,
    plan: Plan,
    chunk_events: int,
    consume: Callable[[Iterator[pa.Table]], None],
    progress: Callable[[int], None] | None,
) -> None:
    """Generate the sample's ``n`` events in this thread, in chunks of whole blocks of at
    least ``chunk_events`` rows, while ``consume`` runs in a worker thread over the chunks
    (at most one chunk waits). ``progress`` gets the rows generated after each chunk, and
    ``n`` once ``consume`` has returned; ``consume``'s exception is raised here."""
    chunks: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
    failure: list[BaseException] = []

    def received() -> Iterator[pa.Table]:
        while (chunk := chunks.get()) is not None:
            yield chunk

    def work() -> None:
        try:
            consume(received())
        except BaseException as exc:  # handed to the calling thread
            failure.append(exc)
            while chunks.get() is not None:  # drain so the producer never blocks
                pass

    def hand_over(chunk: pa.Table | None) -> None:
        chunks.put(chunk)
        if failure:
            raise failure[0]

    generated = 0
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        pending: list[pa.Table] = []
        pending_rows = 0
        for table in iter_blocks(n, plan):
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= chunk_events:
                hand_over(pa.concat_tables(pending))
                generated += pending_rows
                pending, pending_rows = [], 0
                if progress is not None and generated < n:
                    progress(generated)
        if pending:
            hand_over(pa.concat_tables(pending))
            generated += pending_rows
    finally:
        chunks.put(None)
        thread.join()
    if failure:
        raise failure[0]
    if progress is not None:
        progress(generated)


__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_START",
    "INCIDENT_SYNTAX",
    "CheckoutFailure",
    "ConversionDrop",
    "Incident",
    "PaymentOutage",
    "PlantedExperiment",
    "TrafficSpike",
    "events_for_sessions",
    "generate_sample",
    "load_sample",
    "parse_incident",
    "write_sample",
]
