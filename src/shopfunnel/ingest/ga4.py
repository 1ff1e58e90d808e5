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

``event_id`` is a hash of ``user_pseudo_id``, ``event_timestamp``, ``event_name`` and the
whole row's content, so loading the same export twice adds nothing (two rows identical
in every field are one event).

A line that is not JSON, or lacks ``event_timestamp``/``event_name``, or whose timestamp
is not microseconds between 2000 and 2100, is rejected with its line number.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shopfunnel.errors import InputError, Reject
from shopfunnel.ingest import exposures, ga4_bulk
from shopfunnel.store import schema
from shopfunnel.store.store import LINE, Staged

# Timestamps outside these bounds (µs) are not GA4 microseconds: most often seconds or
# milliseconds passed by mistake.
MIN_US = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
MAX_US = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)

# Params that become canonical columns (everything else goes to properties).
MAPPED_PARAMS = frozenset(
    {
        "ga_session_id",
        "page_location",
        "page_referrer",
        "source",
        "medium",
        "campaign",
        "transaction_id",
        "value",
        "currency",
    }
)
NOT_SET = frozenset({"", "(not set)"})
BATCH_ROWS = 50_000

_OUT_COLUMNS = (
    "event_id",
    "ts",
    "event",
    "anonymous_id",
    "user_id",
    "session_id",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "referrer",
    "page",
    "device",
    "country",
    "order_id",
    "value",
    "currency",
    "items",
    "properties",
)
_OUT_SCHEMA = pa.schema(
    [
        schema.ARROW_SCHEMA.field(c) if c != "value" else pa.field("value", pa.float64())
        for c in _OUT_COLUMNS
    ]
    + [pa.field(LINE, pa.int64())]
)


def read_ga4(path: str | Path) -> Staged:
    """Stage a GA4 BigQuery export (NDJSON or a JSON array, plain or gzipped; Parquet).

    JSON exports are mapped in DuckDB a block of lines at a time
    (:mod:`shopfunnel.ingest.ga4_bulk`); rows it cannot map exactly, and Parquet files,
    go through the row-by-row reference (:func:`read_ga4_reference`)."""
    p = _checked_path(path)
    with open(p, "rb") as fh:
        if fh.read(4) == b"PAR1":
            return read_ga4_reference(p)
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
    parsed row's ``repr``), and the reader of Parquet exports."""
    p = _checked_path(path)
    source = str(p)
    with open(p, "rb") as fh:
        parquet = fh.read(4) == b"PAR1"
    records = _parquet_records(p) if parquet else _records(p)
    rejects: list[Reject] = []
    batches: list[pa.RecordBatch] = []
    rows: list[dict[str, Any]] = []
    sessions = _SessionCampaigns()
    seen_any = False
    for line, obj, problem in records:
        seen_any = True
        row = _accepted(source, line, obj, problem, rejects)
        if row is None:
            continue
        sessions.see(row)
        rows.append(row)
        if len(rows) >= BATCH_ROWS:
            batches.append(_batch(rows))
            rows = []
    if not seen_any:
        raise InputError(f"{source}: holds no events (the file is empty): there is nothing to load")
    if rows or not batches:
        batches.append(_batch(rows))
    table = pa.Table.from_batches([sessions.apply(b) for b in batches], schema=_OUT_SCHEMA)
    return Staged(
        source=source, table=table, line_label="row" if parquet else "line", rejects=tuple(rejects)
    )


def _accepted(
    source: str, line: int, obj: Any, problem: str | None, rejects: list[Reject]
) -> dict[str, Any] | None:
    """The staged row of one record, or None once the reason it is rejected is noted."""
    if problem is not None:
        rejects.append(Reject(source, line, "(row)", problem))
        return None
    row, why = _convert(obj, line)
    if why is not None or row is None:
        column, reason, value = why or ("(row)", "could not be read", None)
        rejects.append(Reject(source, line, column, reason, value))
        return None
    return row


# -- reading ---------------------------------------------------------------------------


def _open(p: Path) -> IO[bytes]:
    """The file's bytes, un-gzipped if it is gzipped."""
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return open(p, "rb")


def _parquet_records(p: Path) -> Iterator[tuple[int, Any, str | None]]:
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


def _head(fh: IO[bytes]) -> bytes:
    """The file's first bytes, up to some that are not blank (empty: the file is blank)."""
    head = b""
    while not head.strip():
        chunk = fh.read(4096)
        if not chunk:
            return b""
        head += chunk
    return head


