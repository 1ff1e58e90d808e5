"""Importers: each turns one kind of source into a :class:`~shopfunnel.store.Staged` table.

``read(path, format=...)`` picks the importer; ``stage(data)`` accepts in-memory tables
too. Formats: ``csv``, ``parquet``, ``jsonl`` (the generic importer, canonical columns
or a column mapping), and the source-specific ones registered in :data:`FORMATS`
(``ga4``, ``rees46``, ``orders``).
"""

from __future__ import annotations

import gzip
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from shopfunnel.errors import ConfigError
from shopfunnel.ingest import ga4, generic, orders, rees46, segment
from shopfunnel.store.store import Staged, to_arrow

Reader = Callable[..., Staged]

FORMATS: dict[str, Reader] = {
    "csv": generic.read_csv,
    "parquet": generic.read_parquet,
    "jsonl": generic.read_jsonl,
    "ga4": ga4.read_ga4,
    "rees46": rees46.read_rees46,
    "orders": orders.read_orders,
    "segment": segment.read_segment,
}

# Formats that take a column mapping.
MAPPED = ("csv", "parquet", "jsonl", "orders")


def guess_format(path: str | Path) -> str:
    """The format named by a file's extension; a ``.json``/``.csv`` file whose first line
    is a GA4 export row or a REES46 header is ``ga4`` or ``rees46``."""
    name = str(path).lower()
    for suffix, fmt in (
        (".csv", "csv"),
        (".tsv", "csv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
    ):
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return _sniff_source(Path(path), fmt)
    raise ConfigError(
        f"cannot tell the format of {str(path)!r} from its name: pass --format "
        f"({', '.join(sorted(FORMATS))})"
    )


def _sniff_source(path: Path, fmt: str) -> str:
    """``ga4`` or ``rees46`` when the file's first bytes say so, else ``fmt``."""
    if fmt == "parquet":
        try:
            names = set(pq.read_schema(path).names)
        except (pa.ArrowInvalid, OSError):
            return fmt  # the importer gives the precise message
        return "ga4" if {"event_timestamp", "event_name", "event_params"} <= names else fmt
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(4096)
    except (OSError, EOFError):
        return fmt  # the importer gives the precise message
    if fmt == "jsonl" and b'"event_timestamp"' in head and b'"event_name"' in head:
        return "ga4"
    first = head.split(b"\n", 1)[0].strip().lower()
    if fmt == "csv" and first.startswith(b"event_time,event_type,"):
        return "rees46"
    return fmt


def read(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: dict[str, str] | None = None,
    extra_columns: Literal["error", "properties"] = "error",
    **options: Any,
) -> Staged:
    """Stage the file at ``path`` with the importer for ``format`` (guessed if omitted)."""
    fmt = format or guess_format(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: use one of {', '.join(sorted(FORMATS))}")
    reader = FORMATS[fmt]
    accepted = inspect.signature(reader).parameters
    refused = [k for k in options if k not in accepted]
    if refused:
        raise ConfigError(f"--{refused[0]} does not apply to --format {fmt}: leave it out")
    if fmt in ("csv", "parquet", "jsonl"):
        return reader(path, mapping=mapping, extra_columns=extra_columns, **options)
    if fmt in MAPPED:
        return reader(path, mapping=mapping, **options)
    if mapping:
        raise ConfigError(
            f"--map and --mapping-file apply to {', '.join(MAPPED)} files, not to --format "
            f"{fmt}, whose columns are known: leave them out"
        )
    return reader(path, **options)


def stage(
    data: Any,
    *,
    format: str | None = None,
    mapping: dict[str, str] | None = None,
    extra_columns: Literal["error", "properties"] = "error",
) -> Staged:
    """Stage a file path or an in-memory table (pandas, Polars, Arrow)."""
    if isinstance(data, str | Path):
        return read(data, format=format, mapping=mapping, extra_columns=extra_columns)
    table = generic.apply_mapping(to_arrow(data), mapping, extra_columns, "table")
    return generic.with_lines(table, "table", first_line=1, line_label="row")
