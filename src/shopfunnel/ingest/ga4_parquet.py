"""GA4 Parquet exports for the bulk mapping (:mod:`shopfunnel.ingest.ga4_bulk`, ADR 0193).

A Parquet export's columns are typed, and the types vary (BigQuery's INT64 as integers, a
file written by another tool with strings, float32s, bools, dictionaries, fields spelt in
another case). :func:`parquet_row` writes each typed value the mapping reads as the text the
JSON paths would hand it, and marks ``odd`` a row holding a value the query would read
otherwise than the row-by-row reference; :func:`convert_parquet` runs the JSON paths' own
mapping SQL over ``read_parquet``. Only names declared in ``ga4_bulk.FIELDS`` reach the SQL
(a file's names are matched against them, never written into it).
"""

from __future__ import annotations

from typing import Any, Unpack

import duckdb
import pyarrow as pa

from shopfunnel.ingest.ga4_bulk import FIELDS, Rules, _as_text, _ddl, _run


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
    typed = parquet_row(schema)
    if typed is None:
        return None
    row, odd = typed
    parsed = (
        f"SELECT file_row_number + 1 AS line, NULL::VARCHAR AS raw, false AS plain, {odd} AS odd, "
        f"{row} AS r FROM read_parquet($3, file_row_number = true) AS j"
    )
    return _run(con, "", "NULL", rules, params=[path], parsed=parsed)


class _CaseClash(Exception):
    """Two names of a struct the mapping reads differ only by case."""


def parquet_row(schema: pa.Schema) -> tuple[str, str] | None:
    """A Parquet export's row (columns of ``schema``, the table aliased ``j``) as STRUCTURE's
    struct ``r`` (SQL), and ``odd`` (SQL): whether the row holds a value the query would
    not read exactly as the reference reads pyarrow's value (a float or a bool in a text
    field, a number in ``string_value``, a whole float past 10^18 or a fraction in an integer
    field, a float that is not finite, a field of another shape than GA4's), so that the
    row goes to the reference. Integers are written as ``str()`` writes them, floats as
    their shortest round-trip text (a whole float in an integer field as the integer).
    None when names clash by case (:func:`convert_parquet`)."""
    try:
        row, odd = _typed(FIELDS, pa.struct(list(schema)), "j", top=True)
    except _CaseClash:
        return None
    return row, odd or "false"


def _typed(
    fields: Any, t: pa.DataType, expr: str, depth: int = 0, top: bool = False
) -> tuple[str, str | None]:
    """``expr`` (of Arrow type ``t``, inside ``depth`` lists) as FIELDS' node ``fields`` as
    text, and its ``odd`` (None: never); each ``odd`` is false, not NULL, on a NULL value."""
    if isinstance(fields, str):
        return _leaf(fields, t, expr)
    absent = f"NULL::{_ddl(_as_text(fields))}"
    if isinstance(fields, list):
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            return absent, f"{expr} IS NOT NULL"
        x = f"e{depth}"
        inner, odd = _typed(fields[0], t.value_type, x, depth + 1)
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
            value, odd = _typed(sub, t.field(name).type, at, depth)
        else:  # absent (or spelt otherwise): the reference reads None
            value, odd = f"NULL::{_ddl(_as_text(sub))}", None
        parts.append(f'"{name}" := {value}')
        if odd is not None:
            odds.append(odd)
    packed = f"struct_pack({', '.join(parts)})"
    return (
        packed if top else f"CASE WHEN {expr} IS NOT NULL THEN {packed} END",
        " OR ".join(odds) or None,
    )


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