def _records(p: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line, parsed object, problem) for each event in the file, streamed."""
    try:
        with _open(p) as fh:
            first = _head(fh)
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
                yield from _line_record(number, raw)
            for raw in fh:
                if pending:
                    raw, pending = pending + raw, b""
                if not raw.endswith(b"\n"):
                    pending = raw
                    continue
                number += 1
                yield from _line_record(number, raw)
            if pending:
                yield from _line_record(number + 1, pending)
    except (OSError, EOFError) as exc:
        raise InputError(f"{p}: cannot be read ({exc}); is it a damaged gzip file?") from exc


def _line_record(number: int, raw: bytes) -> Iterator[tuple[int, Any, str | None]]:
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


def _array_text(p: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{p}:{line}: is not UTF-8 text: re-export the table as UTF-8 JSON"
        ) from exc


def _array_spans(p: Path, text: str) -> Iterator[tuple[int, int, int]]:
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
    text = _array_text(p, data)
    for line, start, end in _array_spans(p, text):
        obj = json.loads(text[start:end])
        if isinstance(obj, dict):
            yield line, obj, None
        else:
            yield line, None, f"is a JSON {type(obj).__name__}, not an event object"


# -- one row ---------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    """An integer from a JSON number or string (BigQuery writes INT64 as strings)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                return None
            return int(f) if f.is_integer() else None
    return None


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def _param_value(value: Any) -> Any:
    """The one value a GA4 param holds, whichever slot it is in (ints may be strings)."""
    if not isinstance(value, dict):
        return value
    if value.get("string_value") is not None:
        return value["string_value"]
    if value.get("int_value") is not None:
        parsed = _int(value["int_value"])
        return parsed if parsed is not None else value["int_value"]
    for slot in ("double_value", "float_value"):
        if value.get(slot) is not None:
            number = _float(value[slot])
            return number if number is not None else value[slot]
    return None


