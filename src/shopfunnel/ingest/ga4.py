"""The GA4 importer: Google Analytics 4's BigQuery export as JSON.

Reads the ``events_YYYYMMDD`` rows exported as newline-delimited JSON (one event per
line), or as one JSON array, either of them optionally gzipped, or as Parquet (rows
numbered from 1). How each field lands in
the canonical event (see ``docs/events.md`` for the full table):

* ``event_timestamp`` (µs since the epoch, UTC; a JSON number or string) → ``ts``;
  ``event_name`` → ``event``; ``user_pseudo_id`` → ``anonymous_id``; ``user_id``.
* ``session_id`` is ``user_pseudo_id:ga_session_id`` (GA4's session key); events without
  ``ga_session_id`` get a session from inactivity in the store.
* ``device.category`` → ``device``; ``geo.country`` → ``country`` (a country *name*).
* ``page_location`` → ``page``; ``page_referrer`` → ``referrer``.
* ``transaction_id`` (param, else ``ecommerce.transaction_id``; ``(not set)`` is none)
  → ``order_id``; the ``value`` param (else ``ecommerce.purchase_revenue`` on a
  purchase, ``ecommerce.refund_value`` on a refund) → ``value``; ``currency``.
* ``items`` → canonical items (``item_id``, ``item_name``, ``item_category``, ``price``,
  ``quantity``).
* UTM values are **session** scoped: ``session_traffic_source_last_click.manual_campaign``
  when the export has it, else the earliest event of the session that collected a
  campaign (``collected_traffic_source.manual_*``, else the ``source``/``medium``/
  ``campaign`` params; a ``gclid`` alone counts as ``google / cpc``). Every event of the
  session carries the session's values. ``traffic_source`` is the user's *first* touch
  and is never used for sessions.
* every other event param, plus ``ecommerce`` shipping and tax, goes to ``properties``.
* ``experiment_impression`` and ``experiment_viewed`` become ``experiment_exposure`` with
  ``experiment`` and ``variant`` properties (:mod:`shopfunnel.ingest.exposures`).

``event_id`` is the md5 of ``user_pseudo_id``, ``event_timestamp``, ``event_name`` and
the event's identity in the export: ``stream_id``, ``event_bundle_sequence_id``,
``batch_page_id``, ``batch_ordering_id`` and ``batch_event_index`` as their JSON text
(docs/adr/0168). So the same event in a daily and an intraday export, in overlapping
files, or in a file loaded twice is one event (the first copy loaded is kept), even when
the copies differ in fields the importer does not read. A row with none of the bundle and
batch fields hashes its whole line instead (docs/adr/0078): two such rows are one event
only when their lines are identical (in a Parquet export, the row as pyarrow reads it, its
``repr``: docs/adr/0193).

A line that is not JSON, or lacks ``event_timestamp``/``event_name``, or whose timestamp
is not microseconds between 2000 and 2100, is rejected with its line number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel.errors import InputError, Reject
from shopfunnel.ingest import exposures, ga4_bulk, ga4_lines, ga4_parquet
from shopfunnel.ingest.ga4_rows import (
    BATCH_ROWS,
    MAPPED_PARAMS,
    MAX_US,
    MIN_US,
    OUT_COLUMNS,
    OUT_SCHEMA,
    SessionCampaigns,
    accepted,
    batch,
    text,
)
from shopfunnel.store.store import LINE, Staged

__all__ = ["BLOCK_BYTES", "MAPPED_PARAMS", "MAX_US", "MIN_US", "read_ga4", "read_ga4_reference"]


def read_ga4(path: str | Path) -> Staged:
    """Stage a GA4 BigQuery export (NDJSON or a JSON array, plain or gzipped; Parquet).

    Newline-delimited exports are mapped in DuckDB in one query over the whole file (a
    plain one parsed by DuckDB's JSON reader when it reads it exactly, docs/adr/0182), JSON
    arrays (and files DuckDB cannot split into lines exactly) a block of lines at a time
    (:mod:`shopfunnel.ingest.ga4_bulk`); Parquet exports in one query over the file's
    columns (:func:`_read_parquet`, docs/adr/0193); rows the query cannot map exactly go
    through the row-by-row reference (:func:`read_ga4_reference`)."""
    p = _checked_path(path)
    with open(p, "rb") as fh:
        if fh.read(4) == b"PAR1":
            return _read_parquet(p)
    return _read_bulk(p)


def _checked_path(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"no file at {str(p)!r}: check the path")
    if p.is_dir():
        raise InputError(f"{str(p)!r} is a folder: give the export file(s) inside it")
    return p


def read_ga4_reference(path: str | Path) -> Staged:
    """Stage a GA4 export row by row in Python: the definition the bulk path is tested
    against (same rows, same rejects; event ids by the earlier formula, a hash of the
    parsed row's ``repr``)."""
    p = _checked_path(path)
    source = str(p)
    with open(p, "rb") as fh:
        parquet = fh.read(4) == b"PAR1"
    records = ga4_lines.parquet_records(p) if parquet else ga4_lines.records(p)
    rejects: list[Reject] = []
    batches: list[pa.RecordBatch] = []
    rows: list[dict[str, Any]] = []
    sessions = SessionCampaigns()
    seen_any = False
    for line, obj, problem in records:
        seen_any = True
        row = accepted(source, line, obj, problem, rejects)
        if row is None:
            continue
        sessions.see(row)
        rows.append(row)
        if len(rows) >= BATCH_ROWS:
            batches.append(batch(rows))
            rows = []
    if not seen_any:
        raise InputError(f"{source}: holds no events (the file is empty): there is nothing to load")
    if rows or not batches:
        batches.append(batch(rows))
    table = pa.Table.from_batches([sessions.apply(b) for b in batches], schema=OUT_SCHEMA)
    return Staged(
        source=source, table=table, line_label="row" if parquet else "line", rejects=tuple(rejects)
    )


# -- the bulk path --------------------------------------------------------------------------

BLOCK_BYTES = 64 * 1024 * 1024
_BULK_COLUMNS = [c for c in OUT_COLUMNS if c not in ("utm_source", "utm_medium", "utm_campaign")]
_CAMPAIGN = pa.struct([("source", pa.string()), ("medium", pa.string()), ("campaign", pa.string())])
_ROWS_SCHEMA = pa.schema(
    [OUT_SCHEMA.field(c) if c != "ts" else pa.field("ts", pa.int64()) for c in _BULK_COLUMNS]
    + [
        pa.field(LINE, pa.int64()),
        pa.field("candidate", _CAMPAIGN),
        pa.field("last_click", _CAMPAIGN),
    ]
)


def _read_bulk(p: Path) -> Staged:
    source = str(p)
    with ga4_lines.open_export(p) as fh:
        head = ga4_lines.first_bytes(fh)
    if not head:
        raise InputError(f"{source}: holds no events (the file is empty): there is nothing to load")
    con = ga4_bulk.connect()
    try:
        rejects: list[Reject] = []
        parts = None if head.lstrip().startswith(b"[") else _whole_file(con, p, rejects)
        if parts is None:
            parts = [
                part
                for block, converted in _by_blocks(p)
                for part in _mapped(source, converted, block.column("bytes"), rejects)
            ]
        table = _staged_table(con, parts)
    finally:
        con.close()
    return Staged(source=source, table=table, line_label="line", rejects=tuple(rejects))


def _read_parquet(p: Path) -> Staged:
    """A Parquet export mapped in one query over its columns
    (:func:`ga4_parquet.convert_parquet`; docs/adr/0193), the rows it leaves slow converted by
    the reference from the rows as pyarrow reads them (:func:`ga4_lines.parquet_rows`): the
    reference's rows and rejects, numbered by row. A file pyarrow cannot open or that holds
    no rows (the reference says why), one DuckDB cannot read, and one whose field names
    clash by case go to the reference whole."""
    source = str(p)
    shape = ga4_lines.parquet_shape(p)
    if shape is None or shape[1] == 0:
        return read_ga4_reference(p)
    schema, n = shape
    con = ga4_bulk.connect()
    try:
        try:
            converted = ga4_parquet.convert_parquet(con, source, schema, **_RULES)
        except duckdb.Error:
            converted = None
        if converted is None or converted.num_rows != n:
            table = None
        else:
            if _descends(converted.column("line")):
                converted = converted.sort_by("line")  # parquet_rows reads them in order
            rejects: list[Reject] = []
            parts = _split(
                source, converted, rejects, lambda at: _parquet_records(p, converted, at)
            )
            table = _staged_table(con, parts)
    finally:
        con.close()
    if table is None:
        return read_ga4_reference(p)
    return Staged(source=source, table=table, line_label="row", rejects=tuple(rejects))


def _descends(numbers: pa.ChunkedArray) -> bool:
    """Whether a number is smaller than the one before it. In Arrow: pyarrow's ``to_numpy``
    imports pandas, about 0.2 s of a command that needs it nowhere else."""
    if len(numbers) < 2:
        return False
    return bool(pc.any(pc.less(numbers[1:], numbers[:-1])).as_py())


def _line_numbers(n: int) -> pa.Array:
    """1 … ``n`` as int64, from numpy's buffer (``pa.array`` would import pandas)."""
    return pa.Array.from_buffers(
        pa.int64(), n, [None, pa.py_buffer(np.arange(1, n + 1, dtype=np.int64))]
    )


def _staged_table(con: duckdb.DuckDBPyConnection, parts: list[pa.Table]) -> pa.Table:
    """The staged table of the mapped rows (``parts``, in any order): in row order, each
    session's campaign set."""
    rows = (
        pa.concat_tables([t.cast(_ROWS_SCHEMA) for t in parts])
        if parts
        else _ROWS_SCHEMA.empty_table()
    )
    if _descends(rows.column(LINE)):  # the reference's rows last
        rows = rows.sort_by(LINE)
    return _with_session_campaigns(con, rows)


def _whole_file(
    con: duckdb.DuckDBPyConnection, p: Path, rejects: list[Reject]
) -> list[pa.Table] | None:
    """The rows of a newline-delimited export mapped in one query over the whole file
    (DuckDB reads and maps it on every core), or None when DuckDB cannot split the file
    into lines as :func:`ga4_lines.blocks` does (then it is read a block at a time).

    A plain file is first parsed by DuckDB's JSON reader (:func:`_parsed_whole`); a file
    that reader cannot take exactly (a blank line, a line that is not a JSON object, a
    field that does not fit), and a gzipped one, is read by its lines."""
    with open(p, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    if not gzipped:
        parts = _parsed_whole(con, p, rejects)
        if parts is not None:
            return parts
    try:
        converted = ga4_bulk.convert_file(con, str(p), gzipped=gzipped, **_RULES)
    except duckdb.Error:
        return None
    lines = _line_numbers(converted.num_rows)
    converted = converted.set_column(converted.schema.get_field_index("line"), "line", lines)
    return _mapped(str(p), converted, converted.column("slow_raw"), rejects)


_RULES: ga4_bulk.Rules = {
    "min_us": MIN_US,
    "max_us": MAX_US,
    "mapped": MAPPED_PARAMS,
    "exposure_names": exposures.SOURCE_NAMES,
}


def _parsed_whole(
    con: duckdb.DuckDBPyConnection, p: Path, rejects: list[Reject]
) -> list[pa.Table] | None:
    """The rows of a plain newline-delimited export parsed by DuckDB's JSON reader
    (:func:`ga4_bulk.convert_json`; docs/adr/0182), or None when the reader cannot take the
    file exactly as the line reader does: it raises (a line that is not a JSON object, a
    duplicated key, a field that does not fit) or it skipped a blank line (its rows are
    then not numbered as the lines). The rows the query leaves slow (the reference's rows,
    and rows keyed by their line's md5) are mapped again from their lines
    (:func:`ga4_bulk.convert_lines`), so they and their rejects are the line reader's."""
    # the lines are counted while DuckDB parses (its threads hold no Python lock): about
    # 0.5 s of a million rows' import, one core, otherwise spent after the query
    with ThreadPoolExecutor(1) as pool:
        lines_in_file = pool.submit(_line_count, p)
        try:
            fast = ga4_bulk.convert_json(con, str(p), gzipped=False, **_RULES)
        except duckdb.Error:
            return None
        n = fast.num_rows
        if n != lines_in_file.result():
            return None
    lines = _line_numbers(n)
    fast = fast.set_column(fast.schema.get_field_index("line"), "line", lines)
    slow = fast.column("slow")
    if not pc.any(slow).as_py():
        return _mapped(str(p), fast, fast.column("slow_raw"), rejects)
    wanted = lines.filter(slow.combine_chunks())
    if len(wanted) * 4 > n:  # mostly slow rows: one pass over the lines is cheaper
        return None
    try:
        again = ga4_bulk.convert_lines(con, str(p), wanted, gzipped=False, **_RULES)
    except duckdb.Error:
        return None
    if again.num_rows != len(wanted):
        return None
    kept = fast.filter(pc.invert(slow))
    return [
        *_mapped(str(p), kept, kept.column("slow_raw"), rejects),
        *_mapped(str(p), again, again.column("slow_raw"), rejects),
    ]


def _line_count(p: Path) -> int:
    """The lines of a plain file (a last line without its newline counts)."""
    count, last = 0, b"\n"
    with open(p, "rb") as fh:
        while chunk := fh.read(1 << 24):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _by_blocks(p: Path) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Each block of the file's lines with the query's rows for it."""
    con = ga4_bulk.connect()
    try:
        for block in ga4_lines.blocks(p, BLOCK_BYTES):
            yield (
                block,
                ga4_bulk.convert_block(con, block, **_RULES),
            )
    finally:
        con.close()


# (number, parsed row, problem, the event's key) of a row for the reference
_Record = tuple[int, Any, str | None, str]


def _mapped(
    source: str, converted: pa.Table, raws: pa.ChunkedArray, rejects: list[Reject]
) -> list[pa.Table]:
    """The query's rows (``converted``) as staged rows: the ones it mapped, and the slow
    ones converted by the reference from their lines' text (``raws``; rejects appended)."""
    return _split(source, converted, rejects, lambda at: _line_records(converted, raws, at))


def _split(
    source: str,
    converted: pa.Table,
    rejects: list[Reject],
    records: Callable[[np.ndarray], Iterable[_Record]],
) -> list[pa.Table]:
    """The query's rows (``converted``) as staged rows: the ones it mapped, and the slow
    ones (at ``at``) converted by the reference from ``records(at)`` (rejects appended)."""
    slow = converted.column("slow")
    named = converted.rename_columns([LINE if n == "line" else n for n in converted.column_names])
    if not pc.any(slow).as_py():
        return [named.select(_ROWS_SCHEMA.names)]
    parts = [named.filter(pc.invert(slow)).select(_ROWS_SCHEMA.names)]
    at = np.flatnonzero(slow.to_numpy(zero_copy_only=False))  # rows are in line order
    parts.append(_reference_rows(source, records(at), rejects))
    return parts


def _line_records(converted: pa.Table, raws: pa.ChunkedArray, at: np.ndarray) -> Iterator[_Record]:
    """The slow rows at ``at`` parsed from their lines' text (``raws``)."""
    for line, raw, content in zip(
        converted.column("line").take(at).to_pylist(),
        raws.take(at).to_pylist(),
        converted.column("content").take(at).to_pylist(),
        strict=True,
    ):
        data = b"" if raw is None else raw if isinstance(raw, bytes) else raw.encode()
        for number, obj, problem in ga4_lines.line_record(line, data.removesuffix(b"\n")):
            yield number, obj, problem, content


def _parquet_records(p: Path, converted: pa.Table, at: np.ndarray) -> Iterator[_Record]:
    """The slow rows at ``at`` of a Parquet export as pyarrow reads them; a row without
    identity fields is keyed by the md5 of its ``repr`` (docs/adr/0193)."""
    numbers = converted.column("line").take(at).to_pylist()
    contents = converted.column("content").take(at).to_pylist()
    for (number, obj), content in zip(ga4_lines.parquet_rows(p, numbers), contents, strict=True):
        key = content if content is not None else hashlib.md5(repr(obj).encode()).hexdigest()
        yield number, obj, None, key


def _reference_rows(source: str, records: Iterable[_Record], rejects: list[Reject]) -> pa.Table:
    """The rows the query left to the reference, converted by it (rejects appended), each
    with the bulk path's id (from its key)."""
    rows: list[dict[str, Any]] = []
    for number, obj, problem, content in records:
        row = accepted(source, number, obj, problem, rejects)
        if row is None:
            continue
        row["event_id"] = ga4_bulk.event_id(
            text(obj.get("user_pseudo_id")), row["ts"], row["event"], content
        )
        row["candidate"] = _campaign_struct(row.pop("__candidate"))
        row["last_click"] = _campaign_struct(row.pop("__last_click"))
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=_ROWS_SCHEMA)


def _campaign_struct(triple: tuple[Any, ...] | None) -> dict[str, Any] | None:
    return (
        None if triple is None else dict(zip(("source", "medium", "campaign"), triple, strict=True))
    )


def _with_session_campaigns(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> pa.Table:
    """:class:`SessionCampaigns` in SQL and Arrow: each session's last-click campaign, else
    its earliest collected one (by time, then line), else the row's own; ``rows`` in line
    order. Only the rows that carry a campaign are grouped; the others look their session
    up."""
    has = pc.and_(
        pc.is_valid(rows.column("session_id")),
        pc.or_(pc.is_valid(rows.column("last_click")), pc.is_valid(rows.column("candidate"))),
    )
    # the five columns, then the rows (filtering every column first cost 0.16 s per million)
    carriers = rows.select(["session_id", "ts", LINE, "last_click", "candidate"]).filter(has)
    con.register("__ga4_carriers", carriers)
    try:
        chosen = con.sql(f"""
            SELECT session_id,
                   coalesce(
                       arg_min(last_click, (ts, {LINE})) FILTER (WHERE last_click IS NOT NULL),
                       arg_min(candidate, (ts, {LINE})) FILTER (WHERE candidate IS NOT NULL)
                   ) AS utm
            FROM __ga4_carriers GROUP BY session_id
        """).to_arrow_table()
    finally:
        con.unregister("__ga4_carriers")
    at = pc.index_in(rows.column("session_id"), value_set=chosen.column("session_id"))
    at = at.combine_chunks() if isinstance(at, pa.ChunkedArray) else at
    own = rows.column("candidate").combine_chunks().flatten()  # a null campaign: null parts
    if chosen.num_rows:
        picked = chosen.column("utm").combine_chunks().take(at).flatten()  # null where not found
        found = pc.is_valid(at)
        utm = [pc.if_else(found, p, o) for p, o in zip(picked, own, strict=True)]
    else:
        utm = own
    out = rows.drop_columns(["candidate", "last_click", "ts"])
    out = out.append_column("ts", rows.column("ts").cast(OUT_SCHEMA.field("ts").type))
    for part, value in zip(("source", "medium", "campaign"), utm, strict=True):
        out = out.append_column(f"utm_{part}", value)
    return out.select(OUT_SCHEMA.names).cast(OUT_SCHEMA)
