"""Invariants of the customer analyses over random order books (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfunnel.customers.clv import BetaGeoModel, summary_from_orders
from shopfunnel.customers.retention import cohort_retention, repeat_purchase_rate
from shopfunnel.customers.rfm import quantile_scores

books = st.lists(
    st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 400), st.floats(0.5, 500)),
    min_size=1,
    max_size=60,
).map(
    lambda rows: pd.DataFrame(
        {
            "person_id": [p for p, _, _ in rows],
            "order_id": [f"o{i}" for i in range(len(rows))],
            "ts": [pd.Timestamp("2023-01-01") + pd.Timedelta(days=d) for _, d, _ in rows],
            "value": [v for _, _, v in rows],
        }
    )
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=80), st.randoms())
def test_quantile_scores_are_1_to_5_monotone_tie_equal_and_order_free(values, rnd):
    v = np.array(values)
    s = quantile_scores(v)
    assert s.min() >= 1 and s.max() <= 5
    order = np.argsort(v, kind="stable")
    assert (np.diff(s[order]) >= 0).all()
    for value in set(values):
        assert len(set(s[v == value])) == 1
    perm = list(range(len(v)))
    rnd.shuffle(perm)
    assert (quantile_scores(v[perm]) == s[perm]).all()


@settings(max_examples=40, deadline=None)
@given(books)
def test_cohorts_rates_are_shares_and_sizes_add_up_to_customers(book):
    cohorts = cohort_retention(book, period="month")
    assert ((cohorts["rate"] >= 0) & (cohorts["rate"] <= 1)).all()
    assert (cohorts.loc[cohorts["period"] == 0, "rate"] == 1).all()
    sizes = cohorts.groupby("cohort")["cohort_size"].first()
    assert sizes.sum() == book["person_id"].nunique()
    assert 0 <= repeat_purchase_rate(book) <= 1


@settings(max_examples=40, deadline=None)
@given(books)
def test_summary_recency_within_t_and_frequency_below_orders(book):
    s = summary_from_orders(book, time_unit="D")
    assert ((s["recency"] >= 0) & (s["recency"] <= s["T"])).all()
    assert (s["frequency"] <= s["orders"] - 1).all()  # repeat days ≤ orders − 1
    assert np.isclose(s["revenue"].sum(), book["value"].sum())
    assert ((s["frequency"] == 0) == (s["monetary_value"] == 0)).all()


def test_bgnbd_predictions_are_probabilities_and_grow_with_the_horizon():
    model = BetaGeoModel()
    model.params_ = pd.Series({"r": 0.3, "alpha": 5.0, "a": 0.8, "b": 2.5})
    x = np.array([0, 1, 5, 20])
    t_x = np.array([0.0, 3.0, 20.0, 30.0])
    T = np.array([10.0, 30.0, 40.0, 31.0])
    p = model.probability_alive(x, t_x, T)
    assert ((p > 0) & (p <= 1)).all()
    short, long = model.expected_purchases(4, x, t_x, T), model.expected_purchases(52, x, t_x, T)
    assert (short >= 0).all() and (long > short).all()
