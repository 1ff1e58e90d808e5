"""Reading a GA4 export file: records (line, parsed object, problem) for the reference,
blocks of raw lines for the bulk path; NDJSON or a JSON array, plain or gzipped; Parquet."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shopfunnel.errors import InputError
from shopfunnel.ingest import ga4_bulk
from shopfunnel.ingest.ga4_rows import BATCH_ROWS


def open_export(p: Path) -> IO[bytes]:
    """The file's bytes, un-gzipped if it is gzipped."""
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return open(p, "rb")


def parquet_records(p: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Rows of a GA4 table exported as Parquet, numbered from 1."""
    try:
        file = pq.ParquetFile(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{p}: is not a readable Parquet file ({exc})") from exc
    number = 0
    for batch in file.iter_batches(batch_size=BATCH_ROWS):
        for obj in batch.to_pylist():
            number += 1
            yield number, obj, None


def parquet_shape(p: Path) -> tuple[pa.Schema, int] | None:
    """A Parquet export's Arrow schema as :func:`parquet_records` reads it, and its number
    of rows; None when pyarrow cannot open it (:func:`parquet_records` then says why)."""
    try:
        file = pq.ParquetFile(p)
    except (pa.ArrowInvalid, OSError):
        return None
    return file.schema_arrow, file.metadata.num_rows


def parquet_rows(p: Path, numbers: list[int]) -> Iterator[tuple[int, Any]]:
    """The rows numbered ``numbers`` (from 1, ascending) of a Parquet export, each as
    :func:`parquet_records` gives it; only the row groups that hold them are read."""
    file = pq.ParquetFile(p)
    wanted = np.asarray(numbers, dtype=np.int64) - 1
    start = 0
    for group in range(file.num_row_groups):
        end = start + file.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(wanted, [start, end])
        if lo < hi:
            offset = start
            for batch in file.iter_batches(batch_size=BATCH_ROWS, row_groups=[group]):
                b_lo, b_hi = np.searchsorted(wanted, [offset, offset + batch.num_rows])
                at = wanted[b_lo:b_hi] - offset
                picked = batch.take(pa.array(at)).to_pylist()
                for i, obj in zip(at.tolist(), picked, strict=True):
                    yield offset + i + 1, obj
                offset += batch.num_rows
        start = end


def first_bytes(fh: IO[bytes]) -> bytes:
    """The file's first bytes, up to some that are not blank (empty: the file is blank)."""
    head = b""
    while not head.strip():
        chunk = fh.read(4096)
        if not chunk:
            return b""
        head += chunk
    return head


def records(p: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line, parsed object, problem) for each event in the file, streamed."""
    try:
        with open_export(p) as fh:
            first = first_bytes(fh)
            if not first:
                return
            if first.lstrip().startswith(b"["):
                yield from _array_records(p, first + fh.read())
                return
            head = first.split(b"\n")
            pending, head = head[-1], head[:-1]
            number = 0
            for raw in head:
                number += 1
                yield from line_record(number, raw)
            for raw in fh:
                if pending:
                    raw, pending = pending + raw, b""
                if not raw.endswith(b"\n"):
                    pending = raw
                    continue
                number += 1
                yield from line_record(number, raw)
            if pending:
                yield from line_record(number + 1, pending)
    except (OSError, EOFError) as exc:
        raise InputError(f"{p}: cannot be read ({exc}); is it a damaged gzip file?") from exc


def line_record(number: int, raw: bytes) -> Iterator[tuple[int, Any, str | None]]:
    if not raw.strip():
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        yield number, None, "is not UTF-8 text: re-export the table as UTF-8 JSON"
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        yield number, None, f"is not valid JSON ({exc.msg} at column {exc.colno})"
        return
    if not isinstance(obj, dict):
        yield number, None, f"is a JSON {type(obj).__name__}, not an event object"
        return
    yield number, obj, None


def array_text(p: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{p}:{line}: is not UTF-8 text: re-export the table as UTF-8 JSON"
        ) from exc


def array_spans(p: Path, text: str) -> Iterator[tuple[int, int, int]]:
    """(line it starts on, start, end) of each element of a JSON array's text."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line, counted = 1, 0
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n:
            raise InputError(f"{p}: the JSON array is not closed with ']': the file is cut short")
        if text[pos] == "]":
            return
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{p}:{exc.lineno}: is not valid JSON ({exc.msg} at column {exc.colno}); "
                "nothing after it can be read, so nothing was loaded"
            ) from exc
        yield line, pos, end
        pos = end


def _array_records(p: Path, data: bytes) -> Iterator[tuple[int, Any, str | None]]:
    """Elements of a JSON array file, each with the line it starts on."""
    text = array_text(p, data)
    for line, start, end in array_spans(p, text):
        obj = json.loads(text[start:end])
        if isinstance(obj, dict):
            yield line, obj, None
        else:
            yield line, None, f"is a JSON {type(obj).__name__}, not an event object"


def blocks(p: Path, block_bytes: int) -> Iterator[pa.Table]:
    """The file's lines as tables of (``line``, ``raw``), about ``block_bytes`` each;
    a JSON array's elements with the line each starts on."""
    try:
        with open_export(p) as fh:
            head = first_bytes(fh)
            if not head:
                return
            if head.lstrip().startswith(b"["):
                yield _array_block(p, head + fh.read())
                return
            number, carry = 0, head
            while True:
                chunk = fh.read(block_bytes)
                data = carry + chunk
                if chunk:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        carry = data
                        continue
                    data, carry = data[:cut], data[cut:]
                if data:
                    block = _lines_block(data, number)
                    number += block.num_rows
                    yield block
                if not chunk:
                    return
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{p}: cannot be read ({exc}); is it a damaged gzip file?") from exc


def _lines_block(data: bytes, before: int) -> pa.Table:
    """Every line of ``data`` (blank ones too: they keep the numbering), numbered after
    ``before``, as views on the buffer: ``raw`` (text for DuckDB; a line that is not UTF-8
    is replaced by ``!``, which is no JSON, so the reference reports it) and ``bytes``."""
    if not data.endswith(b"\n"):  # the last line of the file: hashed as if it had its newline
        data += b"\n"
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + 1
    offsets = pa.py_buffer(np.concatenate([[0], ends]).astype(np.int64))
    buffers = [None, offsets, pa.py_buffer(data)]
    raw = pa.Array.from_buffers(pa.large_string(), len(ends), buffers)
    original = pa.Array.from_buffers(pa.large_binary(), len(ends), buffers)
    try:
        raw.validate(full=True)
    except pa.ArrowInvalid:
        texts = []
        for line in original.to_pylist():
            try:
                texts.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append("!")
        raw = pa.array(texts, pa.large_string())
    lines = pa.array(np.arange(before + 1, before + 1 + len(ends), dtype=np.int64))
    table = pa.table({"line": lines, "raw": raw, "bytes": original})
    # batches of a few thousand rows: DuckDB scans (and maps) them in parallel
    return pa.Table.from_batches(table.to_batches(max_chunksize=8192))


def _array_block(p: Path, data: bytes) -> pa.Table:
    """A JSON array file's elements as a block (each with the line it starts on), each
    written compact (DuckDB's ``json()``) as in a newline-delimited export."""
    text = array_text(p, data)
    lines, raws = [], []
    for line, start, end in array_spans(p, text):
        lines.append(line)
        raws.append(text[start:end])
    raw = ga4_bulk.compact(pa.array(raws, pa.large_string()))
    return pa.table(
        {"line": pa.array(lines, pa.int64()), "raw": raw, "bytes": raw.cast(pa.large_binary())}
    )
