"""What a staged value must pass to become an event: the typed SQL expression of each
canonical column, the checks that name a bad row's column and reason, the guarded pass of a
first load (which raises on a bad row instead of filtering it), and the rejects they give.

Every rule reads :mod:`shopfunnel.store.schema`; values are tested in SQL, never per row in
Python.
"""

from __future__ import annotations

from typing import Any

from shopfunnel.errors import Reject
from shopfunnel.store import schema
from shopfunnel.store.db import Database, quote_ident, quote_literal
from shopfunnel.store.staged import LINE


class FirstLoadRefused(Exception):
    """The first-load pass met a row it cannot write as is: take the general path."""


REFUSED = "shopfunnel: row needs the general load path"


def guarded_typed_cte(
    present: list[str],
    types: dict[str, str],
    typed: dict[str, str],
    derive_sessions: bool,
    derive_channels: bool,
) -> str:
    """The ``typed`` CTE of :meth:`prepare_sql` that raises instead of filtering.

    Each typed value is computed once, in an inner projection next to its raw value; the
    outer projection passes the typed values on and tests every condition of
    :func:`checks_of` (rewritten over the inner columns) in one ``CASE`` around
    ``event_id`` that calls ``error()`` on a bad row. DuckDB keeps the two projections
    apart, so no cast (and no JSON parse) is evaluated twice. A text column that stays
    text needs no cast: its only failure is the empty string, which the general path
    reads as missing and rejects.
    """
    must_have = (
        {"event_id"}
        | ({"session_id"} if not derive_sessions else set())
        | ({"channel"} if not derive_channels else set())
    )
    inner, value, bad = [], {}, []
    for name in present:
        col = schema.BY_NAME[name]
        raw = quote_ident("r_" + name)
        inner.append(f"{quote_ident(name)} AS {raw}")
        if col.sql_type == "VARCHAR" and types[name] == "VARCHAR":
            value[name] = raw
            bad.append(f"{raw} = ''")
        else:
            value[name] = quote_ident("t_" + name)
            inner.append(f"{typed[name]} AS {value[name]}")
            bad.append(f"({raw} IS NOT NULL AND {value[name]} IS NULL)")
        if col.required or name in must_have:
            bad.append(f"{raw} IS NULL")
    who = [quote_ident("r_" + c) for c in ("anonymous_id", "user_id") if c in present]
    bad.append("(" + " AND ".join(f"{w} IS NULL" for w in who) + ")")
    outer = []
    for col in schema.COLUMNS:
        name = quote_ident(col.name)
        if col.name == "event_id":
            outer.append(
                f"CASE WHEN {' OR '.join(bad)} THEN error({quote_literal(REFUSED)}) "
                f"ELSE {value['event_id']} END AS {name}"
            )
        elif col.name in present:
            outer.append(f"{value[col.name]} AS {name}")
        else:
            outer.append(f"CAST(NULL AS {col.sql_type}) AS {name}")
    return (
        f"typed AS (SELECT {', '.join(outer)}, {LINE} FROM (SELECT {', '.join(inner)}, {LINE} "
        "FROM __src))"
    )


def checks_of(
    present: list[str], typed: dict[str, str], types: dict[str, str]
) -> list[tuple[str, str, str]]:
    """(column, SQL condition that is true for a bad row, reason) for each rule.

    A value is bad when it is present but its typed form is NULL; for a text column
    that stays text that is exactly the empty string, tested without the cast."""
    checks = []
    for name in present:
        col = schema.BY_NAME[name]
        raw = quote_ident(name)
        if col.required:
            checks.append((name, f"{raw} IS NULL", "is required and missing"))
        unreadable = (
            f"{raw} = ''"
            if col.sql_type == "VARCHAR" and types[name] == "VARCHAR"
            else f"{raw} IS NOT NULL AND {typed[name]} IS NULL"
        )
        checks.append((name, unreadable, f"cannot be read as {human_type(col.sql_type)}"))
    who = [quote_ident(c) for c in ("anonymous_id", "user_id") if c in present]
    checks.append(
        (
            "anonymous_id",
            " AND ".join(f"{w} IS NULL" for w in who),
            "the row has neither anonymous_id nor user_id",
        )
    )
    return checks


