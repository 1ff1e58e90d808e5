"""The GA4 importer: BigQuery export rows (NDJSON, JSON array, gzip) into canonical events."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from shopfunnel.errors import InputError, ValidationError
from shopfunnel.ingest import read
from shopfunnel.store.store import Store

# 2024-03-15 14:30:05.123456 UTC in microseconds, and the session start in seconds.
TS = 1710513005123456
SESSION = "1710511960"

# The purchase row of REFERENCES §1, as BigQuery writes it (INT64 as strings).
PURCHASE = {
    "event_date": "20240315",
    "event_timestamp": str(TS),
    "event_name": "purchase",
    "event_params": [
        {"key": "ga_session_id", "value": {"int_value": SESSION}},
        {
            "key": "page_location",
            "value": {"string_value": "https://shop.example/checkout/thank-you"},
        },
        {"key": "page_referrer", "value": {"string_value": "https://shop.example/checkout"}},
        {"key": "transaction_id", "value": {"string_value": "T-1001"}},
        {"key": "value", "value": {"double_value": 59.9}},
        {"key": "currency", "value": {"string_value": "USD"}},
        {"key": "session_engaged", "value": {"string_value": "1"}},
    ],
    "user_pseudo_id": "1234567890.1710511960",
    "user_id": None,
    "device": {"category": "mobile"},
    "geo": {"country": "United States"},
    "traffic_source": {"source": "google", "medium": "organic", "name": "(organic)"},
    "collected_traffic_source": None,
    "session_traffic_source_last_click": {
        "manual_campaign": {"source": "newsletter", "medium": "email", "campaign_name": "spring"}
    },
    "ecommerce": {
        "transaction_id": "T-1001",
        "purchase_revenue": 59.9,
        "total_item_quantity": "2",
        "unique_items": "1",
        "shipping_value": 5.0,
        "tax_value": 4.9,
    },
    "items": [
        {
            "item_id": "SKU-1",
            "item_name": "Tee",
            "item_category": "Apparel",
            "item_category2": "Shirts",
            "price": 25.0,
            "quantity": "2",
            "item_revenue": 50.0,
        }
    ],
}


def event(
    name: str,
    ts_us: int,
    pseudo: str = "p1",
    session: str | None = SESSION,
    params: dict | None = None,
    **fields,
) -> dict:
    """A minimal export row; ``params`` as key → GA4 value record."""
    ps = [] if session is None else [{"key": "ga_session_id", "value": {"int_value": session}}]
    ps += [{"key": k, "value": v} for k, v in (params or {}).items()]
    return {
        "event_timestamp": ts_us,
        "event_name": name,
        "user_pseudo_id": pseudo,
        "event_params": ps,
        **fields,
    }


def write_ndjson(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def load(path: Path, on_error: str = "fail") -> tuple[Store, object]:
    store = Store(":memory:")
    result = store.load_staged(read(path, format="ga4"), on_error=on_error)
    return store, result


def test_the_reference_purchase_row_becomes_one_canonical_purchase(tmp_path: Path) -> None:
    store, _ = load(write_ndjson(tmp_path / "ga.json", [PURCHASE]))
    row = store.events().iloc[0]
    assert row["ts"] == datetime(2024, 3, 15, 14, 30, 5, 123456)
    assert (row["event"], row["anonymous_id"], row["user_id"]) == (
        "purchase",
        "1234567890.1710511960",
        None,
    )
    assert row["session_id"] == "1234567890.1710511960:1710511960"
    assert (row["device"], row["country"]) == ("mobile", "United States")
    assert row["page"] == "https://shop.example/checkout/thank-you"
    assert row["referrer"] == "https://shop.example/checkout"
    assert (row["order_id"], float(row["value"]), row["currency"]) == ("T-1001", 59.9, "USD")
    assert [dict(i) for i in row["items"]] == [
        {
            "item_id": "SKU-1",
            "item_name": "Tee",
            "item_category": "Apparel",
            "price": 25.0,
            "quantity": 2,
        }
    ]
    # Session attribution is last click (newsletter), never first touch (google organic).
    assert (row["utm_source"], row["utm_medium"], row["utm_campaign"]) == (
        "newsletter",
        "email",
        "spring",
    )
    assert row["channel"] == "email"
    props = json.loads(row["properties"])
    assert props == {"session_engaged": "1", "shipping_value": 5.0, "tax_value": 4.9}
    orders = store.table("orders")
    assert orders["order_id"].tolist() == ["T-1001"] and float(orders["value"][0]) == 59.9


def test_integers_may_arrive_as_json_numbers_or_strings(tmp_path: Path) -> None:
    rows = [
        event("page_view", TS, session="1710511960"),
        event(
            "view_item",
            str(TS + 1),
            session=None,
            params={"ga_session_id": {"int_value": 1710511960}},
        ),
        event(
            "add_to_cart",
            f"{TS + 2}",
            session=None,
            params={
                "ga_session_id": {"int_value": "1710511960"},
                "value": {"int_value": "60"},
                "currency": {"string_value": "EUR"},
            },
        ),
        event("begin_checkout", float(TS + 3), params={"value": {"float_value": "12.5"}}),
    ]
    store, _ = load(write_ndjson(tmp_path / "ga.json", rows))
    events = store.events()
    assert events["session_id"].nunique() == 1
    assert [float(v) if v == v else None for v in events["value"]] == [None, None, 60.0, 12.5]
    assert events["ts"].diff().dropna().dt.total_seconds().round(6).tolist() == [1e-6] * 3


def test_session_campaign_falls_back_to_the_first_collected_campaign(tmp_path: Path) -> None:
    collected = {
        "manual_source": "facebook",
        "manual_medium": "paid_social",
        "manual_campaign_name": "launch",
    }
    later = {"manual_source": "newsletter", "manual_medium": "email"}
    rows = [
        # listed first but happens second: must not decide the session's campaign
        event("view_item", TS + 2_000_000, collected_traffic_source=later),
        event(
            "page_view",
            TS,
            collected_traffic_source=collected,
            traffic_source={"source": "google", "medium": "organic"},
        ),
        event("add_to_cart", TS + 5_000_000),
    ]
    store, _ = load(write_ndjson(tmp_path / "ga.json", rows))
    events = store.events()
    assert set(events["utm_source"]) == {"facebook"}
    assert set(events["utm_campaign"]) == {"launch"}
    assert set(events["channel"]) == {"paid social"}


def test_event_param_utm_and_gclid_are_used_when_nothing_else_is(tmp_path: Path) -> None:
    rows = [
        event(
            "page_view",
            TS,
            pseudo="a",
            params={"source": {"string_value": "partner"}, "medium": {"string_value": "affiliate"}},
        ),
        event("page_view", TS, pseudo="b", params={"gclid": {"string_value": "Cj0KCQ"}}),
        event("page_view", TS + 1, pseudo="b"),
    ]
    store, _ = load(write_ndjson(tmp_path / "ga.json", rows))
    channels = store.events().groupby("anonymous_id")["channel"].agg(set).to_dict()
    assert channels == {"a": {"affiliates"}, "b": {"paid search"}}


def test_first_touch_traffic_source_is_never_a_session_source(tmp_path: Path) -> None:
    rows = [
        event(
            "page_view", TS, traffic_source={"source": "google", "medium": "cpc", "name": "brand"}
        )
    ]
    store, _ = load(write_ndjson(tmp_path / "ga.json", rows))
    row = store.events().iloc[0]
    assert row["utm_source"] is None and row["channel"] == "direct"


def test_refunds_and_not_set_transaction_ids(tmp_path: Path) -> None:
    rows = [
        event(
            "purchase",
            TS,
            params={"transaction_id": {"string_value": "(not set)"}},
            ecommerce={"transaction_id": "(not set)", "purchase_revenue": "30"},
        ),
        event("refund", TS + 1, ecommerce={"transaction_id": "T-9", "refund_value": 12.0}),
    ]
    store, _ = load(write_ndjson(tmp_path / "ga.json", rows))
    events = store.events().set_index("event")
    assert pd.isna(events.loc["purchase", "order_id"])
    assert float(events.loc["purchase", "value"]) == 30.0
    assert (events.loc["refund", "order_id"], float(events.loc["refund", "value"])) == ("T-9", 12.0)


def test_loading_the_same_export_twice_adds_nothing(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "ga.json", [PURCHASE, event("page_view", TS)])
    store, first = load(path)
    second = store.load_staged(read(path, format="ga4"))
    assert (first.rows_added, second.rows_added, second.duplicates) == (2, 0, 2)


def test_json_array_and_gzip_files_give_the_same_events(tmp_path: Path) -> None:
    rows = [PURCHASE, event("page_view", TS), event("view_item", TS + 10)]
    # compact lines, as BigQuery writes its newline-delimited export (ids hash the line)
    ndjson = tmp_path / "ga.json"
    ndjson.write_text("\n".join(json.dumps(r, separators=(",", ":")) for r in rows) + "\n")
    array = tmp_path / "ga_array.json"
    array.write_text("[\n" + ",\n".join(json.dumps(r, indent=1) for r in rows) + "\n]\n")
    gz = tmp_path / "ga.json.gz"
    gz.write_bytes(gzip.compress(ndjson.read_bytes()))
    ids = [
        sorted(read(p, format="ga4").table.column("event_id").to_pylist())
        for p in (ndjson, array, gz)
    ]
    assert ids[0] == ids[1] == ids[2] and len(set(ids[0])) == 3


def test_array_elements_carry_the_line_they_start_on(tmp_path: Path) -> None:
    array = tmp_path / "ga.json"
    bad = event("page_view", "soon")
    array.write_text("[\n" + json.dumps(PURCHASE, indent=1) + ",\n" + json.dumps(bad) + "\n]")
    first_lines = 1 + json.dumps(PURCHASE, indent=1).count("\n") + 1  # "[" + the element
    with pytest.raises(ValidationError) as caught:
        Store(":memory:").load_staged(read(array, format="ga4"))
    assert [r.line for r in caught.value.rejects] == [first_lines + 1]


def test_bad_rows_are_reported_with_their_line_and_nothing_is_written(tmp_path: Path) -> None:
    rows = [
        event("page_view", TS),  # 1 fine
        '{"event_timestamp": 1710513005123456, "event_name": ',  # 2 cut short
        event("", TS),  # 3 no event name
        {"event_name": "page_view", "user_pseudo_id": "p1"},  # 4 no timestamp
        event("page_view", "yesterday"),  # 5 not a number
        event("page_view", 1710513005),  # 6 seconds, not microseconds
        "",  # 7 blank: skipped silently
        "[1, 2]",  # 8 not an object
        event("view_item", TS + 1),  # 9 fine
    ]
    path = write_ndjson(tmp_path / "ga.json", rows)
    store = Store(":memory:")
    with pytest.raises(ValidationError) as caught:
        store.load_staged(read(path, format="ga4"))
    assert [r.line for r in caught.value.rejects] == [2, 3, 4, 5, 6, 8]
    assert "ga.json:2" in str(caught.value)
    assert store.info()["events"] == 0
    result = store.load_staged(read(path, format="ga4"), on_error="skip")
    assert (result.rows_read, result.rows_added, len(result.rejects)) == (8, 2, 6)


def test_non_utf8_lines_are_rejected_by_line(tmp_path: Path) -> None:
    path = tmp_path / "ga.json"
    good = json.dumps(event("page_view", TS)).encode()
    bad = json.dumps(event("page_view", TS + 1, pseudo="caf\u00e9"), ensure_ascii=False).encode()
    path.write_bytes(good + b"\n" + bad.replace("é".encode(), b"\xe9") + b"\n")
    with pytest.raises(ValidationError, match="ga.json:2.*not UTF-8"):
        Store(":memory:").load_staged(read(path, format="ga4"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"PAR1\x00\x00", "Parquet"),
        (b"[\n" + json.dumps(PURCHASE).encode() + b",\n", "not closed"),
    ],
)
def test_unreadable_files_give_a_clear_message(tmp_path: Path, content: bytes, message) -> None:
    path = tmp_path / "ga.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read(path, format="ga4")


def test_a_parquet_export_gives_the_same_events_numbered_by_row(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def typed(name: str, ts_us: int, pseudo: str) -> dict:
        return {
            "event_timestamp": ts_us,
            "event_name": name,
            "user_pseudo_id": pseudo,
            "event_params": [
                {
                    "key": "ga_session_id",
                    "value": {"string_value": None, "int_value": int(SESSION)},
                },
                {
                    "key": "page_location",
                    "value": {"string_value": "https://shop.example/", "int_value": None},
                },
            ],
            "collected_traffic_source": {"manual_source": "google", "manual_medium": "cpc"},
        }

    rows = [
        typed("page_view", TS, "a"),
        typed("view_item", TS + 1, "a"),
        typed("page_view", 1710513005, "b"),
    ]  # row 3: seconds, not µs
    parquet = tmp_path / "events_20240315.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    ndjson = write_ndjson(tmp_path / "events_20240315.json", rows)
    frames = []
    for path in (parquet, ndjson):
        store = Store(":memory:")
        result = store.load_staged(read(path), on_error="skip")  # format sniffed: ga4
        assert [(r.line, r.column) for r in result.rejects] == [(3, "ts")]
        frames.append(store.events()[["ts", "event", "session_id", "page", "channel"]])
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert set(frames[0]["channel"]) == {"paid search"}


def test_a_ga4_export_is_recognised_without_format(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events_20240315.json", [PURCHASE])
    gz = tmp_path / "events_20240316.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read(path).table.column("event").to_pylist() == ["purchase"]
    assert read(gz).table.column("order_id").to_pylist() == ["T-1001"]


def test_odd_item_values_are_read_as_unknown_not_a_crash(tmp_path: Path) -> None:
    items = [
        {"item_id": 7, "price": "n/a", "quantity": "99999999999"},
        {"item_name": "Cap", "price": "12.5", "quantity": 1.0},
        "not an item",
    ]
    store, _ = load(write_ndjson(tmp_path / "ga.json", [event("view_item", TS, items=items)]))
    assert [dict(i) for i in store.events()["items"][0]] == [
        {"item_id": "7", "item_name": None, "item_category": None, "price": None, "quantity": None},
        {"item_id": None, "item_name": "Cap", "item_category": None, "price": 12.5, "quantity": 1},
    ]
