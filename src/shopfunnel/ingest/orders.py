"""The order-export importer: one row per order, for stores that only have orders.

Each row (order id, customer id or e-mail, created at, total, currency) becomes one
``purchase`` event:

=================  =====================================================================
canonical column   from
=================  =====================================================================
``event_id``       ``"order:" + order id`` (so loading the same export twice adds nothing,
                   and a second row with an order id already seen is dropped)
``event``          ``"purchase"``
``ts``             created at (a timestamp; no zone means UTC)
``user_id``        the customer id, or the e-mail lower-cased and trimmed
``anonymous_id``   the same as ``user_id`` (an order export has no cookie ids)
``order_id``       order id
``value``          total
``currency``       the currency column, else the ``currency`` option, else empty
``channel``        left empty: the store's grouping then calls it ``direct``
``properties``     the columns named in ``properties_cols``, as JSON
=================  =====================================================================

**Finding the columns.** Headers are compared after lower-casing and turning spaces and
hyphens into underscores, so Shopify's ``Name, Email, Created at, Total, Currency`` export
is recognised as it is. Each field is looked up under the names in :data:`CANDIDATES`
(first match wins) unless named explicitly (``order_id_col=``, ``customer_col=``,
``created_at_col=``, ``total_col=``, ``currency_col=``; on the command line
``--map order_id=Name --map user_id=Email --map ts="Created at" --map value=Total``).

**Dates.** With ``date_format`` (a ``strptime`` pattern such as ``"%d/%m/%Y"``) each value
is parsed with it; without it, a column whose values are mostly eight digits is read as
``YYYYMMDD`` and anything else as ISO 8601 (a space before the zone offset allowed,
as in Shopify's ``2024-03-01 10:00:00 +0100``; no zone means UTC). A value that cannot be
parsed is passed on as it is, so the store rejects it with its line number (a
:class:`~shopfunnel.errors.ValidationError`, or a reject with ``on_error="skip"``).

**Line numbers.** A CSV's header is line 1, so the first order is line 2; a Parquet or
in-memory row's number is its 1-based row.

A row with no order id is refused here (an order without an id cannot be deduplicated):
the :class:`~shopfunnel.errors.ValidationError` names every such line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shopfunnel.errors import ConfigError, InputError, Reject, ValidationError
from shopfunnel.ingest.generic import _check_file, _first_line, with_lines
from shopfunnel.store.store import Staged, to_arrow

if TYPE_CHECKING:
    import pandas as pd  # imported where an order table is read: ~0.2 s of every command

#: Header names (normalised) tried for each field, in order.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "order_id": ("order_id", "order_number", "order_name", "order", "name", "id"),
    "customer": ("customer_id", "customer", "user_id", "email", "customer_email", "e_mail"),
    "created_at": (
        "created_at",
        "order_date",
        "processed_at",
        "date",
        "created",
        "ts",
        "timestamp",
    ),
    "total": ("total", "total_price", "order_total", "amount", "value", "revenue"),
    "currency": ("currency", "currency_code"),
}

_OPTION = {
    "order_id": "order_id_col",
    "customer": "customer_col",
    "created_at": "created_at_col",
    "total": "total_col",
    "currency": "currency_col",
}
#: ``--map`` keys (canonical names) accepted for each field.
_MAP_KEYS = {
    "order_id": "order_id",
    "user_id": "customer",
    "anonymous_id": "customer",
    "ts": "created_at",
    "value": "total",
    "currency": "currency",
}


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def read_orders(
    path: str | Path,
    *,
    order_id_col: str | None = None,
    customer_col: str | None = None,
    created_at_col: str | None = None,
    total_col: str | None = None,
    currency_col: str | None = None,
    currency: str | None = None,
    date_format: str | None = None,
    properties_cols: Sequence[str] = (),
    delimiter: str | None = None,
    mapping: dict[str, str] | None = None,
) -> Staged:
    """Stage an order export (CSV, TSV or Parquet) as ``purchase`` events.

    ``mapping`` takes canonical names as keys (``order_id``, ``user_id``, ``ts``,
    ``value``, ``currency``), as the command line's ``--map`` does; the ``*_col`` options
    say the same thing and win over it.
    """
    p = _check_file(path)
    name = p.name.lower()
    if name.endswith((".parquet", ".pq")):
        try:
            table = pq.read_table(p)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{p}: is not a Parquet file ({_first_line(exc)})") from exc
        first_line, label = 1, "row"
    else:
        sep = delimiter or ("\t" if name.endswith((".tsv", ".tsv.gz")) else ",")
        try:
            parse = pacsv.ParseOptions(delimiter=sep)
            columns = pacsv.open_csv(p, parse_options=parse).schema.names
            table = pacsv.read_csv(
                p,
                parse_options=pacsv.ParseOptions(delimiter=sep),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in columns},
                    strings_can_be_null=True,
                    null_values=[""],
                ),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise InputError(
                f"{p}: cannot be read as an order export ({_first_line(exc)}). Check the "
                "delimiter, that the file is UTF-8 text, and that every row has as many fields "
                "as the header."
            ) from exc
        first_line, label = 2, "line"
    if table.num_rows == 0:
        raise InputError(f"{p}: has a header but no orders: there is nothing to load")
    return stage_orders(
        table,
        source=str(p),
        first_line=first_line,
        line_label=label,
        order_id_col=order_id_col,
        customer_col=customer_col,
        created_at_col=created_at_col,
        total_col=total_col,
        currency_col=currency_col,
        currency=currency,
        date_format=date_format,
        properties_cols=properties_cols,
        mapping=mapping,
    )


def stage_orders(
    data: Any,
    *,
    source: str = "orders",
    first_line: int = 1,
    line_label: str = "row",
    order_id_col: str | None = None,
    customer_col: str | None = None,
    created_at_col: str | None = None,
    total_col: str | None = None,
    currency_col: str | None = None,
    currency: str | None = None,
    date_format: str | None = None,
    properties_cols: Sequence[str] = (),
    mapping: dict[str, str] | None = None,
) -> Staged:
    """Stage an in-memory order table (pandas, Polars or Arrow); see the module docstring."""
    import pandas as pd

    table = to_arrow(data)
    if table.num_rows == 0:
        raise InputError(f"{source}: has no orders: there is nothing to load")
    explicit = _explicit_columns(
        mapping,
        order_id_col=order_id_col,
        customer_col=customer_col,
        created_at_col=created_at_col,
        total_col=total_col,
        currency_col=currency_col,
    )
    cols = _resolve(table.column_names, explicit, source)
    missing_props = [c for c in properties_cols if c not in table.column_names]
    if missing_props:
        raise InputError(
            f"{source}: properties_cols names column(s) {missing_props} that it does not have; "
            f"its columns are {table.column_names}"
        )

    def text(col: str) -> pd.Series:
        values = table.column(col).to_pandas()
        out = values.astype("string").str.strip()
        return out.mask(out == "")

    lines = np.arange(first_line, first_line + table.num_rows)
    order_id = text(cols["order_id"])
    no_id = order_id.isna().to_numpy()
    if no_id.any():
        rejects = [
            Reject(source, int(line), cols["order_id"], "order id is missing")
            for line in lines[no_id]
        ]
        shown = "\n  ".join(str(r) for r in rejects[:10])
        more = f"\n  … and {len(rejects) - 10} more" if len(rejects) > 10 else ""
        raise ValidationError(
            f"{source}: {len(rejects)} order(s) without an order id; nothing was loaded.\n  "
            f"{shown}{more}\nGive every order its id (or name the id column with "
            "--map order_id=<column>).",
            rejects,
        )
    customer = text(cols["customer"])
    is_email = customer.str.contains("@", regex=False).fillna(False).astype(bool)
    customer = customer.mask(is_email, customer.str.lower())
    ts = _timestamps(table.column(cols["created_at"]), date_format)
    value = text(cols["total"])
    if "currency" in cols:
        cur = text(cols["currency"]).str.upper()
        if currency is not None:
            cur = cur.fillna(currency.upper())
    else:
        cur = pd.Series(
            [None if currency is None else currency.upper()] * table.num_rows, dtype="string"
        )
    out: dict[str, Any] = {
        "event_id": ("order:" + order_id).to_numpy(dtype=object, na_value=None),
        "ts": ts,
        "event": ["purchase"] * table.num_rows,
        "anonymous_id": customer.to_numpy(dtype=object, na_value=None),
        "user_id": customer.to_numpy(dtype=object, na_value=None),
        "order_id": order_id.to_numpy(dtype=object, na_value=None),
        "value": value.to_numpy(dtype=object, na_value=None),
        "currency": cur.to_numpy(dtype=object, na_value=None),
    }
    if properties_cols:
        rows = table.select(list(properties_cols)).to_pylist()
        out["properties"] = [
            json.dumps({k: v for k, v in row.items() if v is not None}, default=str) for row in rows
        ]
    staged = pa.table({k: pa.array(v, type=pa.string()) for k, v in out.items()})
    return with_lines(staged, source, first_line=first_line, line_label=line_label)


def _explicit_columns(mapping: dict[str, str] | None, **options: str | None) -> dict[str, str]:
    explicit: dict[str, str] = {}
    for key, column in (mapping or {}).items():
        if key not in _MAP_KEYS:
            raise ConfigError(
                f"--map {key}={column} is not used by the orders format: map order_id, user_id "
                "(customer id or e-mail), ts (created at), value (total) or currency"
            )
        explicit[_MAP_KEYS[key]] = column
    for field, option in _OPTION.items():
        if options.get(option) is not None:
            explicit[field] = options[option]  # type: ignore[assignment]
    return explicit


def _resolve(columns: list[str], explicit: dict[str, str], source: str) -> dict[str, str]:
    """Which source column holds each field (currency is optional)."""
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(_norm(c), c)
    found: dict[str, str] = {}
    for field, names in CANDIDATES.items():
        if field in explicit:
            wanted = explicit[field]
            if wanted in columns:
                found[field] = wanted
            elif _norm(wanted) in by_norm:
                found[field] = by_norm[_norm(wanted)]
            else:
                raise InputError(
                    f"{source}: the {field.replace('_', ' ')} column {wanted!r} is not in the "
                    f"file; its columns are {columns}"
                )
            continue
        hit = next((by_norm[n] for n in names if n in by_norm), None)
        if hit is not None:
            found[field] = hit
        elif field != "currency":
            option = _OPTION[field]
            raise InputError(
                f"{source}: no {field.replace('_', ' ')} column found (looked for "
                f"{', '.join(names)}); its columns are {columns}. Name the column with "
                f"{option}=... (command line: --map {_map_key(field)}=<column>)."
            )
    return found


def _map_key(field: str) -> str:
    return {
        "order_id": "order_id",
        "customer": "user_id",
        "created_at": "ts",
        "total": "value",
        "currency": "currency",
    }[field]


def _timestamps(column: pa.ChunkedArray, date_format: str | None) -> list[str | None]:
    """ISO text for every parsable value; the raw text where parsing fails (the store
    then rejects it with its line)."""
    import pandas as pd

    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        parsed = pd.to_datetime(column.to_pandas(), utc=True)
        return [None if pd.isna(v) else v.isoformat() for v in parsed]
    raw = column.to_pandas().astype("string").str.strip()
    raw = raw.mask(raw == "")
    fmt = date_format
    if fmt is None:
        present = raw.dropna()
        if len(present) and present.str.fullmatch(r"\d{8}").mean() > 0.5:
            fmt = "%Y%m%d"
    if fmt is None:
        # ISO 8601, also with a space before the offset ("2024-03-01 10:00:00 +0100", as
        # Shopify writes it)
        fmt = "ISO8601"
        raw_iso = raw.str.replace(r"\s*([+-]\d{2}):?(\d{2})$", r"\1:\2", regex=True)
        parsed = pd.to_datetime(raw_iso, format=fmt, errors="coerce", utc=True)
    else:
        parsed = pd.to_datetime(raw, format=fmt, errors="coerce", utc=True)
    iso = pd.Series(parsed.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), dtype="string")
    return iso.fillna(raw).to_numpy(dtype=object, na_value=None).tolist()
