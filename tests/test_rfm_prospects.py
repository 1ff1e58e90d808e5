"""RFM with prospects: the table is the one the plain pandas recipe gives.

:func:`shopfunnel.customers.rfm.rfm_table` adds every person without an order as a prospect;
it finds them with Arrow's hash tables and sorts only the customers. On random order books
and person lists (repeated ids, ids that never ordered, customers missing from the list) it
must equal the recipe it replaced: append the prospects, then sort everyone by group and
spend.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.customers.rfm import GROUPS, rfm_group_summary, rfm_table

IDS = [f"p{i}" for i in range(12)] + ['ü/"x', "a,b"]


ORDERS = st.lists(
    st.tuples(st.sampled_from(IDS), st.integers(0, 90), st.integers(0, 500)),
    min_size=1,
    max_size=30,
)


def recipe(orders: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    out = rfm_table(orders)  # customers only, sorted
    ids = pd.Series(persons["person_id"].astype(str).unique())
    prospects = ids[~ids.isin(out["person_id"])]
    if len(prospects):
        extra = pd.DataFrame({"person_id": prospects.to_numpy(), "group": "prospects"})
        out = pd.concat([out, extra], ignore_index=True)
        for col in ("frequency", "r_score", "f_score", "m_score"):
            out[col] = out[col].astype("Int64")
    rank = {g: i for i, g in enumerate(GROUPS)}
    out = out.assign(__g=out["group"].map(rank)).sort_values(
        ["__g", "monetary"], ascending=[True, False], kind="stable", na_position="last"
    )
    return out.drop(columns="__g").reset_index(drop=True)


def order_book(orders: list[tuple[str, int, int]]) -> pd.DataFrame:
    """Orders as (person, days after 2024-01-01, value) tuples."""
    return pd.DataFrame(
        {
            "person_id": [p for p, _, _ in orders],
            "ts": [pd.Timestamp("2024-01-01") + pd.Timedelta(days=d) for _, d, _ in orders],
            "value": [float(v) for _, _, v in orders],
        }
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    orders=ORDERS,
    persons=st.lists(st.sampled_from(IDS), max_size=40),
)
def test_prospects_are_every_other_person_once_in_order_of_appearance(orders, persons) -> None:
    book = order_book(orders)
    people = pd.DataFrame({"person_id": persons})
    pd.testing.assert_frame_equal(rfm_table(book, persons=people), recipe(book, people))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    orders=ORDERS,
    persons=st.lists(st.sampled_from(IDS), unique=True, max_size=14).map(sorted),
)
def test_sorted_distinct_persons_as_the_person_index_gives_are_taken_as_they_are(
    orders, persons
) -> None:
    """Ids in strictly increasing order (the person index's) skip the hash of distinct ids:
    the table is the recipe's all the same."""
    book = order_book(orders)
    people = pd.DataFrame({"person_id": persons})
    pd.testing.assert_frame_equal(rfm_table(book, persons=people), recipe(book, people))


def summary_recipe(rfm: pd.DataFrame) -> pd.DataFrame:
    """The per-group summary as first written: every row grouped, prospects included."""
    g = rfm.groupby("group")
    out = pd.DataFrame(
        {
            "customers": g.size(),
            "revenue": g["monetary"].sum(min_count=0),
            "median_recency_days": g["recency_days"].median(),
            "mean_frequency": g["frequency"].apply(lambda s: s.astype(float).mean()),
        }
    ).reindex(list(GROUPS))
    out["customers"] = out["customers"].fillna(0).astype("int64")
    out["revenue"] = out["revenue"].fillna(0.0).astype(float)
    total = out["customers"].drop("prospects").sum()
    revenue = out["revenue"].sum()
    out["share"] = out["customers"] / total if total else float("nan")
    out.loc["prospects", "share"] = float("nan")
    out["revenue_share"] = out["revenue"] / revenue if revenue else float("nan")
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    orders=ORDERS,
    persons=st.lists(st.sampled_from(IDS), max_size=40),
)
def test_group_summary_counts_prospects_without_grouping_them_and_equals_the_recipe(
    orders, persons
) -> None:
    """The summary groups only rows with a measure (prospects have none: they change no
    sum, median or mean) and counts every row: the same table as grouping everyone."""
    book = order_book(orders)
    table = rfm_table(book, persons=pd.DataFrame({"person_id": persons}))
    pd.testing.assert_frame_equal(rfm_group_summary(table), summary_recipe(table))
