"""RFM: recency, frequency and monetary scores, and Shopify's named customer groups.

Per customer (a person with at least one order):

* ``recency_days``: days from the customer's last order to ``as_of`` (default: the
  latest order in the table), as a float.
* ``frequency``: number of orders (rows; refunded orders included).
* ``monetary``: sum of the orders' ``value`` (gross, before refunds).

**Scores 1–5 by quantile, ties shared.** For each measure, a customer's score is
``1 + floor(5 × w / n)``, where ``n`` is the number of customers and ``w`` the number of
customers with a strictly *worse* value (a longer recency, fewer orders, less spend).
So the best fifth scores 5 and the worst fifth 1, and customers with equal values always
get the same score: the score of the lowest position the tie occupies. A large tie can
therefore swallow several quintiles (when 60% of customers have one order, they all
score F = 1 and the next frequency up scores 4); that is on purpose — two customers who
did exactly the same must not be told apart by the order of the rows.

**Groups.** Shopify names eleven RFM groups (Admin API ``CustomerRfmGroup``) but does not
publish the cut-offs, so these rules are ours. With ``FM = (F + M) / 2`` (a value in
steps of 0.5), the first rule that matches wins:

=====================  ==============================================================
group                  rule
=====================  ==============================================================
``prospects``          a person with no order (only when ``persons`` are given)
``champions``          R = 5 and FM ≥ 4
``loyal``              R = 4 and FM ≥ 4
``active``             R ≥ 4 and 3 ≤ FM < 4
``new``                R = 5 and FM < 3
``promising``          R = 4 and FM < 3
``needs_attention``    R = 3 and FM ≥ 3
``previously_loyal``   R ≤ 2 and FM ≥ 4
``at_risk``            R ≤ 2 and 3 ≤ FM < 4
``almost_lost``        R = 3 and FM < 3, or R = 2 and FM < 3
``dormant``            R = 1 and FM < 3
=====================  ==============================================================

Every (R, F, M) combination falls in exactly one group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel._time import naive_utc, naive_utc_timestamp
from shopfunnel.errors import InputError

#: The groups in the order of the table above (a report's natural order).
GROUPS: tuple[str, ...] = (
    "champions",
    "loyal",
    "active",
    "new",
    "promising",
    "needs_attention",
    "previously_loyal",
    "at_risk",
    "almost_lost",
    "dormant",
    "prospects",
)


def quantile_scores(values: Any, *, higher_is_better: bool = True) -> np.ndarray:
    """Scores 1–5: ``1 + floor(5 × (customers strictly worse) / n)``; ties share a score.

    NaN values are not allowed (they have no rank): a ``ValueError`` is raised.
    """
    v = np.asarray(values, dtype=float)
    if np.isnan(v).any():
        raise ValueError("quantile_scores: values contain NaN")
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype="int64")
    key = v if higher_is_better else -v
    worse = np.searchsorted(np.sort(key), key, side="left")
    return (1 + np.floor(5 * worse / n)).astype("int64")


def rfm_group(r: int, f: int, m: int) -> str:
    """The group of one customer's scores (see the module docstring's table)."""
    return str(rfm_groups(np.array([r]), np.array([f]), np.array([m]))[0])


def rfm_groups(r: np.ndarray, f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The group of each (R, F, M) score triple, by the rules of the module docstring."""
    r, f, m = (np.asarray(a, dtype=float) for a in (r, f, m))
    fm = (f + m) / 2
    conditions = [
        (r == 5) & (fm >= 4),
        (r == 4) & (fm >= 4),
        (r >= 4) & (fm >= 3) & (fm < 4),
        (r == 5) & (fm < 3),
        (r == 4) & (fm < 3),
        (r == 3) & (fm >= 3),
        (r <= 2) & (fm >= 4),
        (r <= 2) & (fm >= 3) & (fm < 4),
        ((r == 3) | (r == 2)) & (fm < 3),
        (r == 1) & (fm < 3),
    ]
    choices = [
        "champions",
        "loyal",
        "active",
        "new",
        "promising",
        "needs_attention",
        "previously_loyal",
        "at_risk",
        "almost_lost",
        "dormant",
    ]
    return np.select(conditions, choices, default="prospects")


