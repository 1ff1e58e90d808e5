"""The sample store: a seeded, realistic event stream so shopfunnel runs with no data of
one's own, and so analyses can be tested against planted incidents.

See ``docs/sample.md`` for the model, its parameters and where the calibration numbers
come from; the parameters themselves live in :mod:`shopfunnel.sample.model`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shopfunnel import schema
from shopfunnel.errors import ConfigError
from shopfunnel.sample.engine import iter_blocks, make_plan
from shopfunnel.sample.incidents import (
    INCIDENT_SYNTAX,
    CheckoutFailure,
    Incident,
    PaymentOutage,
    TrafficSpike,
    parse_incident,
)

DEFAULT_START = "2024-01-01"
DEFAULT_DAYS = 120


def _check_n(n_events: int) -> int:
    if not isinstance(n_events, int) or isinstance(n_events, bool) or n_events < 1:
        raise ConfigError(
            f"n_events={n_events!r} is not valid: ask for a whole number of events ≥ 1"
        )
    return n_events


def generate_sample(
    n_events: int,
    *,
    seed: int = 0,
    start: str | date | datetime = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    incidents: Sequence[Incident] = (),
) -> pa.Table:
    """Exactly ``n_events`` canonical events (schema :data:`shopfunnel.schema.ARROW_SCHEMA`)
    of a simulated store open from ``start`` (midnight UTC) for ``days`` days.

    The same arguments give the same table; a smaller ``n_events`` gives a prefix (by
    simulated visitor) of a larger one. Rows are sorted by time within each block of
    visitors, not globally. ``incidents`` plants :class:`CheckoutFailure`,
    :class:`PaymentOutage` and :class:`TrafficSpike` incidents.
    """
    plan = make_plan(seed, start, days, tuple(incidents))
    tables = list(iter_blocks(_check_n(n_events), plan))
    return pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]


def write_sample(
    path: str | os.PathLike[str],
    n_events: int,
    *,
    seed: int = 0,
    start: str | date | datetime = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    incidents: Sequence[Incident] = (),
    chunk_events: int = 2_000_000,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write the same events as :func:`generate_sample` to a Parquet file at ``path``,
    ``chunk_events`` rows at a time so memory stays bounded whatever ``n_events`` is.

    ``progress`` is called after each chunk with the number of events written so far.
    The file appears complete or not at all (written beside it, then renamed).
    """
    if chunk_events < 1:
        raise ConfigError(f"chunk_events={chunk_events!r} must be at least 1")
    plan = make_plan(seed, start, days, tuple(incidents))
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{str(target)!r} is a folder: give a file name such as sample.parquet")
    if not target.parent.exists():
        raise ConfigError(
            f"no folder {str(target.parent)!r} to write {target.name} into: create it first"
        )
    partial = target.with_name(target.name + ".partial")
    written = 0
    pending: list[pa.Table] = []
    pending_rows = 0
    try:
        with pq.ParquetWriter(partial, schema.ARROW_SCHEMA, compression="zstd") as writer:
            for table in iter_blocks(_check_n(n_events), plan):
                pending.append(table)
                pending_rows += table.num_rows
                if pending_rows >= chunk_events:
                    writer.write_table(pa.concat_tables(pending), row_group_size=1_000_000)
                    written += pending_rows
                    pending, pending_rows = [], 0
                    if progress is not None:
                        progress(written)
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=1_000_000)
                written += pending_rows
                if progress is not None:
                    progress(written)
        partial.replace(target)
    finally:
        if partial.exists():
            partial.unlink()
    return target


__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_START",
    "INCIDENT_SYNTAX",
    "CheckoutFailure",
    "Incident",
    "PaymentOutage",
    "TrafficSpike",
    "generate_sample",
    "parse_incident",
    "write_sample",
]
