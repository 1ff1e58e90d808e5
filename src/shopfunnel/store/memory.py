"""Memory of the one-time steps over every event: a cap on DuckDB's share, and freed
memory handed back to the system (ADR 0162, ADR 0172)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from shopfunnel.errors import StoreError
from shopfunnel.store.db import Database, quote_literal

# What DuckDB may hold during the one-time bulk steps (a load, the timeline's sort, the
# person index): past it, its sorts, joins and aggregates spill to disk (ADR 0172).
BULK_MEMORY_LIMIT = "2GB"
BULK_MEMORY_ENV = "SHOPFUNNEL_BULK_MEMORY"


def bulk_memory_limit() -> str:
    """The DuckDB ``memory_limit`` of the bulk steps: ``SHOPFUNNEL_BULK_MEMORY`` if set
    (a DuckDB size such as ``1.5GB``), else :data:`BULK_MEMORY_LIMIT`."""
    return os.environ.get(BULK_MEMORY_ENV, "").strip() or BULK_MEMORY_LIMIT


@contextmanager
def bulk_memory(db: Database) -> Iterator[None]:
    """Run a one-time step over every event (a load, a timeline or person-index build)
    with DuckDB's memory capped at :func:`bulk_memory_limit`: its hash tables and sorts
    spill to the store's temporary directory (``<store>.tmp``) instead of growing with
    the events. DuckDB's default cap is 80% of the machine's RAM, which let a 100M-event
    load reach 9.3 GB. The earlier cap is restored after the block; a connection whose
    cap is already lower (a :class:`~shopfunnel.funnel.engine.LocalEngine` given
    ``memory_limit``) keeps it."""
    old = str(db.scalar("SELECT current_setting('memory_limit')"))
    limit = bulk_memory_limit()
    lower = _size(old) <= _requested(limit)
    if lower:  # a lower limit (LocalEngine's) is kept as it is
        limit = old
    else:
        try:
            db.execute(f"SET memory_limit = {quote_literal(limit)}")
        except duckdb.Error as exc:
            raise StoreError(
                f"{BULK_MEMORY_ENV}={limit!r} is not a memory size DuckDB reads: use e.g. 2GB"
            ) from exc
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        raise StoreError(
            f"DuckDB needed more than the {limit} this step may use ("
            f"{str(exc).strip().splitlines()[0]}); nothing was written. Set "
            f"{BULK_MEMORY_ENV} to a larger size (e.g. {BULK_MEMORY_ENV}=4GB) and run it again"
        ) from exc
    finally:
        release_cached_blocks(db)
        if not lower:
            _restore(db, old)


# What DuckDB may keep while its cached blocks are evicted. The limit is global to the
# database, and another thread's query (the report's background diagnosis) runs under it
# meanwhile: at 1MB such a query failed; at 256MB it spills, as under any cap.
RELEASE_FLOOR = "256MB"


def release_cached_blocks(db: Database, floor: str | None = None) -> None:
    """Make DuckDB drop the blocks of the store file it keeps after a scan. Its buffer
    pool keeps every block a query read until the memory limit presses (at 100M events, a
    scan of the purchases left 1.7 GB of blocks in a process that then placed 14.5 million
    persons); briefly lowering the limit (to :data:`RELEASE_FLOOR`) evicts them, and the next query reads what it
    needs from the file again. Only for a store file: an in-memory store's tables are
    blocks too, and evicting them would write them to temporary files. ``floor`` (default
    :data:`RELEASE_FLOOR`): a lower limit evicts more, for a caller that knows no other query runs meanwhile (the report
    with its diagnosis in its turn, ADR 0181)."""
    if db.path == ":memory:":
        return
    old = str(db.scalar("SELECT current_setting('memory_limit')"))
    try:
        db.execute(f"SET memory_limit = {quote_literal(floor or RELEASE_FLOOR)}")
    except duckdb.Error:
        pass  # blocks in use (a registered table): keep what cannot be evicted
    finally:
        _restore(db, old)


def _restore(db: Database, old: str) -> None:
    """Put back the limit DuckDB showed as ``old``: DuckDB's default (80% of the RAM) when
    it was that (setting its rounded display again would lose a little each time)."""
    db.execute("RESET memory_limit")
    if str(db.scalar("SELECT current_setting('memory_limit')")) != old:
        db.execute(f"SET memory_limit = {quote_literal(old)}")


_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


def _size(shown: str) -> float:
    """Bytes of a limit as DuckDB shows it (``18.8 GiB``); unbounded when unreadable."""
    number, _, unit = shown.strip().partition(" ")
    try:
        return float(number) * _UNITS[unit.strip()]
    except (ValueError, KeyError):
        return float("inf")


_DECIMAL = {"": 1, "b": 1, "bytes": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}
_BINARY = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _requested(limit: str) -> float:
    """Bytes of a limit as a person writes it for DuckDB (``2GB`` is 2·10^9 bytes, ``2GiB``
    2·2^30); zero when unreadable here (DuckDB then reads it, or refuses it)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", limit)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in {**_DECIMAL, **_BINARY}:
        return 0.0
    return float(match.group(1)) * {**_DECIMAL, **_BINARY}[unit]


_TRIM: list[Any] = []


def give_back_memory() -> None:
    """Hand memory freed by the process back to the system (glibc's ``malloc_trim``; a
    no-op elsewhere). Tables built in worker threads are allocated in their malloc
    arenas, which keep freed memory for reuse: without this, what a step freed stays in
    the process's peak when the next step allocates (ADR 0162)."""
    if not _TRIM:
        import ctypes

        try:
            _TRIM.append(ctypes.CDLL(None).malloc_trim)
        except (AttributeError, OSError):  # not glibc
            _TRIM.append(None)
    if _TRIM[0] is not None:
        _TRIM[0](0)
