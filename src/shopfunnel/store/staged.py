"""What a load takes and gives back: a staged source (canonical columns and the line each
row came from) and the load's result (rows read, added, skipped as duplicates, rejected).
Importers build a :class:`Staged`; :meth:`shopfunnel.store.store.Store.load_staged` writes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shopfunnel.errors import Reject

OnError = Literal["fail", "skip"]


LINE = "__line"


@dataclass
class Staged:
    """A source ready to load: a table with canonical column names and a ``__line`` column.

    ``table`` is an Arrow table (or anything DuckDB can register); ``sql`` is a SELECT
    DuckDB can run instead (used for large Parquet files, which are never read into
    memory). ``source`` names the file in messages; ``line_label`` says what ``__line``
    counts (``line`` for text files, ``row`` for tables). ``rejects`` are rows the
    importer could not even turn into a staged row (a line that is not JSON, say): they
    are reported with the store's own rejects and count as read.
    """

    source: str
    table: Any = None
    sql: str | None = None
    params: list[Any] = field(default_factory=list)
    line_label: str = "line"
    rejects: tuple[Reject, ...] = ()


@dataclass(frozen=True)
class LoadResult:
    """What a load did: rows read, rows added, duplicates skipped and rows rejected."""

    source: str
    rows_read: int
    rows_added: int
    duplicates: int
    rejects: tuple[Reject, ...] = ()