def _params(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return {}
    if isinstance(raw, dict):  # already key → value
        return {str(k): _param_value(v) for k, v in raw.items()}
    out: dict[str, Any] = {}
    for entry in raw or ():
        if isinstance(entry, dict) and entry.get("key") is not None:
            out[str(entry["key"])] = _param_value(entry.get("value"))
    return out


def _record(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _items(raw: Any) -> list[dict[str, Any]] | None:
    if not isinstance(raw, list) or not raw:
        return None
    items = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        items.append(
            {
                "item_id": _str(item.get("item_id")),
                "item_name": _str(item.get("item_name")),
                "item_category": _str(item.get("item_category")),
                "price": _float(item.get("price")),
                "quantity": _quantity(item.get("quantity")),
            }
        )
    return items or None


def _quantity(value: Any) -> int | None:
    """An item quantity; one that does not fit the canonical 32-bit integer is unknown."""
    q = _int(value)
    return q if q is not None and -(2**31) <= q < 2**31 else None


def _campaign(src: Any, med: Any, camp: Any) -> tuple[str | None, str | None, str | None] | None:
    triple = (_str(src), _str(med), _str(camp))
    return triple if triple[0] is not None or triple[1] is not None else None


def _convert(
    obj: dict[str, Any], line: int
) -> tuple[dict[str, Any], None] | tuple[None, tuple[str, str, str | None]]:
    """A staged row from one export row, or (column, reason, value) why it cannot be."""
    raw_ts = obj.get("event_timestamp")
    if raw_ts is None:
        return None, ("ts", "event_timestamp is missing", None)
    us = _int(raw_ts)
    if us is None:
        return None, ("ts", "event_timestamp is not an integer number of microseconds", str(raw_ts))
    if not MIN_US <= us < MAX_US:
        return None, (
            "ts",
            "event_timestamp is not microseconds between 2000 and 2100 (seconds or "
            "milliseconds given by mistake?)",
            str(raw_ts),
        )
    name = _str(obj.get("event_name"))
    if name is None:
        return None, ("event", "event_name is missing", None)

    params = _params(obj.get("event_params"))
    ecommerce = _record(obj, "ecommerce")
    pseudo = _str(obj.get("user_pseudo_id"))
    user_id = _str(obj.get("user_id"))
    session_number = _int(params.get("ga_session_id"))
    anon = pseudo or user_id
    session_id = (
        f"{anon}:{session_number}" if anon is not None and session_number is not None else None
    )

    order_id = _str(params.get("transaction_id"))
    if order_id is None or order_id.strip() in NOT_SET:
        order_id = _str(ecommerce.get("transaction_id"))
    if order_id is not None and order_id.strip() in NOT_SET:
        order_id = None
    value = _float(params.get("value"))
    if value is None and name == "purchase":
        value = _float(ecommerce.get("purchase_revenue"))
    if value is None and name == "refund":
        value = _float(ecommerce.get("refund_value"))

    collected = _record(obj, "collected_traffic_source")
    candidate = _campaign(
        collected.get("manual_source"),
        collected.get("manual_medium"),
        collected.get("manual_campaign_name"),
    ) or _campaign(params.get("source"), params.get("medium"), params.get("campaign"))
    if candidate is None and (_str(collected.get("gclid")) or _str(params.get("gclid"))):
        candidate = ("google", "cpc", None)
    last_click = _record(_record(obj, "session_traffic_source_last_click"), "manual_campaign")
    session_campaign = _campaign(
        last_click.get("source"), last_click.get("medium"), last_click.get("campaign_name")
    )

    properties = {k: v for k, v in params.items() if k not in MAPPED_PARAMS and v is not None}
    name, properties = exposures.as_exposure(name, properties)
    for key in ("shipping_value", "tax_value"):
        if ecommerce.get(key) is not None:
            properties[key] = _float(ecommerce.get(key))
    # The parsed row's repr: the same for a row read from NDJSON, an array or gzip, and
    # about 2.5 times cheaper than a sorted JSON dump (BigQuery writes keys in schema order).
    content = repr(obj)
    event_id = hashlib.blake2b(
        "\x1f".join((pseudo or "", str(us), name, content)).encode(), digest_size=16
    ).hexdigest()
    utm = candidate or (None, None, None)
    return {
        "event_id": event_id,
        "ts": us,
        "event": name,
        "anonymous_id": anon,
        "user_id": user_id,
        "session_id": session_id,
        "utm_source": utm[0],
        "utm_medium": utm[1],
        "utm_campaign": utm[2],
        "referrer": _str(params.get("page_referrer")),
        "page": _str(params.get("page_location")),
        "device": _str(_record(obj, "device").get("category")),
        "country": _str(_record(obj, "geo").get("country")),
        "order_id": order_id,
        "value": value,
        "currency": _str(params.get("currency")),
        "items": _items(obj.get("items")),
        "properties": json.dumps(properties, default=str) if properties else None,
        LINE: line,
        "__candidate": candidate,
        "__last_click": session_campaign,
    }, None


def _batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    columns = {c: [r[c] for r in rows] for c in (*_OUT_COLUMNS, LINE)}
    return pa.RecordBatch.from_pydict(columns, schema=_OUT_SCHEMA)


class _SessionCampaigns:
    """The campaign of each GA4 session: its last-click record if any event has one,
    else the earliest (by time, then line) campaign collected on one of its events."""

    def __init__(self) -> None:
        self.last_click: dict[str, tuple[int, int, tuple[Any, ...]]] = {}
        self.collected: dict[str, tuple[int, int, tuple[Any, ...]]] = {}

    def see(self, row: dict[str, Any]) -> None:
        sid = row["session_id"]
        if sid is None:
            return
        key = (row["ts"], row[LINE])
        for found, store in (
            (row["__last_click"], self.last_click),
            (row["__candidate"], self.collected),
        ):
            if found is not None and (sid not in store or key < store[sid][:2]):
                store[sid] = (*key, found)

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.last_click and not self.collected:
            return batch
        sids = batch.column("session_id").to_pylist()
        columns = {
            n: batch.column(n).to_pylist() for n in ("utm_source", "utm_medium", "utm_campaign")
        }
        for i, sid in enumerate(sids):
            chosen = self.last_click.get(sid) or self.collected.get(sid)
            if chosen is not None:
                src, med, camp = chosen[2]
                columns["utm_source"][i] = src
                columns["utm_medium"][i] = med
                columns["utm_campaign"][i] = camp
        arrays = [
            pa.array(columns[n], type=pa.string()) if n in columns else batch.column(n)
            for n in batch.schema.names
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


# -- the bulk path (JSON exports) ----------------------------------------------------------

BLOCK_BYTES = 64 * 1024 * 1024
_BULK_COLUMNS = [c for c in _OUT_COLUMNS if c not in ("utm_source", "utm_medium", "utm_campaign")]
_CAMPAIGN = pa.struct([("source", pa.string()), ("medium", pa.string()), ("campaign", pa.string())])
_ROWS_SCHEMA = pa.schema(
    [_OUT_SCHEMA.field(c) if c != "ts" else pa.field("ts", pa.int64()) for c in _BULK_COLUMNS]
    + [
        pa.field(LINE, pa.int64()),
        pa.field("candidate", _CAMPAIGN),
        pa.field("last_click", _CAMPAIGN),
    ]
)


def _read_bulk(p: Path) -> Staged:
    source = str(p)
    con = ga4_bulk.connect()
    try:
        parts: list[pa.Table] = []
        rejects: list[Reject] = []
        seen_any = False
        for block in _blocks(p):
            seen_any = seen_any or block.num_rows > 0
            converted = ga4_bulk.convert_block(
                con,
                block,
                min_us=MIN_US,
                max_us=MAX_US,
                mapped=MAPPED_PARAMS,
                exposure_names=exposures.SOURCE_NAMES,
            )
            slow = converted.column("slow")
            parts.append(
                converted.filter(pc.invert(slow))
                .rename_columns([LINE if n == "line" else n for n in converted.column_names])
                .select(_ROWS_SCHEMA.names)
            )
            if pc.any(slow).as_py():
                at = np.flatnonzero(slow.to_numpy(zero_copy_only=False))  # rows are in block order
                parts.append(_reference_rows(source, block.take(at), converted.take(at), rejects))
        if not seen_any:
            raise InputError(
                f"{source}: holds no events (the file is empty): there is nothing to load"
            )
        rows = (
            pa.concat_tables([t.cast(_ROWS_SCHEMA) for t in parts])
            if parts
            else _ROWS_SCHEMA.empty_table()
        )
        table = _with_session_campaigns(con, rows)
    finally:
        con.close()
    return Staged(source=source, table=table, line_label="line", rejects=tuple(rejects))


def _reference_rows(
    source: str, block: pa.Table, slow: pa.Table, rejects: list[Reject]
) -> pa.Table:
    """The rows the query left to the reference (``block``'s lines, ``slow`` the query's
    rows for them), converted by it (rejects appended)."""
    rows: list[dict[str, Any]] = []
    for line, raw, content in zip(
        block.column("line").to_pylist(),
        block.column("bytes").to_pylist(),
        slow.column("content").to_pylist(),
        strict=True,
    ):
        for number, obj, problem in _line_record(line, raw.removesuffix(b"\n")):
            row = _accepted(source, number, obj, problem, rejects)
            if row is None:
                continue
            # the bulk path's id
            row["event_id"] = ga4_bulk.event_id(
                _str(obj.get("user_pseudo_id")), row["ts"], row["event"], content
            )
            row["candidate"] = _campaign_struct(row.pop("__candidate"))
            row["last_click"] = _campaign_struct(row.pop("__last_click"))
            rows.append(row)
    return pa.Table.from_pylist(rows, schema=_ROWS_SCHEMA)


def _campaign_struct(triple: tuple[Any, ...] | None) -> dict[str, Any] | None:
    return (
        None if triple is None else dict(zip(("source", "medium", "campaign"), triple, strict=True))
    )


def _with_session_campaigns(con: Any, rows: pa.Table) -> pa.Table:
    """:class:`_SessionCampaigns` in SQL: each session's last-click campaign, else its
    earliest collected one (by time, then line), else the row's own."""
    con.register("__ga4_rows", rows)
    try:
        utm = ", ".join(f"utm.{part} AS utm_{part}" for part in ("source", "medium", "campaign"))
        table = con.sql(f"""
            WITH chosen AS (
                SELECT session_id,
                       arg_min(last_click, (ts, {LINE})) FILTER (WHERE last_click IS NOT NULL) AS lc,
                       arg_min(candidate, (ts, {LINE})) FILTER (WHERE candidate IS NOT NULL) AS cc
                FROM __ga4_rows WHERE session_id IS NOT NULL GROUP BY session_id
            ),
            picked AS (
                SELECT r.*, coalesce(c.lc, c.cc, r.candidate) AS utm
                FROM __ga4_rows r LEFT JOIN chosen c USING (session_id)
            )
            SELECT * EXCLUDE (utm, candidate, last_click, ts), make_timestamp(ts) AS ts, {utm}
            FROM picked ORDER BY {LINE}
        """).to_arrow_table()
    finally:
        con.unregister("__ga4_rows")
    return table.select(_OUT_SCHEMA.names).cast(_OUT_SCHEMA)


def _blocks(p: Path) -> Iterator[pa.Table]:
    """The file's lines as tables of (``line``, ``raw``), about :data:`BLOCK_BYTES` each;
    a JSON array's elements with the line each starts on."""
    try:
        with _open(p) as fh:
            head = _head(fh)
            if not head:
                return
            if head.lstrip().startswith(b"["):
                yield _array_block(p, head + fh.read())
                return
            number, carry = 0, head
            while True:
                chunk = fh.read(BLOCK_BYTES)
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
    text = _array_text(p, data)
    lines, raws = [], []
    for line, start, end in _array_spans(p, text):
        lines.append(line)
        raws.append(text[start:end])
    raw = ga4_bulk.compact(pa.array(raws, pa.large_string()))
    return pa.table(
        {"line": pa.array(lines, pa.int64()), "raw": raw, "bytes": raw.cast(pa.large_binary())}
    )
