"""GA4 export rows → canonical rows in DuckDB: a whole newline-delimited file in one query
(:func:`convert_json`, DuckDB's JSON reader; :func:`convert_file`, its lines), or a block of
lines at a time (:func:`convert_block`); a whole Parquet export in one query over its typed
columns (:func:`shopfunnel.ingest.ga4_parquet.convert_parquet`, docs/adr/0193), each leaf written as the text the mapping
reads, a value the reference reads otherwise leaving its row to the reference.

The same mapping as the row-by-row reference in :mod:`shopfunnel.ingest.ga4_rows` (the
rules are in :mod:`shopfunnel.ingest.ga4`'s docstring), written as one SQL query over raw
JSON lines. :func:`convert_file` lets DuckDB read the lines itself (``read_csv`` with one
text column and no quoting, every core, row *i* is line *i + 1*, docs/adr/0147); files it
cannot split exactly as the block reader does, and JSON arrays, go a block at a time. A
plain file is first parsed by ``read_json`` with STRUCTURE's fields as declared columns
(:func:`convert_json`, about half the parse's CPU, docs/adr/0182) into the same mapping;
the caller uses it only where it gives the line reader's rows exactly.

1. DuckDB parses each line once (``json_transform`` into the fields the mapping reads:
   ids, names, ``event_params`` and ``items`` as lists of structs, device, geo,
   ``ecommerce``, the traffic sources, the identity fields) and keys the event by its
   identity fields (docs/adr/0168), or, on a row without them, by the md5 of the line as
   written, with its newline (a JSON array's elements are first written compact by
   DuckDB's ``json()``, one a line, as BigQuery writes its newline-delimited export);
2. ``event_params`` are flattened with list functions (the mapped params picked by key,
   the others written as the ``properties`` JSON in their order), ``items`` mapped to
   canonical items, campaigns built as structs;
3. a row the query cannot map exactly as the reference would — not a JSON object, a bad
   or missing timestamp or name (a reject), an experiment event, a duplicated param key, a
   param whose value is not an object, an item that is not an object, ``event_params`` not
   a list, a text param (``currency``, ``page_location``…) held in a number slot — is marked
   ``slow`` and converted by the reference (:func:`ga4_rows._convert`), so its
   result or its reject (line, column, reason) is the reference's own.

Values in text fields that are not JSON strings are written as JSON writes them
(``true``, ``1.5``), where the reference wrote Python's ``str`` (``True``); GA4's export
writes those fields as strings. The tests compare both paths row by row
(tests/ingest/test_ga4_bulk.py, test_ga4_whole_file.py); docs/adr/0078 and 0147 record
the choices.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypedDict, Unpack

import duckdb
import pyarrow as pa

# The fields the mapping reads, each leaf named by how the reference reads it (the query gets
# every leaf as text: numbers and strings alike; a Parquet export's typed leaves are written
# as that text, :func:`shopfunnel.ingest.ga4_parquet.parquet_row`): ``text`` (``str()`` of the value), ``string`` (the
# value as it is: a JSON string), ``int`` and ``float`` (a number, or a string holding one),
# ``key`` (the event's identity, docs/adr/0168: the value's text, only the query reads it).
_PARAM_FIELDS = {
    "key": "text",
    "value": {
        "string_value": "string",
        "int_value": "int",
        "double_value": "float",
        "float_value": "float",
    },
}
_ITEM_FIELDS = {
    "item_id": "text",
    "item_name": "text",
    "item_category": "text",
    "price": "float",
    "quantity": "int",
}
FIELDS: dict[str, Any] = {
    "event_timestamp": "int",
    "event_name": "text",
    "user_pseudo_id": "text",
    "user_id": "text",
    "stream_id": "key",
    "event_bundle_sequence_id": "key",
    "batch_page_id": "key",
    "batch_ordering_id": "key",
    "batch_event_index": "key",
    "event_params": [_PARAM_FIELDS],
    "device": {"category": "text"},
    "geo": {"country": "text"},
    "ecommerce": {
        "transaction_id": "text",
        "purchase_revenue": "float",
        "refund_value": "float",
        "shipping_value": "float",
        "tax_value": "float",
    },
    "collected_traffic_source": {
        "manual_source": "text",
        "manual_medium": "text",
        "manual_campaign_name": "text",
        "gclid": "text",
    },
    "session_traffic_source_last_click": {
        "manual_campaign": {"source": "text", "medium": "text", "campaign_name": "text"}
    },
    "items": [_ITEM_FIELDS],
}


def _as_text(fields: Any) -> Any:
    """FIELDS with every leaf ``VARCHAR``: json_transform's structure."""
    if isinstance(fields, str):
        return "VARCHAR"
    if isinstance(fields, list):
        return [_as_text(fields[0])]
    return {k: _as_text(v) for k, v in fields.items()}


