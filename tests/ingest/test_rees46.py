"""The REES46 importer: event logs with view/cart/remove_from_cart/purchase rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shopfunnel.errors import InputError, ValidationError
from shopfunnel.ingest import read
from shopfunnel.store.store import Store

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)
S1 = "4d3b30da-a5e4-49df-b1a8-ba5943f1dd33"
S2 = "9f0c1c2e-0000-4000-8000-000000000002"
PHONE = "1003461,2053013555631882655,electronics.smartphone,xiaomi,489.07"
ROWS = [
    f"2019-11-01 00:00:00 UTC,view,{PHONE},520088904,{S1}",
    f"2019-11-01 00:00:05 UTC,cart,{PHONE},520088904,{S1}",
    f"2019-11-01 00:00:20 UTC,cart,5000088,2053013566100866035,,,10.50,520088904,{S1}",
    f"2019-11-01 00:01:00 UTC,purchase,{PHONE},520088904,{S1}",
    f"2019-11-01 00:01:00 UTC,purchase,5000088,2053013566100866035,,,10.50,520088904,{S1}",
    f"2019-11-02 09:00:00 UTC,view,5000088,2053013566100866035,,,10.50,600000001,{S2}",
    f"2019-11-02 09:00:30 UTC,purchase,5000088,2053013566100866035,,,10.50,600000001,{S2}",
]


def write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def load(path: Path, **options) -> Store:
    store = Store(":memory:")
    store.load_staged(read(path, format="rees46", **options))
    return store


def test_event_types_map_to_ga4_names_and_fields_to_canonical_columns(tmp_path: Path) -> None:
    store = load(write(tmp_path / "2019-Nov.csv", ROWS))
    events = store.events()
    assert events["event"].tolist() == [
        "view_item",
        "add_to_cart",
        "add_to_cart",
        "purchase",
        "purchase",
        "view_item",
        "purchase",
    ]
    first = events.iloc[0]
    assert str(first["ts"]) == "2019-11-01 00:00:00"
    assert (first["user_id"], first["session_id"]) == ("520088904", S1)
    assert float(first["value"]) == 489.07
    assert [dict(i) for i in first["items"]] == [
        {
            "item_id": "1003461",
            "item_name": None,
            "item_category": "electronics.smartphone",
            "price": 489.07,
            "quantity": 1,
        }
    ]
    # the 19-digit category id survives exactly (a float would round it)
    assert json.loads(first["properties"]) == {
        "category_id": "2053013555631882655",
        "brand": "xiaomi",
    }


def test_an_order_is_the_purchase_rows_of_one_session_summing_prices(tmp_path: Path) -> None:
    store = load(write(tmp_path / "x.csv", ROWS))
    orders = store.table("orders").set_index("order_id")
    assert sorted(orders.index) == sorted([S1, S2])
    assert float(orders.loc[S1, "value"]) == pytest.approx(489.07 + 10.50)
    assert float(orders.loc[S2, "value"]) == 10.50
    assert store.info()["orders"] == 2


def test_remove_from_cart_rows_are_accepted_but_not_required(tmp_path: Path) -> None:
    extra = (
        f"2019-11-01 00:00:30 UTC,remove_from_cart,5000088,2053013566100866035,,,10.50,"
        f"520088904,{S1}"
    )
    store = load(write(tmp_path / "x.csv", [*ROWS, extra]))
    assert store.info()["events_by_name"]["remove_from_cart"] == 1
    assert "remove_from_cart" not in load(write(tmp_path / "y.csv", ROWS)).info()["events_by_name"]


def test_a_purchase_without_a_session_still_gets_an_order(tmp_path: Path) -> None:
    row = "2019-11-03 10:00:00 UTC,purchase,1,2,,,5.00,700,"
    store = load(write(tmp_path / "x.csv", [row]))
    assert store.table("orders")["order_id"].tolist() == ["700@2019-11-03 10:00:00 UTC"]


def test_currency_can_be_given(tmp_path: Path) -> None:
    store = load(write(tmp_path / "x.csv", ROWS[:1]), currency="USD")
    assert store.events()["currency"].tolist() == ["USD"]


def test_loading_the_same_file_twice_adds_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", ROWS)
    store = load(path)
    again = store.load_staged(read(path, format="rees46"))
    assert (again.rows_added, again.duplicates, store.info()["events"]) == (0, 7, 7)


def test_large_files_stream_through_parquet_with_the_same_result(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", ROWS)
    in_memory = load(path).events()
    staged = read(path, format="rees46", spill_bytes=0)
    assert staged.sql is not None and "read_parquet" in staged.sql
    store = Store(":memory:")
    store.load_staged(staged)
    pd.testing.assert_frame_equal(store.events(), in_memory)


def test_bad_rows_are_rejected_on_their_line(tmp_path: Path) -> None:
    rows = list(ROWS)
    rows[2] = f"2019-13-01 00:00:20 UTC,cart,5000088,1,,,10.50,520088904,{S1}"  # line 4
    rows[4] = "2019-11-01 00:01:00 UTC,purchase,5000088,1,,,10.50,520088904"  # line 6
    rows[5] = f"2019-11-02 09:00:00 UTC,view,5000088,1,,,ten,600000001,{S2}"  # line 7
    path = write(tmp_path / "x.csv", rows)
    store = Store(":memory:")
    with pytest.raises(ValidationError) as caught:
        store.load_staged(read(path, format="rees46"))
    found = [(r.line, r.column) for r in caught.value.rejects]
    assert found == [(4, "ts"), (6, "(row)"), (7, "value")]
    assert store.info()["events"] == 0
    result = store.load_staged(read(path, format="rees46"), on_error="skip")
    assert result.rows_added == 4


def test_a_file_that_is_not_rees46_names_the_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", ["1,2,3"], header="event_id,ts,event")
    missing = "not a REES46 file.*'event_time', 'event_type', 'user_id'"
    with pytest.raises(InputError, match=missing):
        read(path, format="rees46")


def test_a_header_only_file_has_nothing_to_load(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(HEADER + "\n")
    with pytest.raises(InputError, match="no rows"):
        read(path, format="rees46")


def test_a_rees46_file_is_recognised_without_format(tmp_path: Path) -> None:
    staged = read(write(tmp_path / "2019-Oct.csv", ROWS[:2]))
    assert staged.table.column("event").to_pylist() == ["view_item", "add_to_cart"]


def test_rows_identical_in_every_column_are_one_event(tmp_path: Path) -> None:
    store = Store(":memory:")
    result = store.load_staged(
        read(write(tmp_path / "x.csv", [ROWS[0], ROWS[0], ROWS[1]]), format="rees46")
    )
    assert (result.rows_read, result.rows_added, result.duplicates) == (3, 2, 1)
