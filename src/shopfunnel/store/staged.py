"""What a load takes and gives back: a staged source (canonical columns and the line each
row came from) and the load's result (rows read, added, skipped as duplicates, rejected).
Importers build a :class:`Staged`; :meth:`shopfunnel.store.store.Store.load_staged` writes it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

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


def joinable(staged: Staged) -> bool:
    """Whether ``staged`` can be loaded together with other files (:func:`together`): an
    Arrow table (not a query DuckDB runs over the file), and no row the importer already
    rejected."""
    return staged.sql is None and isinstance(staged.table, pa.Table) and not staged.rejects


def same_columns(files: Sequence[Staged]) -> bool:
    """Whether :func:`joinable` files have the same columns in the same order, each column
    of one type in every file that has a value in it (a column with no value in a file is
    read by Arrow as null, and takes the others' type)."""
    names = files[0].table.schema.names if files else []
    types: dict[str, pa.DataType] = {}
    for f in files:
        schema = f.table.schema
        if schema.names != names:
            return False
        for column in schema:
            if pa.types.is_null(column.type):
                continue
            if types.setdefault(column.name, column.type) != column.type:
                return False
    return True


def together(files: Sequence[Staged]) -> Staged:
    """Several staged files as one source, in their order (ADR 0198): the tables one after
    another, each file's ``__line`` moved past the lines of the files before it, so the
    order of rows (and of rows at one instant) is the files' order. Every file must be
    :func:`joinable`, and they must have the :func:`same_columns` (a column with no value
    in a file takes the others' type). The lines of the result do not name a file: a
    caller that meets a rejected row loads the files one by one instead."""
    if not files or not all(joinable(f) for f in files) or not same_columns(files):
        raise ValueError("together() takes joinable staged files with the same columns")
    tables, offset = [], 0
    for f in files:
        table: pa.Table = f.table
        lines = table.column(LINE)
        if offset:
            lines = pc.add(lines, pa.scalar(offset, lines.type))
        tables.append(table.set_column(table.schema.get_field_index(LINE), LINE, lines))
        top = pc.max(lines).as_py()  # None for an empty file: the offset stays
        if top is not None:
            offset = top
    first, last = files[0].source, files[-1].source
    source = first if len(files) == 1 else f"{first} … {last} ({len(files)} files)"
    return Staged(
        source=source,
        table=pa.concat_tables(tables, promote_options="default"),
        line_label=files[0].line_label,
    )


@dataclass(frozen=True)
class LoadResult:
    """What a load did: rows read, rows added, duplicates skipped and rows rejected."""

    source: str
    rows_read: int
    rows_added: int
    duplicates: int
    rejects: tuple[Reject, ...] = ()
