"""RFM scores (quantiles with shared ties) and every group boundary."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from shopfunnel.customers.rfm import (
    GROUPS,
    prospect_ids,
    quantile_scores,
    rfm_group,
    rfm_group_summary,
    rfm_table,
    with_prospects,
)

# The rules of docs/rfm.md as a grid: rows R = 5..1, columns FM = 1, 1.5, …, 5.
_N, _P, _A, _C, _L = "new", "promising", "active", "champions", "loyal"
_NA, _AL, _AR, _PL, _D = "needs_attention", "almost_lost", "at_risk", "previously_loyal", "dormant"
GRID = {
    5: [_N, _N, _N, _N, _A, _A, _C, _C, _C],
    4: [_P, _P, _P, _P, _A, _A, _L, _L, _L],
    3: [_AL, _AL, _AL, _AL, _NA, _NA, _NA, _NA, _NA],
    2: [_AL, _AL, _AL, _AL, _AR, _AR, _PL, _PL, _PL],
    1: [_D, _D, _D, _D, _AR, _AR, _PL, _PL, _PL],
}


def test_every_score_combination_falls_in_the_documented_group():
    for r, f, m in itertools.product(range(1, 6), repeat=3):
        expected = GRID[r][int((f + m) / 2 * 2) - 2]
        assert rfm_group(r, f, m) == expected, (r, f, m)


@pytest.mark.parametrize(
    ("scores", "group"),
    [
        ((5, 4, 4), "champions"),
        ((5, 4, 3), "active"),  # FM 4 vs 3.5
        ((5, 3, 3), "active"),
        ((5, 3, 2), "new"),  # FM 3 vs 2.5
        ((4, 4, 4), "loyal"),
        ((4, 4, 3), "active"),
        ((4, 2, 4), "active"),
        ((4, 2, 3), "promising"),
        ((3, 3, 3), "needs_attention"),
        ((3, 2, 3), "almost_lost"),
        ((3, 5, 5), "needs_attention"),
        ((2, 4, 4), "previously_loyal"),
        ((2, 4, 3), "at_risk"),
        ((2, 3, 3), "at_risk"),
        ((2, 3, 2), "almost_lost"),
        ((1, 5, 3), "previously_loyal"),
        ((1, 3, 3), "at_risk"),
        ((1, 2, 3), "dormant"),
    ],
)
def test_group_boundaries(scores, group):
    assert rfm_group(*scores) == group


def test_eleven_groups_including_prospects():
    assert len(GROUPS) == 11 and "prospects" in GROUPS
    reached = {rfm_group(r, f, m) for r, f, m in itertools.product(range(1, 6), repeat=3)}
    assert reached == set(GROUPS) - {"prospects"}


def test_quantile_scores_split_distinct_values_into_fifths():
    assert quantile_scores(np.arange(1, 11)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_tied_values_share_the_score_of_the_lowest_position_they_hold():
    # six customers with one order: nobody is worse, all score 1; the 2-order customer has
    # six worse of ten: 1 + floor(5 × 6/10) = 4
    scores = quantile_scores([1, 1, 1, 1, 1, 1, 2, 3, 4, 5])
    assert scores.tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    shuffled = quantile_scores([5, 1, 3, 1, 1, 2, 1, 4, 1, 1])
    assert shuffled.tolist() == [5, 1, 4, 1, 1, 4, 1, 5, 1, 1]  # row order does not matter


def test_recency_scores_favour_the_most_recent():
    assert quantile_scores([0, 10, 20, 30, 40], higher_is_better=False).tolist() == [5, 4, 3, 2, 1]


def test_rfm_table_on_a_hand_made_book_with_one_customer_per_fifth():
    as_of = pd.Timestamp("2024-06-30")
    rows = []
    # customer, days since last order, orders, total spend
    for person, recency, n, total in [
        ("A", 0, 5, 500.0),
        ("B", 10, 4, 400.0),
        ("C", 20, 3, 300.0),
        ("D", 30, 2, 200.0),
        ("E", 40, 1, 100.0),
    ]:
        for k in range(n):
            rows.append(
                {
                    "person_id": person,
                    "order_id": f"{person}{k}",
                    "ts": as_of - pd.Timedelta(days=recency + 7 * k),
                    "value": total / n,
                }
            )
    persons = pd.DataFrame({"person_id": ["A", "B", "C", "D", "E", "Z"]})
    table = rfm_table(pd.DataFrame(rows), persons=persons).set_index("person_id")
    assert table.loc["A", ["recency_days", "frequency", "monetary"]].tolist() == [0, 5, 500]
    assert table[["r_score", "f_score", "m_score"]].loc[list("ABCDE")].values.tolist() == [
        [5, 5, 5],
        [4, 4, 4],
        [3, 3, 3],
        [2, 2, 2],
        [1, 1, 1],
    ]
    assert table["group"].to_dict() == {
        "A": "champions",
        "B": "loyal",
        "C": "needs_attention",
        "D": "almost_lost",
        "E": "dormant",
        "Z": "prospects",
    }
    assert pd.isna(table.loc["Z", "r_score"])
    summary = rfm_group_summary(table.reset_index()).set_index("group")
    assert list(summary.index) == list(GROUPS)
    assert summary.loc["champions", "customers"] == 1
    assert summary.loc["champions", "share"] == pytest.approx(1 / 5)  # of the 5 customers
    assert pd.isna(summary.loc["prospects", "share"])
    assert summary.loc["prospects", "customers"] == 1
    assert summary.loc["at_risk", "customers"] == 0
    assert summary["revenue"].sum() == pytest.approx(1500.0)
    assert summary.loc["champions", "revenue_share"] == pytest.approx(500 / 1500)


def test_as_of_moves_recency():
    book = pd.DataFrame(
        {"person_id": ["a"], "order_id": ["1"], "ts": [pd.Timestamp("2024-01-01")], "value": [5.0]}
    )
    table = rfm_table(book, as_of="2024-01-11")
    assert table.loc[0, "recency_days"] == pytest.approx(10.0)


def test_a_summary_of_customers_counts_the_prospects_given_beside_them():
    orders = pd.DataFrame(
        {
            "person_id": ["a", "b", "b", "c"],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-02-01", "2024-02-03"]),
            "value": [10.0, 5.0, 7.5, 1.0],
        }
    )
    persons = pd.DataFrame({"person_id": ["z", "a", "y", "b", "c", "x", "y"]})
    full = rfm_table(orders, persons=persons)
    customers = rfm_table(orders)
    prospects = prospect_ids(persons["person_id"], customers["person_id"])
    assert prospects.to_pylist() == ["z", "y", "x"]  # distinct, in order of appearance
    pd.testing.assert_frame_equal(with_prospects(customers, prospects), full)
    assert list(full["group"].iloc[3:]) == ["prospects"] * 3
    assert full.iloc[3:][["recency_days", "frequency", "monetary", "r_score"]].isna().all().all()
    pd.testing.assert_frame_equal(
        rfm_group_summary(customers, more_prospects=len(prospects)), rfm_group_summary(full)
    )
