"""GA4 Parquet exports for the bulk mapping (:mod:`shopfunnel.ingest.ga4_bulk`, ADR 0193).

A Parquet export's columns are typed, and the types vary (BigQuery's INT64 as integers, a
file written by another tool with strings, float32s, bools, dictionaries, fields spelt in
another case). :func:`parquet_row` writes each typed value the mapping reads as the text the
JSON paths would hand it, and marks ``odd`` a row holding a value the query would read
otherwise than the row-by-row reference; :func:`convert_parquet` runs the JSON paths' own
mapping SQL over ``read_parquet``. Only names declared in ``ga4_bulk.FIELDS`` reach the SQL
(a file's names are matched against them, never written into it).

A file whose integer fields are integers and whose float fields are floats (BigQuery's own
export) gives the mapping typed leaves instead (docs/adr/0194): its numbers are read as they
are, not written as text and parsed back, and a list of records that already holds the
fields the mapping reads under their own names is passed as it is, not rebuilt element by
element. The mapping then reads the same values; only the work differs.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Unpack

import duckdb
import pyarrow as pa

from shopfunnel.ingest.ga4_bulk import FIELDS, Rules, _as_text, _ddl, _run, read_leaves


def convert_parquet(
    con: duckdb.DuckDBPyConnection,
    path: str,
    schema: pa.Schema,
    **rules: Unpack[Rules],
) -> pa.Table | None:
    """Map a whole Parquet export (``schema``: its Arrow schema, as pyarrow reads it) in one
    query, DuckDB reading only the columns the mapping reads (``read_parquet``, every core)
    and writing their typed values as the text the mapping takes (:func:`parquet_row`).
    The rows are :func:`convert_json`'s, ``line`` the row's number from 1: ``slow_raw`` is
    NULL and a row without identity fields has no ``content`` and is ``slow`` (the caller
    converts the slow rows with the reference, from the rows as pyarrow reads them).

    Returns None when the schema names a field the mapping reads in two spellings that
    differ only by case (DuckDB binds names regardless of case; the reference does not);
    raises :class:`duckdb.Error` on a file DuckDB cannot read."""
    row = parquet_row(schema)
    if row is None:
        return None
    parsed = (
        f"SELECT file_row_number + 1 AS line, NULL::VARCHAR AS raw, false AS plain, "
        f"{row.odd} AS odd, {row.sql} AS r FROM read_parquet($3, file_row_number = true) AS j"
    )
    read_leaves(con, typed=row.typed)
    try:
        return _run(con, "", "NULL", rules, params=[path], parsed=parsed)
    finally:
        read_leaves(con, typed=False)


class _CaseClash(Exception):
    """Two names of a struct the mapping reads differ only by case."""


class _NotTyped(Exception):
    """An integer or float field the mapping reads holds another type: the row is read as
    text."""


class ParquetRow(NamedTuple):
    """A Parquet export's row as the mapping reads it: ``sql`` builds the struct ``r`` from
    the columns (the table aliased ``j``), ``odd`` (SQL) says the row goes to the reference,
    ``typed`` says its integer and float leaves are typed (``ga4_bulk.read_leaves``)."""

    sql: str
    odd: str
    typed: bool


def parquet_row(schema: pa.Schema) -> ParquetRow | None:
    """A Parquet export's row (columns of ``schema``) as the mapping's struct ``r``, and
    ``odd``: whether the row holds a value the query would not read exactly as the reference
    reads pyarrow's value (a float or a bool in a text field, a number in ``string_value``,
    a whole float past 10^18 or a fraction in an integer field, a float that is not finite,
    a field of another shape than GA4's), so that the row goes to the reference.

    Typed when every integer field the mapping reads is an integer and every float field a
    float: numbers as they are (a float32 as its double). Otherwise every leaf is text:
    integers as ``str()`` writes them, floats as their shortest round-trip text (a whole
    float in an integer field as the integer). None when names clash by case
    (:func:`convert_parquet`)."""
    t = pa.struct(list(schema))
    try:
        try:
            row, odd = _typed(FIELDS, t, "j", top=True, typed=True)
            return ParquetRow(row, odd or "false", True)
        except _NotTyped:
            row, odd = _typed(FIELDS, t, "j", top=True)
            return ParquetRow(row, odd or "false", False)
    except _CaseClash:
        return None


def _typed(
    fields: Any,
    t: pa.DataType,
    expr: str,
    depth: int = 0,
    top: bool = False,
    typed: bool = False,
) -> tuple[str, str | None]:
    """``expr`` (of Arrow type ``t``, inside ``depth`` lists) as FIELDS' node ``fields``, with
    text leaves (``typed``: typed integer and float leaves, or :class:`_NotTyped`), and its
    ``odd`` (None: never); each ``odd`` is false, not NULL, on a NULL value."""
    if isinstance(fields, str):
        return _typed_leaf(fields, t, expr) if typed else _leaf(fields, t, expr)
    absent = f"NULL::{_ddl(_shape(fields, typed))}"
    if isinstance(fields, list):
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            return absent, f"{expr} IS NOT NULL"
        x = f"e{depth}"
        inner, odd = _typed(fields[0], t.value_type, x, depth + 1, typed=typed)
        if typed and _as_it_is(fields[0], t.value_type):
            out = expr  # its elements already read as the mapping reads them
        else:
            out = f"list_transform({expr}, lambda {x}: {inner})"
        if odd is None:
            return out, None
        return out, f"coalesce(list_bool_or(list_transform({expr}, lambda {x}: {odd})), false)"
    if not pa.types.is_struct(t):
        return absent, f"{expr} IS NOT NULL"
    names = [t.field(i).name for i in range(t.num_fields)]
    parts, odds = [], []
    for name, sub in fields.items():
        same = [n for n in names if n.lower() == name.lower()]
        if len(same) > 1:
            raise _CaseClash(name)
        if same == [name]:
            at = f'j."{name}"' if top else f"struct_extract({expr}, '{name}')"
            value, odd = _typed(sub, t.field(name).type, at, depth, typed=typed)
        else:  # absent (or spelt otherwise): the reference reads None
            value, odd = f"NULL::{_ddl(_shape(sub, typed))}", None
        parts.append(f'"{name}" := {value}')
        if odd is not None:
            odds.append(odd)
    packed = f"struct_pack({', '.join(parts)})"
    return (
        packed if top else f"CASE WHEN {expr} IS NOT NULL THEN {packed} END",
        " OR ".join(odds) or None,
    )


# the Arrow types a typed leaf of each kind keeps as it is
_AS_IT_IS = {
    "int": pa.types.is_integer,
    "float": pa.types.is_float64,
    "text": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
}


def _as_it_is(fields: Any, t: pa.DataType) -> bool:
    """Whether a list element of Arrow type ``t`` holds every field of ``fields`` under its
    own name (no other spelling beside it), each leaf of a type a typed row keeps as it is:
    the mapping can read the element itself (other fields in it are never read)."""
    if isinstance(fields, str):
        return fields in _AS_IT_IS and _AS_IT_IS[fields](t)
    if not isinstance(fields, dict) or not pa.types.is_struct(t):
        return False
    names = [t.field(i).name for i in range(t.num_fields)]
    return all(
        [n for n in names if n.lower() == name.lower()] == [name]
        and _as_it_is(sub, t.field(name).type)
        for name, sub in fields.items()
    )


def _shape(fields: Any, typed: bool) -> Any:
    """FIELDS' node as the structure the mapping reads: every leaf text, or (``typed``)
    integer leaves ``BIGINT`` and float leaves ``DOUBLE``."""
    if not typed:
        return _as_text(fields)
    if isinstance(fields, str):
        return {"int": "BIGINT", "float": "DOUBLE"}.get(fields, "VARCHAR")
    if isinstance(fields, list):
        return [_shape(fields[0], typed)]
    return {k: _shape(v, typed) for k, v in fields.items()}


def _typed_leaf(kind: str, t: pa.DataType, expr: str) -> tuple[str, str | None]:
    """A leaf of a typed row: an integer field as its integer, a float field as its double
    (not finite: odd), other fields as :func:`_leaf` writes them; :class:`_NotTyped` when an
    integer or float field holds another type."""
    if kind not in ("int", "float"):
        return _leaf(kind, t, expr)
    if pa.types.is_null(t):
        return f"NULL::{_shape(kind, True)}", None
    if kind == "int" and pa.types.is_integer(t):
        return expr, None
    if kind == "float" and (pa.types.is_float32(t) or pa.types.is_float64(t)):
        return f"CAST({expr} AS DOUBLE)", f"coalesce(NOT isfinite({expr}), false)"
    raise _NotTyped(kind)


def _leaf(kind: str, t: pa.DataType, expr: str) -> tuple[str, str | None]:
    """A leaf of kind ``kind`` (FIELDS) of Arrow type ``t`` as the text the query reads."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return "NULL::VARCHAR", None
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return expr, None
    if kind == "key":
        return f"CAST({expr} AS VARCHAR)", None
    if pa.types.is_integer(t) and kind != "string":
        return f"CAST({expr} AS VARCHAR)", None
    if (pa.types.is_float32(t) or pa.types.is_float64(t)) and kind == "float":
        return f"CAST(CAST({expr} AS DOUBLE) AS VARCHAR)", f"coalesce(NOT isfinite({expr}), false)"
    if (pa.types.is_float32(t) or pa.types.is_float64(t)) and kind == "int":
        whole = f"(isfinite({expr}) AND {expr} = trunc({expr}) AND abs({expr}) < 1e18)"
        return (
            f"CASE WHEN {whole} THEN CAST(CAST({expr} AS HUGEINT) AS VARCHAR) END",
            f"coalesce(NOT {whole}, false)",
        )
    return "NULL::VARCHAR", f"{expr} IS NOT NULL"
