"""Built-in real data sets, shipped inside the package.

``cdnow``: purchases at the online CD store CDNOW, 1997–1998 (Fader & Hardie's data set,
as shipped by the ``lifetimes`` package under the MIT licence; see
``shopfunnel/data/cdnow/README.md``). ``kind="master"`` is the whole file (69,659 purchases
by 23,570 customers); ``kind="sample"`` is the 1/10 sample the BG/NBD papers fit (6,919
purchases by 2,357 customers).
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.store.store import LoadResult, Staged, Store

CdnowKind = Literal["master", "sample"]
DATASETS = ("cdnow",)


def _path(kind: str):  # noqa: ANN202  (a Traversable)
    if kind not in ("master", "sample"):
        raise ConfigError(f"CDNOW kind {kind!r} is not valid: use 'master' or 'sample'")
    return resources.files("shopfunnel").joinpath("data", "cdnow", f"CDNOW_{kind}.txt")


def load_cdnow(kind: CdnowKind = "master") -> pd.DataFrame:
    """The CDNOW purchases as a DataFrame, one row per purchase line, file order kept.

    Columns: ``customer_id`` (text; zero-padded in the master file, the 1..2357 "new id"
    in the sample), ``date`` (datetime64, the purchase day), ``number_of_cds`` (int),
    ``dollar_value`` (float). The sample also has ``original_id`` (the customer's id in
    the master file). A customer can have several rows on one day.
    """
    with _path(kind).open("r", encoding="ascii") as fh:
        if kind == "master":
            df = pd.read_csv(fh, sep=r"\s+", dtype={"customer_id": str, "date": str})
        else:
            df = pd.read_csv(
                fh,
                sep=r"\s+",
                header=None,
                names=["original_id", "customer_id", "date", "number_of_cds", "dollar_value"],
                dtype={"original_id": str, "customer_id": str, "date": str},
            )
            df["customer_id"] = df["customer_id"].str.lstrip("0")
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    df["number_of_cds"] = df["number_of_cds"].astype("int64")
    df["dollar_value"] = df["dollar_value"].astype("float64")
    return df


def _with_order_ids(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """CDNOW has no order ids: the n-th row (file order) of a customer is order ``<id>-<n>``."""
    n = df.groupby("customer_id", sort=False).cumcount() + 1
    out = df.copy()
    out["order_id"] = f"cdnow-{kind}-" + out["customer_id"] + "-" + n.astype(str)
    return out


def cdnow_orders(kind: CdnowKind = "master") -> pd.DataFrame:
    """CDNOW as an orders table for the analyses, shaped like ``Store.table("orders")``.

    Columns: ``order_id`` (``cdnow-<kind>-<customer>-<n>``, n counting the customer's rows
    in file order), ``person_id`` (the customer id), ``ts`` (the purchase day at 00:00
    UTC, naive), ``value`` (dollars, float), ``currency`` (``USD``), ``refunded`` (0.0),
    ``number_of_cds``.
    """
    df = _with_order_ids(load_cdnow(kind), kind)
    return pd.DataFrame(
        {
            "order_id": df["order_id"],
            "person_id": df["customer_id"],
            "ts": df["date"],
            "value": df["dollar_value"],
            "currency": "USD",
            "refunded": 0.0,
            "number_of_cds": df["number_of_cds"],
        }
    )


def stage_cdnow(kind: CdnowKind = "master") -> Staged:
    """CDNOW staged through the order-export importer (one ``purchase`` event per row,
    ``number_of_cds`` kept in ``properties``)."""
    from shopfunnel.ingest.orders import stage_orders

    df = _with_order_ids(load_cdnow(kind), kind)
    df["date"] = df["date"].dt.strftime("%Y%m%d")
    return stage_orders(
        df[["order_id", "customer_id", "date", "dollar_value", "number_of_cds"]],
        source=f"cdnow:{kind}",
        first_line=1,
        line_label="row",
        order_id_col="order_id",
        customer_col="customer_id",
        created_at_col="date",
        total_col="dollar_value",
        currency="USD",
        date_format="%Y%m%d",
        properties_cols=["number_of_cds"],
    )


def load_dataset(name: str, store: Store, *, kind: CdnowKind = "master") -> LoadResult:
    """Load a built-in data set into ``store`` (idempotent: loading it twice adds nothing)."""
    if name != "cdnow":
        raise ConfigError(f"no built-in data set {name!r}: available: {', '.join(DATASETS)}")
    return store.load_staged(stage_cdnow(kind))