STRUCTURE = json.dumps(_as_text(FIELDS), separators=(",", ":"))

# Mapped params the reference writes as text: held in a number slot, the reference writes the
# number as Python does, so the row goes to the reference.
TEXT_PARAMS = (
    "campaign",
    "currency",
    "gclid",
    "medium",
    "page_location",
    "page_referrer",
    "source",
    "transaction_id",
)

# What Python's ``str.strip()`` removes (the reference's blank test): every character
# ``str.isspace()`` accepts, control separators (\x1c-\x1f) and Unicode spaces included.
PY_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_WS = " || ".join(f"chr({ord(c)})" for c in PY_WHITESPACE)

# The reference's helpers, as macros: _str (blank is none), _float, _int (a whole number
# written as an integer, a float or a string), _campaign (source or medium required).
# A text starting with a printable ASCII character is not blank, so ``trim`` runs only
# on the others.
_MACROS = f"""
CREATE OR REPLACE TEMP MACRO ga_ws() AS ({_WS});
CREATE OR REPLACE TEMP MACRO ga_str(x) AS
    CASE WHEN ascii(x) BETWEEN 33 AND 126 THEN x WHEN trim(x, ga_ws()) = '' THEN NULL ELSE x END;
CREATE OR REPLACE TEMP MACRO ga_float(x) AS
    coalesce(TRY_CAST(x AS DOUBLE), TRY_CAST(trim(x, ga_ws()) AS DOUBLE));
CREATE OR REPLACE TEMP MACRO ga_int(x) AS
    CASE WHEN ga_float(x) % 1 = 0
         THEN coalesce(TRY_CAST(x AS HUGEINT), TRY_CAST(trim(x, ga_ws()) AS HUGEINT)) END;
-- an integer written as plain digits (no sign, blank or point) is cast directly; any other
-- text takes ga_int's way (the same value, e.g. 0012 is 12)
CREATE OR REPLACE TEMP MACRO ga_int_fast(x) AS
    CASE WHEN length(x) BETWEEN 1 AND 18 AND ltrim(x, '0123456789') = '' THEN CAST(x AS HUGEINT)
         ELSE ga_int(x) END;
CREATE OR REPLACE TEMP MACRO ga_campaign(s, m, c) AS
    CASE WHEN ga_str(s) IS NOT NULL OR ga_str(m) IS NOT NULL
         THEN struct_pack(source := ga_str(s), medium := ga_str(m), campaign := ga_str(c)) END;
-- a string value of a line with no backslash: its text needs no escaping
CREATE OR REPLACE TEMP MACRO ga_pjson_plain(p) AS CASE
    WHEN p.value.string_value IS NOT NULL THEN '"' || p.value.string_value || '"'
    ELSE ga_pjson(p) END;
CREATE OR REPLACE TEMP MACRO ga_pv_missing(p) AS
    p.value.string_value IS NULL AND p.value.int_value IS NULL AND p.value.double_value IS NULL
    AND p.value.float_value IS NULL;
"""