def human_type(sql_type: str) -> str:
    if sql_type == "TIMESTAMP":
        return "a timestamp (ISO 8601, e.g. 2024-03-15T10:30:00Z; no zone means UTC)"
    if sql_type.startswith("DECIMAL"):
        return "a number"
    if sql_type.startswith("STRUCT"):
        return (
            "a list of items (a JSON array of objects with only item_id, item_name, "
            "item_category, price, quantity)"
        )
    if sql_type == "JSON":
        return 'a JSON object ({"key": value, …})'
    return sql_type.lower()


def typed_expr(name: str, source_type: str) -> str:
    """A SQL expression casting the staged column to its canonical type, NULL if it can't."""
    col = schema.BY_NAME[name]
    raw = quote_ident(name)
    if col.sql_type == "TIMESTAMP":
        if source_type.startswith("TIMESTAMP WITH TIME ZONE"):
            # The UTC wall clock is the instant's epoch: plain arithmetic, where
            # timezone('UTC', …) goes through ICU's calendar (0.7 s CPU per 10M rows).
            # ±infinity has no epoch and keeps the ICU conversion.
            return (
                f"CASE WHEN isfinite({raw}) THEN make_timestamp(epoch_us({raw})) "
                f"ELSE CAST(timezone('UTC', {raw}) AS TIMESTAMP) END"
            )
        if source_type.startswith("TIMESTAMP") or source_type == "DATE":
            return f"CAST({raw} AS TIMESTAMP)"
        if source_type in ("BIGINT", "INTEGER", "HUGEINT", "DOUBLE"):
            return f"make_timestamp(CAST({raw} AS BIGINT) * 1000000)"
        return f"CAST(timezone('UTC', TRY_CAST({raw} AS TIMESTAMPTZ)) AS TIMESTAMP)"
    if col.sql_type == "JSON":  # properties: a JSON object, nothing else
        if source_type == "VARCHAR" or source_type == "JSON":
            # valid JSON whose text starts with '{' is an object (no second parse)
            return (
                f"CASE WHEN starts_with(ltrim(CAST({raw} AS VARCHAR)), '{{') "
                f"THEN TRY_CAST({raw} AS JSON) END"
            )
        return (
            f"CASE WHEN json_type(to_json({raw})) = 'OBJECT' THEN CAST(to_json({raw}) AS JSON) END"
        )
    if col.name == "items" and source_type in ("VARCHAR", "JSON"):
        # the cast to the item type drops unknown keys and reads a non-object as an empty
        # item: refuse both, as the collector does, rather than lose what they carried
        fields = ", ".join(quote_literal(f) for f in schema.ITEM_FIELDS)
        parsed = f"TRY_CAST({raw} AS JSON)"
        foreign = (
            f"list_bool_or(list_transform(TRY_CAST({parsed} AS JSON[]), lambda it: "
            f"json_type(it) <> 'OBJECT' OR NOT list_has_all([{fields}], json_keys(it))))"
        )
        return f"CASE WHEN {foreign} THEN NULL ELSE TRY_CAST({parsed} AS {col.sql_type}) END"
    if col.sql_type == "VARCHAR":
        return f"NULLIF(CAST({raw} AS VARCHAR), '')"
    return f"TRY_CAST({raw} AS {col.sql_type})"


def describe_rejects(
    db: Database, source: str, checks: list[tuple[str, str, str]], types: dict[str, str]
) -> tuple[Reject, ...]:
    """Every failed check of the rows in ``__bad``, as Rejects ordered by line."""
    reject_sql = " UNION ALL ".join(
        f"SELECT {LINE} AS line, ? AS col, ? AS reason, "
        f"CAST({quote_ident(name) if name in types else 'NULL'} AS VARCHAR) AS value "
        f"FROM __bad WHERE {cond}"
        for name, cond, _ in checks
    )
    params: list[Any] = []
    for name, _, reason in checks:
        params += [name, reason]
    found = db.rows(
        f"SELECT line, col, reason, value FROM ({reject_sql}) ORDER BY line, col", params
    )
    return tuple(
        Reject(source, int(line), col, reason, value) for line, col, reason, value in found
    )
