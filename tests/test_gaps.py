"""The usual gap between orders: own gap with 3+ orders, else the store's, else a default."""

from __future__ import annotations

import numpy as np
import pytest

from shopfunnel.model import Placement
from shopfunnel.stages.gaps import store_gap, usual_gap_days


def test_the_store_gap_is_the_80th_percentile_once_there_are_20_gaps():
    gap = store_gap(np.arange(1, 22, dtype=float), Placement())  # 1..21: 1 + 0.8 * 20
    assert gap.days == pytest.approx(17.0)
    assert "21 gaps" in gap.source


def test_fewer_than_20_gaps_fall_back_to_the_default():
    gap = store_gap(np.arange(1, 20, dtype=float), Placement())
    assert gap.days == pytest.approx(90.0)
    assert store_gap(np.array([]), Placement(lapsed_after="30d")).days == pytest.approx(30.0)


def test_three_orders_give_an_own_gap_of_the_exponential_80th_percentile():
    usual, own = usual_gap_days(
        np.array([0, 1, 2, 3]),
        np.array([np.nan, 0.0, 10.0, 20.0]),
        store_gap(np.array([]), Placement()),
        Placement(),
    )
    assert np.isnan(usual[0])
    assert usual[1:3].tolist() == [90.0, 90.0]
    assert usual[3] == pytest.approx(10.0 * -np.log(0.2))
    assert own.tolist() == [False, False, False, True]