# How the mapping reads a row's leaves (docs/adr/0194). Text leaves (the JSON paths, a Parquet
# export with text where GA4 has numbers): an integer or float field parsed from its text, a
# param's value as its text. Typed leaves (a Parquet export whose integer fields are integers
# and whose float fields are floats, as BigQuery writes it): the values as they are, a param's
# number written as the text the text leaves would hold (``str()`` of the integer, the
# double's shortest round-trip text), so every later step reads the same text.
_TEXT_LEAVES = """
CREATE OR REPLACE TEMP MACRO ga_int_leaf(x) AS ga_int_fast(x);
CREATE OR REPLACE TEMP MACRO ga_float_leaf(x) AS ga_float(x);
CREATE OR REPLACE TEMP MACRO ga_pv(p) AS
    coalesce(p.value.string_value, p.value.int_value, p.value.double_value, p.value.float_value);
CREATE OR REPLACE TEMP MACRO ga_pjson(p) AS CASE
    WHEN p.value.string_value IS NOT NULL THEN to_json(p.value.string_value)::VARCHAR
    WHEN p.value.int_value IS NOT NULL
        THEN CASE WHEN length(p.value.int_value) BETWEEN 1 AND 18 AND ltrim(p.value.int_value, '0123456789') = ''
                       AND (ascii(p.value.int_value) <> 48 OR p.value.int_value = '0')
                  THEN p.value.int_value  -- plain digits: the integer's own text
                  ELSE coalesce(CAST(ga_int(p.value.int_value) AS VARCHAR), to_json(p.value.int_value)::VARCHAR) END
    WHEN p.value.double_value IS NOT NULL
        THEN coalesce(to_json(ga_float(p.value.double_value))::VARCHAR, to_json(p.value.double_value)::VARCHAR)
    ELSE coalesce(to_json(ga_float(p.value.float_value))::VARCHAR, to_json(p.value.float_value)::VARCHAR) END;
"""
# (a typed row's float leaves are doubles: a float32 is cast when the row is built)
_TYPED_LEAVES = """
CREATE OR REPLACE TEMP MACRO ga_int_leaf(x) AS CAST(x AS HUGEINT);
CREATE OR REPLACE TEMP MACRO ga_float_leaf(x) AS x;
CREATE OR REPLACE TEMP MACRO ga_pv(p) AS
    coalesce(p.value.string_value, CAST(p.value.int_value AS VARCHAR),
             CAST(p.value.double_value AS VARCHAR), CAST(p.value.float_value AS VARCHAR));
CREATE OR REPLACE TEMP MACRO ga_pjson(p) AS CASE
    WHEN p.value.string_value IS NOT NULL THEN to_json(p.value.string_value)::VARCHAR
    WHEN p.value.int_value IS NOT NULL THEN CAST(p.value.int_value AS VARCHAR)
    WHEN p.value.double_value IS NOT NULL THEN to_json(p.value.double_value)::VARCHAR
    ELSE to_json(p.value.float_value)::VARCHAR END;
"""


class Rules(TypedDict):
    """The importer's rules the query applies: timestamps in [``min_us``, ``max_us``), the
    params that become columns (``mapped``), the event names of experiment exposures."""

    min_us: int
    max_us: int
    mapped: frozenset[str]
    exposure_names: frozenset[str]


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the mapping's macros."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(_MACROS)
    con.execute(_TEXT_LEAVES)
    return con


def read_leaves(con: duckdb.DuckDBPyConnection, *, typed: bool) -> None:
    """Set how the mapping on ``con`` reads a row's leaves: as text (the JSON paths, and
    :func:`connect`'s default) or typed (integer fields as integers, float fields as
    floats: :func:`shopfunnel.ingest.ga4_parquet.parquet_row`'s typed rows)."""
    con.execute(_TYPED_LEAVES if typed else _TEXT_LEAVES)


def convert_block(
    con: duckdb.DuckDBPyConnection,
    block: pa.Table,
    **rules: Unpack[Rules],
) -> pa.Table:
    """Map a block of lines (``line`` int64, ``raw`` string: the lines, each with its
    newline).

    Returns one row per line, in the block's order (a projection: DuckDB keeps the order
    of its input): ``line``, ``content`` (the event's key: its identity fields, else the
    md5 of the line with its newline; docs/adr/0168), ``slow``
    (the reference must convert it), ``slow_raw`` (the line, on a slow row) and, for the
    other rows, every canonical column plus ``candidate`` and ``last_click`` (the row's own
    campaign and its session's last-click campaign, as structs).
    """
    con.register("__ga4_block", block)
    try:
        return _run(con, "__ga4_block", "raw", rules)
    finally:
        con.unregister("__ga4_block")


def convert_file(
    con: duckdb.DuckDBPyConnection,
    path: str,
    *,
    gzipped: bool,
    **rules: Unpack[Rules],
) -> pa.Table:
    """Map a whole newline-delimited export in one query, DuckDB reading its lines itself
    (``read_csv`` with one text column and no quoting: every line is one row, in the file's
    order, a blank line a NULL). The rows are :func:`convert_block`'s, without ``line``:
    row *i* is line *i + 1*.

    Raises :class:`duckdb.Error` on a file DuckDB cannot split into lines exactly as the
    block reader does (a carriage return, a byte that is not UTF-8, a line longer than
    1 GB): the caller then reads it a block at a time.
    """
    lines = f"(SELECT NULL::BIGINT AS line, raw FROM {_read_lines(gzipped)})"
    return _run(con, lines, "raw || chr(10)", rules, params=[path])


