"""``--engine local|spark``, ``--events`` and ``--table``: where a command reads the events.

Every analysis command takes these three options through :data:`EngineOpt`,
:data:`EventsOpt` and :data:`TableOpt` and opens its source with :func:`open_source`:
the DuckDB store of ``--db`` (the default), or the canonical events on Apache Spark
(``--engine spark`` with ``--events PATH_OR_GLOB`` or ``--table NAME``), where the
store's load rules (identity stitching, sessions, channels) are applied first so both
engines count the same persons; for ``--events`` they run once per source and the prepared
events are kept as Parquet (:mod:`shopfunnel.store.spark_cache`). The Spark session comes from ``SPARK_REMOTE``,
``spark-submit`` or a local default (:func:`shopfunnel.store.spark.spark_session`;
docs/spark.md). PySpark is imported only when ``--engine spark`` is chosen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shopfunnel.errors import ConfigError, SparkDiedError, spark_died

if TYPE_CHECKING:  # pragma: no cover
    from shopfunnel.store.spark import SparkEvents


class Engine(StrEnum):
    local = "local"
    spark = "spark"


EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="local (the DuckDB store of --db) or spark (events on Apache Spark, "
        "from --events or --table; the session from SPARK_REMOTE, spark-submit or local[*]; "
        "docs/spark.md).",
        envvar="SHOPFUNNEL_ENGINE",
    ),
]
EventsOpt = Annotated[
    str | None,
    typer.Option(
        "--events",
        help="With --engine spark: Parquet files of canonical events, a path or a "
        "glob ('lake/events/*.parquet', s3://…).",
    ),
]
TableOpt = Annotated[
    str | None,
    typer.Option(
        "--table", help="With --engine spark: a catalog table of canonical events (Hive, Delta…)."
    ),
]


def is_spark(source: Any) -> bool:
    """True for a Spark source opened by :func:`open_source`."""
    return bool(getattr(source, "on_spark", False))


@contextmanager
def open_source(
    db: str,
    engine: Engine | str = Engine.local,
    events: str | None = None,
    table: str | None = None,
) -> Iterator[Any]:
    """The store of ``db`` opened read-only, or with ``engine`` spark the events of
    ``events``/``table`` on Spark (:class:`shopfunnel.store.spark.SparkEvents`). Typed
    ``Any``: the analyses take either (a Spark source answers the few queries they make)."""
    if Engine(engine) == Engine.local:
        if events is not None or table is not None:
            raise ConfigError(
                "--events and --table read events on Spark: add --engine spark "
                "(or load the files into a store with `shopfunnel ingest`)"
            )
        from shopfunnel.store.store import Store

        with Store(db, read_only=True) as store:
            yield store
        return
    from shopfunnel.store.spark import read_events, spark_session
    from shopfunnel.store.spark_cache import prepared_copy, prepared_events

    spark = spark_session()
    if events is not None and table is None:
        # the load rules run once per source; later runs read the prepared Parquet. That
        # file is read again by each query rather than kept (persisted): re-reading it costs
        # less than holding every event in the JVM (at 100M events the cache alone ran the
        # local driver out of memory, ADR 0187)
        with _guarded(prepared_events(spark, events)) as source:
            yield source
    else:  # a table: prepared once for this command, in a folder removed after (ADR 0190)
        with (
            prepared_copy(read_events(spark, events=events, table=table)) as prepared,
            _guarded(prepared) as source,
        ):
            yield source


@contextmanager
def _guarded(events: Any) -> Iterator[Any]:
    """``events`` (prepared, read again by each query) as a SparkEvents, with the heavy
    persons reported and a JVM that dies turned into what to do."""
    from shopfunnel.store.spark import SparkEvents

    source = SparkEvents(events, persist=False)
    try:
        _report_heavy(source)  # its scan is the first to meet a JVM short of memory
        yield source
    except BaseException as exc:
        _close(source, quiet=True)  # the error raised says why; closing must not hide it
        if isinstance(exc, Exception) and spark_died(exc):
            raise SparkDiedError() from exc
        raise
    _close(source, quiet=False)


def _close(source: Any, *, quiet: bool) -> None:
    """Close ``source``. Closing a dead session fails too: ``quiet`` when an error
    already says why; otherwise a JVM found dead on closing is a :class:`SparkDiedError`
    too, not py4j's traceback (ADR 0192)."""
    try:
        source.close()
    except Exception as exc:
        if quiet:
            return
        if spark_died(exc):
            raise SparkDiedError() from exc
        raise


HEAVY_EVENTS = 1_000_000


def _report_heavy(source: SparkEvents) -> None:
    """Say on stderr which persons have ``HEAVY_EVENTS`` events or more (a bot, a shared
    device): they are counted exactly but make their partition the slowest."""
    from shopfunnel.cli.output import err_console

    heavy = source.heavy_persons(HEAVY_EVENTS)
    for row in heavy.head(5).itertuples(index=False):
        err_console.print(
            f"note: person {row.person_id!r} has {row.events:,} events (a bot or a "
            "shared device?): counted, but its partition is the slowest; drop it "
            "from the events if it is not a customer",
            markup=False,
            highlight=False,
        )
    if len(heavy) > 5:
        err_console.print(
            f"note: {len(heavy) - 5} more persons with over {HEAVY_EVENTS:,} events", markup=False
        )
