"""The order-export importer: one row per order becomes one purchase event."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfunnel.cli import app
from shopfunnel.errors import ConfigError, InputError, ValidationError
from shopfunnel.ingest import FORMATS, read
from shopfunnel.ingest.orders import read_orders, stage_orders
from shopfunnel.store.store import Store


def write(tmp_path: Path, text: str, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


ORDERS = """order_id,customer_id,created_at,total,currency
1001,c1,2024-03-01T10:00:00Z,25.50,EUR
1002,c2,2024-03-02T11:30:00Z,10.00,EUR
1003,c1,2024-03-20T09:00:00Z,40.00,EUR
"""


def test_orders_format_is_registered():
    assert FORMATS["orders"] is read_orders


def test_each_order_becomes_one_purchase_event_of_its_customer(tmp_path, store):
    result = store.load_staged(read(write(tmp_path, ORDERS), format="orders"))
    assert (result.rows_read, result.rows_added) == (3, 3)
    events = store.events()
    assert set(events["event"]) == {"purchase"}
    assert list(events["order_id"]) == ["1001", "1002", "1003"]
    assert list(events["user_id"]) == ["c1", "c2", "c1"]
    assert list(events["anonymous_id"]) == list(events["user_id"])
    assert [float(v) for v in events["value"]] == [25.5, 10.0, 40.0]
    assert set(events["currency"]) == {"EUR"}
    assert events["ts"].iloc[0] == pd.Timestamp("2024-03-01 10:00:00")
    orders = store.table("orders")
    assert orders.groupby("person_id").size().to_dict() == {"c1": 2, "c2": 1}


def test_unknown_channel_is_left_empty_so_grouping_calls_it_direct(tmp_path, store):
    staged = read(write(tmp_path, ORDERS), format="orders")
    assert "channel" not in staged.table.column_names
    store.load_staged(staged)
    assert set(store.events()["channel"]) == {"direct"}


def test_loading_the_same_export_twice_adds_nothing(tmp_path, store):
    path = write(tmp_path, ORDERS)
    store.load_staged(read(path, format="orders"))
    again = store.load_staged(read(path, format="orders"))
    assert (again.rows_added, again.duplicates) == (0, 3)
    assert store.info()["orders"] == 3


def test_shopify_style_headers_and_emails_are_recognised(tmp_path, store):
    text = (
        "Name,Email,Created at,Total,Currency\n"
        "#1001,Ann@Example.com,2024-03-01 10:00:00 +0100,25.50,eur\n"
        "#1002, ann@example.com ,2024-03-05 10:00:00 +0100,5.00,EUR\n"
    )
    store.load_staged(read(write(tmp_path, text), format="orders"))
    events = store.events()
    assert list(events["user_id"]) == ["ann@example.com", "ann@example.com"]
    assert list(events["order_id"]) == ["#1001", "#1002"]
    assert events["ts"].iloc[0] == pd.Timestamp("2024-03-01 09:00:00")  # UTC
    assert set(events["currency"]) == {"EUR"}


def test_column_options_and_map_name_the_columns(tmp_path, store):
    text = "ref;buyer;when;amount\nA-1;x;2024-01-02;9.99\nA-2;y;2024-01-03;5\n"
    path = write(tmp_path, text)
    by_options = read_orders(
        path,
        delimiter=";",
        order_id_col="ref",
        customer_col="buyer",
        created_at_col="when",
        total_col="amount",
        currency="usd",
    )
    by_map = read(
        path,
        format="orders",
        delimiter=";",
        mapping={"order_id": "ref", "user_id": "buyer", "ts": "when", "value": "amount"},
    )
    assert by_options.table.column("order_id").to_pylist() == ["A-1", "A-2"]
    assert by_options.table.column("currency").to_pylist() == ["USD", "USD"]
    assert by_map.table.column("user_id").to_pylist() == ["x", "y"]
    store.load_staged(by_map)
    assert sorted(store.table("orders")["value"]) == [5.0, 9.99]


def test_yyyymmdd_dates_are_read_without_a_format(tmp_path, store):
    text = "order_id,customer_id,date,total\n1,a,19970101,11.77\n2,a,19970112,12.00\n"
    store.load_staged(read(write(tmp_path, text), format="orders"))
    assert list(store.events()["ts"]) == [pd.Timestamp("1997-01-01"), pd.Timestamp("1997-01-12")]


def test_bad_date_on_line_4_is_a_validation_error_naming_line_4_and_loads_nothing(tmp_path, store):
    text = ORDERS + "1004,c3,not-a-date,12.00,EUR\n1005,c4,2024-04-01T00:00:00Z,3.00,EUR\n"
    # header is line 1, so the fourth order is on line 5; make the bad one line 4 instead
    lines = text.splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ValidationError) as info:
        store.load_staged(read(path, format="orders"))
    assert [(r.line, r.column) for r in info.value.rejects] == [(4, "ts")]
    assert ":4:" in str(info.value) and "not-a-date" in str(info.value)
    assert store.info()["events"] == 0


def test_bad_date_with_a_date_format_is_rejected_by_line_and_skip_keeps_the_rest(tmp_path, store):
    text = "order_id,customer_id,created_at,total\n1,a,01/02/2024,5\n2,b,31/02/2024,6\n"
    path = write(tmp_path, text)
    result = store.load_staged(read(path, format="orders", date_format="%d/%m/%Y"), on_error="skip")
    assert [(r.line, r.column, r.value) for r in result.rejects] == [(3, "ts", "31/02/2024")]
    assert store.events()["ts"].tolist() == [pd.Timestamp("2024-02-01")]


def test_bad_total_is_rejected_with_its_line(tmp_path, store):
    text = "order_id,customer_id,created_at,total\n1,a,2024-01-01,5\n2,b,2024-01-02,five\n"
    with pytest.raises(ValidationError) as info:
        store.load_staged(read(write(tmp_path, text), format="orders"))
    assert [(r.line, r.column) for r in info.value.rejects] == [(3, "value")]


def test_missing_column_says_what_was_looked_for_and_how_to_name_it(tmp_path):
    text = "order_id,customer_id,total\n1,a,5\n"
    with pytest.raises(InputError) as info:
        read(write(tmp_path, text), format="orders")
    message = str(info.value)
    assert "created at" in message and "created_at" in message
    assert "--map ts=<column>" in message and "created_at_col" in message
    assert "['order_id', 'customer_id', 'total']" in message


def test_a_named_column_that_is_absent_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="'placed'"):
        read_orders(write(tmp_path, ORDERS), created_at_col="placed")


def test_unknown_map_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--map page=x"):
        read(write(tmp_path, ORDERS), format="orders", mapping={"page": "x"})


def test_order_without_an_id_is_refused_naming_its_line(tmp_path):
    text = "order_id,customer_id,created_at,total\n1,a,2024-01-01,5\n,b,2024-01-02,6\n"
    with pytest.raises(ValidationError) as info:
        read(write(tmp_path, text), format="orders")
    assert [(r.line, r.column) for r in info.value.rejects] == [(3, "order_id")]


def test_order_without_a_customer_is_rejected_by_the_store(tmp_path, store):
    text = "order_id,customer_id,created_at,total\n1,,2024-01-01,5\n2,b,2024-01-02,6\n"
    with pytest.raises(ValidationError) as info:
        store.load_staged(read(write(tmp_path, text), format="orders"))
    assert [r.line for r in info.value.rejects] == [2]


def test_empty_and_header_only_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="empty"):
        read(write(tmp_path, "", "empty.csv"), format="orders")
    with pytest.raises(InputError, match="no orders"):
        read(write(tmp_path, "order_id,customer_id,created_at,total\n", "h.csv"), format="orders")


def test_ragged_csv_is_an_input_error_not_a_traceback(tmp_path):
    text = "order_id,customer_id,created_at,total\n1,a,2024-01-01,5,extra,more\n"
    with pytest.raises(InputError, match="cannot be read"):
        read(write(tmp_path, text), format="orders")


def test_in_memory_orders_keep_chosen_columns_as_properties(store):
    df = pd.DataFrame(
        {
            "order_id": ["o1"],
            "customer_id": ["a"],
            "created_at": ["2024-01-01"],
            "total": [3.5],
            "items_count": [2],
        }
    )
    store.load_staged(stage_orders(df, properties_cols=["items_count"]))
    props = store.db.scalar("SELECT properties->>'items_count' FROM events")
    assert props == "2"


def test_parquet_order_exports_load(tmp_path, store):
    path = tmp_path / "orders.parquet"
    pd.DataFrame(
        {
            "order_id": ["1", "2"],
            "customer_id": ["a", "b"],
            "created_at": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
            "total": [1.0, 2.0],
        }
    ).to_parquet(path)
    store.load_staged(read(path, format="orders"))
    assert store.info()["orders"] == 2


def test_cli_ingest_with_format_orders(tmp_path):
    db = tmp_path / "s.duckdb"
    path = write(tmp_path, "Name,Email,Created at,Total\n#1,a@b.c,2024-01-01,5\n")
    result = CliRunner().invoke(app, ["ingest", str(path), "--format", "orders", "--db", str(db)])
    assert result.exit_code == 0, result.output
    with Store(db, read_only=True) as store:
        assert store.info()["orders"] == 1
    bad = write(tmp_path, "order_id,customer_id,created_at,total\n1,a,2024-13-45,5\n", "b.csv")
    result = CliRunner().invoke(app, ["ingest", str(bad), "--format", "orders", "--db", str(db)])
    assert result.exit_code == 1
    assert "b.csv:2" in result.output


def test_shopify_line_item_rows_of_one_order_load_as_one_order(tmp_path, store):
    text = (
        "Name,Email,Created at,Total,Lineitem name\n"
        "#1001,a@b.c,2024-03-01 10:00:00 +0000,30.00,Mug\n"
        "#1001,a@b.c,2024-03-01 10:00:00 +0000,,Plate\n"
        "#1002,a@b.c,2024-03-09 10:00:00 +0000,12.00,Mug\n"
    )
    result = store.load_staged(read(write(tmp_path, text), format="orders"))
    assert (result.rows_read, result.rows_added) == (3, 2)
    assert sorted(store.table("orders")["value"]) == [12.0, 30.0]