def _ddl(t: object) -> str:
    """A json_transform structure (parsed from JSON) as a DuckDB type."""
    if isinstance(t, str):
        return t
    if isinstance(t, list):
        return _ddl(t[0]) + "[]"
    assert isinstance(t, dict)
    return "STRUCT(" + ", ".join(f'"{k}" {_ddl(v)}' for k, v in t.items()) + ")"


# read_json's maximum_object_size (DuckDB's default, 16 MiB). The reader's buffers are sized
# from it: at 1 GB one buffer held the whole file and one thread parsed it; at 16 MiB both
# cores parse (1M rows: 7.2 -> 3.8 s wall, the same rows in the same order, ADR 0185). A
# longer line is still read whole (DuckDB 2.0 grows the buffer for it; tests check it); a
# reader that refused it would raise, and the file would go to the line reader.
JSON_LINE_LIMIT = 16 * 1024 * 1024

# STRUCTURE's fields as read_json's declared columns (the same types, in the same order).
COLUMNS = "{" + ", ".join(f"'{k}': '{_ddl(v)}'" for k, v in json.loads(STRUCTURE).items()) + "}"


def convert_json(
    con: duckdb.DuckDBPyConnection,
    path: str,
    *,
    gzipped: bool,
    **rules: Unpack[Rules],
) -> pa.Table:
    """Map a whole newline-delimited export in one query, DuckDB's JSON reader parsing it
    straight into STRUCTURE's columns (``read_json`` with declared columns, every core:
    about half the CPU of splitting the lines and ``json_transform``-ing each, docs/adr/0182).
    The rows are :func:`convert_file`'s, without the lines' text: ``slow_raw`` is NULL and a
    row keyed by its line's md5 (no identity fields) has no ``content`` and is ``slow``: the
    caller maps the slow rows again from their lines (:func:`convert_lines`).

    The reader skips blank lines (so row *i* is line *i + 1* only in a file without one: the
    caller checks the count) and raises :class:`duckdb.Error` on any line that is not JSON,
    not an object, has a duplicated key or a field that does not fit STRUCTURE, where
    ``json_transform`` would give a NULL row: the caller then reads the file by its lines.
    """
    parsed = (
        "SELECT NULL::BIGINT AS line, NULL::VARCHAR AS raw, false AS plain, false AS odd, j AS r "
        f"FROM read_json($3, format = 'newline_delimited', columns = {COLUMNS}, "
        f"auto_detect = false, maximum_object_size = {int(JSON_LINE_LIMIT)}, "
        f"compression = '{'gzip' if gzipped else 'none'}') AS j"
    )
    return _run(con, "", "NULL", rules, params=[path], parsed=parsed)


def convert_lines(
    con: duckdb.DuckDBPyConnection,
    path: str,
    lines: pa.Array,
    *,
    gzipped: bool,
    **rules: Unpack[Rules],
) -> pa.Table:
    """:func:`convert_file`'s rows for only the given ``lines`` (numbers from 1, ascending),
    with ``line`` set; DuckDB reads every line and maps only those."""
    con.register("__ga4_want", pa.table({"line": lines}))
    try:
        source = (
            "(SELECT line, raw FROM (SELECT row_number() OVER () AS line, raw FROM "
            f"{_read_lines(gzipped)}) WHERE line IN (SELECT line FROM __ga4_want))"
        )
        return _run(con, source, "raw || chr(10)", rules, params=[path])
    finally:
        con.unregister("__ga4_want")


def _read_lines(gzipped: bool) -> str:
    """A file's lines (``raw``, ``$3`` the path) as :func:`convert_file` reads them."""
    return (
        "read_csv($3, columns = {'raw': 'VARCHAR'}, "
        "delim = chr(1), quote = '', escape = '', new_line = '\\n', header = false, "
        "auto_detect = false, strict_mode = true, max_line_size = 1000000000, "
        f"compression = '{'gzip' if gzipped else 'none'}')"
    )


def _run(
    con: duckdb.DuckDBPyConnection,
    source: str,
    hashed: str,
    rules: Rules,
    params: list[object] | None = None,
    parsed: str | None = None,
) -> pa.Table:
    structure = STRUCTURE.replace("'", "''")
    sql = _SQL.format(
        parsed=parsed or _LINES_PARSED.format(source=source, structure=structure),
        hashed=hashed,
        mapped=", ".join(f"'{k}'" for k in sorted(rules["mapped"])),
        text_params=", ".join(f"'{k}'" for k in TEXT_PARAMS),
        exposures=", ".join(f"'{k}'" for k in sorted(rules["exposure_names"])),
    )
    return con.sql(sql, params=[rules["min_us"], rules["max_us"], *(params or [])]).to_arrow_table()


