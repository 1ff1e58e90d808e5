"""The GA4 importer's row-by-row mapping: one parsed export row → one staged row.

The definition the bulk path (:mod:`shopfunnel.ingest.ga4_bulk`) is tested against; the
rules are stated in :mod:`shopfunnel.ingest.ga4`'s docstring.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from shopfunnel.errors import Reject
from shopfunnel.ingest import exposures
from shopfunnel.store import schema
from shopfunnel.store.store import LINE

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

OUT_COLUMNS = (
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
OUT_SCHEMA = pa.schema(
    [
        schema.ARROW_SCHEMA.field(c) if c != "value" else pa.field("value", pa.float64())
        for c in OUT_COLUMNS
    ]
    + [pa.field(LINE, pa.int64())]
)


def accepted(
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


def text(value: Any) -> str | None:
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
                "item_id": text(item.get("item_id")),
                "item_name": text(item.get("item_name")),
                "item_category": text(item.get("item_category")),
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
    triple = (text(src), text(med), text(camp))
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
    name = text(obj.get("event_name"))
    if name is None:
        return None, ("event", "event_name is missing", None)

    params = _params(obj.get("event_params"))
    ecommerce = _record(obj, "ecommerce")
    pseudo = text(obj.get("user_pseudo_id"))
    user_id = text(obj.get("user_id"))
    session_number = _int(params.get("ga_session_id"))
    anon = pseudo or user_id
    session_id = (
        f"{anon}:{session_number}" if anon is not None and session_number is not None else None
    )

    order_id = text(params.get("transaction_id"))
    if order_id is None or order_id.strip() in NOT_SET:
        order_id = text(ecommerce.get("transaction_id"))
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
    if candidate is None and (text(collected.get("gclid")) or text(params.get("gclid"))):
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
        "referrer": text(params.get("page_referrer")),
        "page": text(params.get("page_location")),
        "device": text(_record(obj, "device").get("category")),
        "country": text(_record(obj, "geo").get("country")),
        "order_id": order_id,
        "value": value,
        "currency": text(params.get("currency")),
        "items": _items(obj.get("items")),
        "properties": json.dumps(properties, default=str) if properties else None,
        LINE: line,
        "__candidate": candidate,
        "__last_click": session_campaign,
    }, None


def batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    columns = {c: [r[c] for r in rows] for c in (*OUT_COLUMNS, LINE)}
    return pa.RecordBatch.from_pydict(columns, schema=OUT_SCHEMA)


class SessionCampaigns:
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
