"""The built-in CDNOW data set: shipped inside the package, loadable in one call."""

from __future__ import annotations

from importlib import resources

import pandas as pd
import pytest

from shopfunnel.errors import ConfigError
from shopfunnel.ingest.datasets import cdnow_orders, load_cdnow, load_dataset, stage_cdnow


def test_cdnow_files_ship_inside_the_package_with_their_source_and_licence():
    folder = resources.files("shopfunnel").joinpath("data", "cdnow")
    names = {p.name for p in folder.iterdir()}
    assert {"CDNOW_master.txt", "CDNOW_sample.txt", "README.md"} <= names
    readme = folder.joinpath("README.md").read_text(encoding="utf-8")
    assert "lifetimes" in readme and "MIT" in readme and "Fader" in readme


@pytest.mark.parametrize(
    ("kind", "rows", "customers", "dollars"),
    [
        ("master", 69659, 23570, 2500315.63),
        ("sample", 6919, 2357, None),
    ],
)
def test_load_cdnow_has_the_documented_rows_and_customers(kind, rows, customers, dollars):
    df = load_cdnow(kind)
    assert len(df) == rows
    assert df["customer_id"].nunique() == customers
    assert df["date"].min() == pd.Timestamp("1997-01-01")
    assert df["date"].max() == pd.Timestamp("1998-06-30")
    assert pd.api.types.is_string_dtype(df["customer_id"])
    if dollars is not None:
        assert df["dollar_value"].sum() == pytest.approx(dollars)


def test_master_customer_ids_keep_their_leading_zeros():
    assert load_cdnow("master")["customer_id"].iloc[0] == "00001"


def test_sample_rows_belong_to_master_customers_of_the_same_original_id():
    sample, master = load_cdnow("sample"), load_cdnow("master")
    first = sample.iloc[0]
    theirs = master[master["customer_id"] == first["original_id"]]
    assert first["date"] in set(theirs["date"])


def test_cdnow_orders_have_one_unique_order_id_per_row():
    orders = cdnow_orders("sample")
    assert orders["order_id"].is_unique
    assert list(orders.columns[:4]) == ["order_id", "person_id", "ts", "value"]


def test_cdnow_loads_into_a_store_through_the_order_importer(store):
    result = load_dataset("cdnow", store, kind="sample")
    assert (result.rows_read, result.rows_added) == (6919, 6919)
    info = store.info()
    assert (info["orders"], info["persons"]) == (6919, 2357)
    again = load_dataset("cdnow", store, kind="sample")
    assert again.rows_added == 0
    orders = store.table("orders")
    assert orders["value"].sum() == pytest.approx(cdnow_orders("sample")["value"].sum())
    assert (
        store.db.scalar("SELECT count(*) FROM events WHERE properties->>'number_of_cds' IS NULL")
        == 0
    )


def test_stage_cdnow_goes_through_the_order_importer():
    staged = stage_cdnow("sample")
    assert set(staged.table.column("event").to_pylist()) == {"purchase"}


def test_unknown_data_set_or_kind_is_a_config_error(store):
    with pytest.raises(ConfigError, match="cdnow"):
        load_dataset("iris", store)
    with pytest.raises(ConfigError, match="master"):
        load_cdnow("full")  # type: ignore[arg-type]