def rfm_table(
    orders: pd.DataFrame,
    *,
    as_of: Any = None,
    persons: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per customer: ``person_id``, ``recency_days``, ``frequency``, ``monetary``,
    ``last_order``, ``r_score``, ``f_score``, ``m_score``, ``fm_score`` and ``group``
    (definitions in the module docstring). Scores are computed among customers only.

    With ``persons`` (a table with ``person_id``, e.g. ``Store.table("persons")``),
    persons without an order are added as ``prospects`` with empty measures and scores.
    Rows are sorted by group (the order of :data:`GROUPS`), then by spend, highest first.
    """
    missing = [c for c in ("person_id", "ts", "value") if c not in orders.columns]
    if missing:
        raise InputError(
            f"the orders table has no column(s) {missing}: it needs person_id, "
            "ts and value (as Store.table('orders') gives)"
        )
    ts = naive_utc(orders["ts"])
    frame = pd.DataFrame(
        {
            "person_id": orders["person_id"].astype(str).to_numpy(),
            "ts": ts.to_numpy(),
            "value": pd.to_numeric(orders["value"], errors="coerce")
            .fillna(0.0)
            .astype(float)
            .to_numpy(),
        }
    )
    end = naive_utc_timestamp(as_of) if as_of is not None else frame["ts"].max()
    per = frame.groupby("person_id").agg(
        last_order=("ts", "max"), frequency=("ts", "size"), monetary=("value", "sum")
    )
    per["recency_days"] = (end - per["last_order"]) / pd.Timedelta(days=1)
    per["r_score"] = quantile_scores(per["recency_days"], higher_is_better=False)
    per["f_score"] = quantile_scores(per["frequency"])
    per["m_score"] = quantile_scores(per["monetary"])
    per["fm_score"] = (per["f_score"] + per["m_score"]) / 2
    per["group"] = rfm_groups(per["r_score"], per["f_score"], per["m_score"])
    out = per.reset_index()[
        [
            "person_id",
            "recency_days",
            "frequency",
            "monetary",
            "last_order",
            "r_score",
            "f_score",
            "m_score",
            "fm_score",
            "group",
        ]
    ]
    # by group, then spend, highest first (customers only: prospects come last, in the
    # order of ``persons``, and have no spend to sort by)
    rank = {g: i for i, g in enumerate(GROUPS)}
    out = (
        out.assign(__g=out["group"].map(rank))
        .sort_values(
            ["__g", "monetary"], ascending=[True, False], kind="stable", na_position="last"
        )
        .drop(columns="__g")
        .reset_index(drop=True)
    )
    if persons is not None:
        if "person_id" not in persons.columns:
            raise InputError("persons needs a person_id column (as Store.table('persons') gives)")
        out = with_prospects(out, prospect_ids(persons["person_id"], out["person_id"]))
    return out


_COUNTS = ("frequency", "r_score", "f_score", "m_score")


def with_prospects(out: pd.DataFrame, prospects: pa.Array) -> pd.DataFrame:
    """An :func:`rfm_table` of customers followed by one row per id of ``prospects``
    (:func:`prospect_ids`): the id, group ``prospects`` and every measure and score empty
    (the counts and scores as nullable ``Int64``). Built column by column from arrays: a
    million prospects through ``pd.concat`` cost most of a second."""
    n, k = len(out), len(prospects)
    if not k:
        return out
    columns: dict[str, Any] = {}
    for name in out.columns:
        col = out[name]
        if name == "person_id":
            customers = pa.array(col.to_numpy(dtype=object), pa.string())
            columns[name] = pd.array(pa.concat_arrays([customers, prospects]), dtype="str")
        elif name == "group":
            groups = pa.array(col.to_numpy(dtype=object), pa.string())
            tail = pa.repeat(pa.scalar("prospects", pa.string()), k)
            columns[name] = pd.array(pa.concat_arrays([groups, tail]), dtype="str")
        elif name in _COUNTS:
            values = col.astype("Int64").array
            data = np.concatenate(
                [values.to_numpy(dtype="int64", na_value=0), np.zeros(k, "int64")]
            )
            mask = np.concatenate([np.asarray(values.isna()), np.ones(k, dtype=bool)])
            columns[name] = pd.arrays.IntegerArray(data, mask)
        elif name == "last_order":
            values = col.to_numpy()
            columns[name] = np.concatenate([values, np.full(k, np.datetime64("NaT"), values.dtype)])
        else:  # the float measures
            columns[name] = np.concatenate([col.to_numpy(dtype=float), np.full(k, np.nan)])
    return pd.DataFrame(columns, index=pd.RangeIndex(n + k))


def prospect_ids(persons: pd.Series, customers: pd.Series) -> pa.Array:
    """The distinct ``persons`` (as text, in order of first appearance) who are not
    ``customers``: hashed in Arrow, not in pandas (a store has millions of persons)."""
    ids = pa.array(
        persons.astype(str).to_numpy(dtype=object)
        if persons.dtype == object
        else persons.astype(str),
        pa.string(),
    )
    if len(ids) > 1 and not pc.all(pc.less(ids.slice(0, len(ids) - 1), ids.slice(1))).as_py():
        ids = pc.unique(ids)  # strictly increasing ids (the person index's) are distinct
    bought = pa.array(customers.to_numpy(dtype=object), pa.string())
    return ids.filter(pc.invert(pc.is_in(ids, value_set=bought)))


def rfm_group_summary(rfm: pd.DataFrame, *, more_prospects: int = 0) -> pd.DataFrame:
    """Per group of an :func:`rfm_table`: ``customers`` (persons in the group),
    ``share`` (of customers, i.e. persons with an order; NaN for ``prospects``), ``revenue``
    (sum of ``monetary``), ``revenue_share``, ``median_recency_days`` and
    ``mean_frequency``. Every group of :data:`GROUPS` is listed, empty ones with 0.
    ``more_prospects`` counts prospects that are not rows of ``rfm`` (a table of customers
    beside :func:`prospect_ids`)."""
    # rows without any measure (the prospects: millions) change no sum, median or mean:
    # they are counted, and only the others are grouped
    measured = rfm[["monetary", "recency_days", "frequency"]].notna().any(axis=1).to_numpy()
    g = rfm[measured].groupby("group")
    out = pd.DataFrame(
        {
            "customers": rfm["group"].value_counts(sort=False),
            "revenue": g["monetary"].sum(min_count=0),
            "median_recency_days": g["recency_days"].median(),
            "mean_frequency": g["frequency"].apply(lambda s: s.astype(float).mean()),
        }
    ).reindex(list(GROUPS))
    out["customers"] = out["customers"].fillna(0).astype("int64")
    out.loc["prospects", "customers"] += more_prospects
    out["revenue"] = out["revenue"].fillna(0.0).astype(float)
    total = out["customers"].drop("prospects").sum()
    revenue = out["revenue"].sum()
    out["share"] = out["customers"] / total if total else np.nan
    out.loc["prospects", "share"] = np.nan
    out["revenue_share"] = out["revenue"] / revenue if revenue else np.nan
    out = out.rename_axis("group").reset_index()
    return out[
        [
            "group",
            "customers",
            "share",
            "revenue",
            "revenue_share",
            "median_recency_days",
            "mean_frequency",
        ]
    ]
