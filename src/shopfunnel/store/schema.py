"""The canonical event: one row per event, GA4 e-commerce names.

The schema is declared once here as data; the store's table, the validation of
incoming rows and the Arrow schema are all derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    """One canonical column: its name, DuckDB type, and whether a row needs it."""

    name: str
    sql_type: str
    required: bool = False
    doc: str = ""


ITEM_FIELDS = ("item_id", "item_name", "item_category", "price", "quantity")
ITEM_SQL_TYPE = (
    "STRUCT(item_id VARCHAR, item_name VARCHAR, item_category VARCHAR, "
    "price DOUBLE, quantity INTEGER)[]"
)

COLUMNS: tuple[Column, ...] = (
    Column("event_id", "VARCHAR", doc="unique id; a hash of the row when the source has none"),
    Column("ts", "TIMESTAMP", required=True, doc="when it happened, UTC, microseconds"),
    Column("event", "VARCHAR", required=True, doc="GA4 event name or the store's own"),
    Column("anonymous_id", "VARCHAR", doc="cookie or device id"),
    Column("user_id", "VARCHAR", doc="the store's customer id once known"),
    Column("session_id", "VARCHAR", doc="from the source, else 30 minutes of inactivity"),
    Column("channel", "VARCHAR", doc="GA4-style default channel group"),
    Column("utm_source", "VARCHAR"),
    Column("utm_medium", "VARCHAR"),
    Column("utm_campaign", "VARCHAR"),
    Column("referrer", "VARCHAR"),
    Column("page", "VARCHAR"),
    Column("device", "VARCHAR", doc="desktop, mobile or tablet"),
    Column("country", "VARCHAR"),
    Column("order_id", "VARCHAR", doc="on purchase and refund"),
    Column("value", "DECIMAL(18,2)", doc="money value of the event, excluding shipping and tax"),
    Column("currency", "VARCHAR", doc="ISO 4217 code"),
    Column(
        "items", ITEM_SQL_TYPE, doc="products: item_id, item_name, item_category, price, quantity"
    ),
    Column("properties", "JSON", doc="anything else"),
)

# Who saw which variant of an experiment: properties ``experiment`` (the key) and ``variant``
# (a string; "0" is control when the snippet assigns). See docs/experiments.md.
EXPOSURE_EVENT = "experiment_exposure"

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}

# Columns the store adds to every stored event.
DERIVED_COLUMNS: tuple[Column, ...] = (
    Column("person_id", "VARCHAR", doc="user_id after identity stitching, else anonymous_id"),
)

ITEM_ARROW_TYPE = pa.list_(
    pa.struct(
        [
            ("item_id", pa.string()),
            ("item_name", pa.string()),
            ("item_category", pa.string()),
            ("price", pa.float64()),
            ("quantity", pa.int32()),
        ]
    )
)

ARROW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("event", pa.string()),
        ("anonymous_id", pa.string()),
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("channel", pa.string()),
        ("utm_source", pa.string()),
        ("utm_medium", pa.string()),
        ("utm_campaign", pa.string()),
        ("referrer", pa.string()),
        ("page", pa.string()),
        ("device", pa.string()),
        ("country", pa.string()),
        ("order_id", pa.string()),
        ("value", pa.decimal128(18, 2)),
        ("currency", pa.string()),
        ("items", ITEM_ARROW_TYPE),
        ("properties", pa.string()),
    ]
)

assert tuple(ARROW_SCHEMA.names) == COLUMN_NAMES