# The lines' parse: each line (``raw``) as JSON into STRUCTURE; a line that is not an object,
# or whose fields do not fit it, is a NULL ``r`` (the reference then reports it).
_LINES_PARSED = """
    SELECT line, raw, strpos(raw, '\\') = 0 AS plain, false AS odd,
           CASE WHEN starts_with(raw, '{{') OR left(ltrim(raw, E' \\t\\r\\n'), 1) = '{{'
                THEN try(json_transform(raw, '{structure}')) END AS r
    FROM {source}
"""

_SQL = """
WITH parsed AS ({parsed}),
fields AS (
    SELECT line, raw, r, plain, odd,
           -- the event's identity (docs/adr/0168), else the md5 of the line (docs/adr/0078)
           CASE WHEN r.event_bundle_sequence_id IS NOT NULL OR r.batch_page_id IS NOT NULL
                     OR r.batch_ordering_id IS NOT NULL OR r.batch_event_index IS NOT NULL
                THEN concat_ws(chr(31), 'ga4', coalesce(r.stream_id, ''), coalesce(r.event_bundle_sequence_id, ''),
                               coalesce(r.batch_page_id, ''), coalesce(r.batch_ordering_id, ''),
                               coalesce(r.batch_event_index, ''))
                ELSE md5({hashed}) END AS content,
           ga_int_leaf(r.event_timestamp) AS us,
           ga_str(r.event_name) AS name,
           r.event_params AS ps,
           list_transform(r.event_params, lambda p: p.key) AS keys,
           list_transform(r.event_params, lambda p: ga_pv(p)) AS vals,
           list_filter(r.items, lambda i: i IS NOT NULL) AS its,
           ga_str(r.user_pseudo_id) AS pseudo,
           ga_str(r.user_id) AS user_id
    FROM parsed
),
checked AS (
    SELECT *,
        r IS NULL OR odd OR content IS NULL OR us IS NULL OR NOT (us >= $1 AND us < $2) OR name IS NULL
        OR name IN ({exposures})
        OR (r.event_params IS NULL AND coalesce(strpos(raw, '"event_params"') > 0, false))
        -- a param without a key or a value, a key the query keeps out of properties, or a
        -- text param held in a number slot (the reference writes the number as Python does)
        OR coalesce(list_bool_or(list_transform(ps, lambda p: p.key IS NULL OR ga_pv_missing(p)
            OR p.key IN ('shipping_value', 'tax_value')
            OR (p.value.string_value IS NULL AND p.key IN ({text_params})))), false)
        -- a key seen earlier in the list (list_position finds the first; list_unique hashes
        -- every list and cost a sixth of the query)
        OR coalesce(list_bool_or(list_transform(keys, lambda k, i: list_position(keys, k) <> i)), false)
        OR coalesce(list_bool_or(list_transform(its, lambda i: i.item_id IS NULL AND i.item_name IS NULL
            AND i.item_category IS NULL AND i.price IS NULL AND i.quantity IS NULL)), false) AS slow,
        vals[list_position(keys, 'ga_session_id')] AS p_session,
        vals[list_position(keys, 'transaction_id')] AS p_order,
        vals[list_position(keys, 'value')] AS p_value,
        vals[list_position(keys, 'currency')] AS p_currency,
        vals[list_position(keys, 'page_location')] AS p_page,
        vals[list_position(keys, 'page_referrer')] AS p_referrer,
        vals[list_position(keys, 'source')] AS p_source,
        vals[list_position(keys, 'medium')] AS p_medium,
        vals[list_position(keys, 'campaign')] AS p_campaign,
        vals[list_position(keys, 'gclid')] AS p_gclid
    FROM fields
),
mapped AS (
    SELECT line, raw, content, slow, us, name, pseudo, user_id, ps, its, r, plain, p_page, p_referrer, p_currency,
        coalesce(pseudo, user_id) AS anon,
        ga_int_fast(p_session) AS session_number,
        ga_str(p_order) AS param_order,
        ga_str(r.ecommerce.transaction_id) AS ecommerce_order,
        coalesce(ga_float(p_value),
                 CASE WHEN name = 'purchase' THEN ga_float_leaf(r.ecommerce.purchase_revenue)
                      WHEN name = 'refund' THEN ga_float_leaf(r.ecommerce.refund_value) END) AS value,
        coalesce(
            ga_campaign(r.collected_traffic_source.manual_source, r.collected_traffic_source.manual_medium,
                        r.collected_traffic_source.manual_campaign_name),
            ga_campaign(p_source, p_medium, p_campaign),
            CASE WHEN ga_str(r.collected_traffic_source.gclid) IS NOT NULL OR ga_str(p_gclid) IS NOT NULL
                 THEN struct_pack(source := 'google', medium := 'cpc', campaign := NULL::VARCHAR) END
        ) AS candidate,
        ga_campaign(r.session_traffic_source_last_click.manual_campaign.source,
                    r.session_traffic_source_last_click.manual_campaign.medium,
                    r.session_traffic_source_last_click.manual_campaign.campaign_name) AS last_click,
        list_concat(
            [CASE WHEN plain THEN '"' || p.key || '": ' || ga_pjson_plain(p)
                  ELSE to_json(p.key)::VARCHAR || ': ' || ga_pjson(p) END
             FOR p IN ps IF p.key NOT IN ({mapped})],
            CASE WHEN r.ecommerce.shipping_value IS NOT NULL
                 THEN ['"shipping_value": ' || coalesce(to_json(ga_float_leaf(r.ecommerce.shipping_value))::VARCHAR, 'null')]
                 ELSE [] END,
            CASE WHEN r.ecommerce.tax_value IS NOT NULL
                 THEN ['"tax_value": ' || coalesce(to_json(ga_float_leaf(r.ecommerce.tax_value))::VARCHAR, 'null')]
                 ELSE [] END
        ) AS props
    FROM checked
)
SELECT line, content, slow, CASE WHEN slow THEN raw END AS slow_raw,
    CASE WHEN NOT slow THEN md5(coalesce(pseudo, '') || chr(31) || CAST(us AS VARCHAR) || chr(31) || name
                                || chr(31) || content) END AS event_id,
    CAST(us AS BIGINT) AS ts, name AS event, anon AS anonymous_id, user_id,
    CASE WHEN anon IS NOT NULL AND session_number IS NOT NULL
         THEN anon || ':' || CAST(session_number AS VARCHAR) END AS session_id,
    ga_str(p_referrer) AS referrer,
    ga_str(p_page) AS page,
    ga_str(r.device.category) AS device,
    ga_str(r.geo.country) AS country,
    CASE WHEN param_order IS NOT NULL AND trim(param_order, ga_ws()) NOT IN ('', '(not set)') THEN param_order
         WHEN ecommerce_order IS NOT NULL AND trim(ecommerce_order, ga_ws()) NOT IN ('', '(not set)')
         THEN ecommerce_order END AS order_id,
    value,
    ga_str(p_currency) AS currency,
    CASE WHEN len(its) > 0 THEN list_transform(its, lambda i: struct_pack(
        item_id := ga_str(i.item_id), item_name := ga_str(i.item_name),
        item_category := ga_str(i.item_category), price := ga_float_leaf(i.price),
        quantity := TRY_CAST(ga_int_leaf(i.quantity) AS INTEGER))) END AS items,
    CASE WHEN len(props) > 0 THEN '{{' || array_to_string(props, ', ') || '}}' END AS properties,
    candidate, last_click
FROM mapped
"""


def event_id(pseudo: str | None, us: int, name: str, content: str) -> str:
    """The event id the query gives (for rows the reference converted): the md5 of the
    pseudo id, the timestamp (µs), the event name and ``content`` (the query's key of the
    event: its identity fields joined, else the md5 of the line)."""
    return hashlib.md5("\x1f".join((pseudo or "", str(us), name, content)).encode()).hexdigest()


def compact(texts: pa.Array) -> pa.Array:
    """JSON texts written compact (no blanks between tokens, numbers and escapes as DuckDB
    writes them), each ending in a newline as a line does; a text that is not JSON is kept."""
    con = connect()
    try:
        con.register("__texts", pa.table({"t": texts}))
        compacted = con.sql(
            "SELECT coalesce(try(json(t)), t) || chr(10) AS t FROM __texts"
        ).to_arrow_table()
        return compacted.column("t").combine_chunks().cast(pa.large_string())
    finally:
        con.close()
