"""The generic importer: CSV, Parquet and JSON Lines with canonical or mapped columns.

A file whose columns already carry canonical names loads with no mapping. Otherwise
``mapping`` says which source column holds each canonical column
(``{"ts": "created_at", "event": "event_type"}``). Columns that are neither canonical
nor mapped are an error, or with ``extra_columns="properties"`` are kept as JSON in
``properties``.

Line numbers: a CSV row's line counts the header as line 1, so the first data row is
line 2 (a quoted field spanning lines shifts later numbers); a JSON Lines row's line is
its line in the file; a Parquet or in-memory row's number is its 1-based row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from shopfunnel.errors import InputError, Reject
from shopfunnel.store import schema
from shopfunnel.store.db import quote_ident, quote_literal
from shopfunnel.store.store import LINE, Staged

Extra = Literal["error", "properties"]


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"no file at {str(p)!r}: check the path")
    if p.is_dir():
        raise InputError(f"{str(p)!r} is a folder: give the file(s) inside it")
    if p.stat().st_size == 0:
        raise InputError(f"{str(p)!r} is empty: there is nothing to load")
    return p


def with_lines(table: pa.Table, source: str, *, first_line: int, line_label: str) -> Staged:
    """Attach the ``__line`` column (first row = ``first_line``) and wrap as Staged."""
    lines = pa.array(range(first_line, first_line + table.num_rows), type=pa.int64())
    return Staged(source=source, table=table.append_column(LINE, lines), line_label=line_label)


def apply_mapping(
    table: pa.Table, mapping: dict[str, str] | None, extra: Extra, source: str
) -> pa.Table:
    """Rename mapped columns to canonical names and deal with the rest per ``extra``."""
    mapping = dict(mapping or {})
    unknown_targets = [k for k in mapping if k not in schema.BY_NAME]
    if unknown_targets:
        raise InputError(
            f"--map names unknown canonical column(s) {unknown_targets}: the canonical columns "
            f"are {', '.join(schema.COLUMN_NAMES)}"
        )
    missing_sources = [v for v in mapping.values() if v not in table.column_names]
    if missing_sources:
        raise InputError(
            f"{source}: --map refers to column(s) {missing_sources} that the file does not have; "
            f"its columns are {table.column_names}"
        )
    reverse = {v: k for k, v in mapping.items()}
    names = [reverse.get(c, c) for c in table.column_names]
    table = table.rename_columns(names)
    extras = [c for c in names if c not in schema.BY_NAME]
    if extras and extra == "properties":
        props = [
            json.dumps({k: v for k, v in row.items() if v is not None}, default=str)
            for row in table.select(extras).to_pylist()
        ]
        table = table.drop_columns(extras)
        if "properties" in table.column_names:
            table = table.drop_columns(["properties"])
        table = table.append_column("properties", pa.array(props, type=pa.string()))
    return table


def read_csv(
    path: str | Path,
    *,
    mapping: dict[str, str] | None = None,
    extra_columns: Extra = "error",
    delimiter: str | None = None,
    encoding: str = "utf-8",
) -> Staged:
    """Stage a CSV file (header row required; every value read as text, typed later).

    A row with more or fewer fields than the header is rejected with its line (the
    other rows are still staged, so ``--on-error skip`` can load them)."""
    p = _check_file(path)
    batches, rejects = [], []
    for batch, lines, bad in stream_csv(p, delimiter=delimiter, encoding=encoding):
        batches.append(batch.append_column(LINE, pa.array(lines, type=pa.int64())))
        rejects += bad
    table = pa.Table.from_batches(batches) if batches else None
    if table is None or (table.num_rows == 0 and not rejects):
        raise InputError(f"{p}: has a header but no rows: there is nothing to load")
    lines_col = table.column(LINE)
    table = apply_mapping(table.drop_columns([LINE]), mapping, extra_columns, str(p))
    return Staged(
        source=str(p),
        table=table.append_column(LINE, lines_col),
        line_label="line",
        rejects=tuple(rejects),
    )


def sniff(p: Path, expected: str) -> None:
    """Refuse early, with a hint, a file whose first bytes say it is something else."""
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PAR1") and expected != "parquet":
        raise InputError(f"{p}: is a Parquet file, not {expected}: load it with --format parquet")
    if head.startswith(b"PK\x03\x04"):
        raise InputError(f"{p}: is a zip archive (or an Excel file): unzip it or save it as CSV")
    if head.startswith((b"<?xml", b"<")) and expected != "parquet":
        raise InputError(
            f"{p}: looks like XML or HTML, not {expected}: export events as CSV, "
            "Parquet or JSON Lines"
        )
    if "CSV" in expected and head.lstrip().startswith((b"{", b"[")):
        raise InputError(
            f"{p}: looks like JSON, not {expected}: load it with --format jsonl "
            "(or --format ga4 for a GA4 export)"
        )


def stream_csv(
    p: Path,
    *,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    block_size: int = 1 << 24,
) -> Iterator[tuple[pa.RecordBatch, np.ndarray, list[Reject]]]:
    """Read a CSV file in batches of text columns: (batch, line of each row, rejects).

    The header is line 1. A row whose field count differs from the header's is left
    out and reported as a reject on its line; blank lines (and rows of nothing but
    delimiters) are skipped; the other rows keep their true lines (a quoted field
    spanning lines shifts later numbers).
    """
    sniff(p, "CSV")
    sep = delimiter or ("\t" if p.name.lower().endswith((".tsv", ".tsv.gz")) else ",")
    bad: list[tuple[int, str]] = []
    blank: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        if not row.text.strip():
            blank.append(int(row.number or 0))  # a blank line: skipped, but it has a number
        else:
            bad.append(
                (
                    int(row.number or 0),
                    f"has {row.actual_columns} field(s), the header "
                    f"has {row.expected_columns}: check quoting and the delimiter",
                )
            )
        return "skip"

    read_options = pacsv.ReadOptions(use_threads=False, block_size=block_size, encoding=encoding)
    parse_options = pacsv.ParseOptions(
        delimiter=sep, invalid_row_handler=on_invalid, ignore_empty_lines=False
    )
    try:
        columns = csv_header(p, delimiter=sep, encoding=encoding)
        reader = pacsv.open_csv(
            p,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in columns},
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
        next_line, reported = 2, 0
        for batch in reader:
            skipped = np.array(
                sorted(
                    [n for n, _ in bad if n >= next_line] + [n for n in blank if n >= next_line]
                ),
                dtype=np.int64,
            )
            candidates = np.arange(next_line, next_line + batch.num_rows + len(skipped))
            lines = candidates[~np.isin(candidates, skipped)][: batch.num_rows]
            if batch.num_rows:
                next_line = int(lines[-1]) + 1
            now = [Reject(str(p), n, "(row)", why) for n, why in bad[reported:] if n < next_line]
            reported += len(now)
            yield _drop_empty_rows(batch, lines) + (now,)
        rest = [Reject(str(p), n, "(row)", why) for n, why in bad[reported:]]
        if rest:
            yield pa.RecordBatch.from_pylist([], schema=reader.schema), np.array([], np.int64), rest
    except UnicodeDecodeError as exc:
        raise InputError(_encoding_message(p, encoding)) from exc
    except pa.ArrowInvalid as exc:
        if "UTF8" in str(exc) or "utf-8" in str(exc).lower():
            raise InputError(_encoding_message(p, encoding)) from exc
        raise InputError(
            f"{p}: cannot be read as CSV ({_first_line(exc)}). Check the delimiter (--delimiter), "
            "that the file is UTF-8 text, and that every row has as many fields as the header."
        ) from exc


def _drop_empty_rows(batch: pa.RecordBatch, lines: np.ndarray) -> tuple[pa.RecordBatch, np.ndarray]:
    """Leave out rows without a single value (an empty line reads as one)."""
    if batch.num_rows == 0 or batch.num_columns == 0:
        return batch, lines
    filled = pc.is_valid(batch.column(0))
    for column in batch.columns[1:]:
        filled = pc.or_(filled, pc.is_valid(column))
    if pc.all(filled).as_py():
        return batch, lines
    return batch.filter(filled), lines[np.asarray(filled)]


def csv_header(p: Path, *, delimiter: str = ",", encoding: str = "utf-8") -> list[str]:
    """The column names of a CSV file (its first row)."""
    return pacsv.open_csv(
        p,
        read_options=pacsv.ReadOptions(use_threads=False, encoding=encoding, block_size=1 << 16),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=lambda _: "skip"),
    ).schema.names


def _encoding_message(p: Path, encoding: str) -> str:
    """Name the first line that is not valid text in ``encoding``."""
    import gzip

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    with opener(p, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                byte = raw[exc.start : exc.start + 1].hex()
                return (
                    f"{p}:{number}: is not {encoding} text (byte 0x{byte} at column "
                    f"{exc.start + 1}). Save the file as UTF-8, or give its encoding, e.g. "
                    "--encoding latin-1."
                )
    return (
        f"{p}: is not {encoding} text. Save the file as UTF-8 or give its encoding with --encoding."
    )


def read_jsonl(
    path: str | Path, *, mapping: dict[str, str] | None = None, extra_columns: Extra = "error"
) -> Staged:
    """Stage a JSON Lines file: one JSON object per line."""
    p = _check_file(path)
    sniff(p, "JSON Lines")
    try:
        table = pajson.read_json(p)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InputError(
            f"{_first_bad_json_line(p)}: cannot be read as JSON Lines ({_first_line(exc)}). "
            "Each line must be one JSON object in UTF-8."
        ) from exc
    for name in ("items", "properties"):
        if name in table.column_names and not pa.types.is_string(table.schema.field(name).type):
            col = table.column(name)
            as_text = pa.array(
                [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()],
                type=pa.string(),
            )
            table = table.set_column(table.column_names.index(name), name, as_text)
    if "ts" in table.column_names and pa.types.is_timestamp(table.schema.field("ts").type):
        table = table.set_column(
            table.column_names.index("ts"),
            "ts",
            pc.cast(table.column("ts"), pa.timestamp("us", "UTC")),
        )
    table = apply_mapping(table, mapping, extra_columns, str(p))
    lines = _jsonl_line_numbers(p, table.num_rows)
    if lines is None:
        return with_lines(table, str(p), first_line=1, line_label="line")
    table = table.append_column(LINE, pa.array(lines, type=pa.int64()))
    return Staged(source=str(p), table=table, line_label="line")


def _jsonl_line_numbers(p: Path, rows: int) -> np.ndarray | None:
    """The line of each object when the file has blank lines; None when it has none
    (then row n is line n). A fast scan of the bytes in blocks finds out first."""
    import gzip
    import re

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    blank = re.compile(rb"\n[ \t\r]*\n")
    found, tail = False, b"\n"  # a blank first line counts too
    with opener(p, "rb") as fh:
        while block := fh.read(1 << 24):
            if blank.search(tail + block):
                found = True
                break
            tail = block[-64:]
    if not found:
        return None
    with opener(p, "rb") as fh:
        numbers = [n for n, raw in enumerate(fh, start=1) if raw.strip()]
    return np.array(numbers, dtype=np.int64) if len(numbers) == rows else None


def read_parquet(
    path: str | Path, *, mapping: dict[str, str] | None = None, extra_columns: Extra = "error"
) -> Staged:
    """Stage a Parquet file. With canonical columns it is read by DuckDB in a stream,
    never whole into memory; with a mapping or extras it goes through Arrow."""
    p = _check_file(path)
    try:
        names = pq.read_schema(p).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{p}: is not a Parquet file ({_first_line(exc)})") from exc
    if mapping or (extra_columns == "properties" and any(n not in schema.BY_NAME for n in names)):
        table = apply_mapping(pq.read_table(p), mapping, extra_columns, str(p))
        return with_lines(table, str(p), first_line=1, line_label="row")
    cols = ", ".join(quote_ident(n) for n in names)
    sql = (
        f"SELECT {cols}, file_row_number + 1 AS {LINE} "
        f"FROM read_parquet({quote_literal(str(p))}, file_row_number = true)"
    )
    return Staged(source=str(p), sql=sql, line_label="row")


def _first_bad_json_line(p: Path) -> str:
    """``file:line`` of the first line that is not a JSON object in UTF-8 (or the file)."""
    import gzip

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    with opener(p, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                if not isinstance(json.loads(raw.decode("utf-8")), dict):
                    return f"{p}:{number}"
            except (UnicodeDecodeError, json.JSONDecodeError):
                return f"{p}:{number}"
    return str(p)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
