"""Holdouts: the hash decides who is held out, and the lift is read against them."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import T0, log
from shopfunnel.errors import ConfigError
from shopfunnel.experiments import metrics as mx
from shopfunnel.experiments.assignment import in_holdout
from shopfunnel.experiments.holdout import holdout_lift, split_audience

KEY = "winback-flow"


def audience(n: int) -> pd.DataFrame:
    return pd.DataFrame({"person_id": [f"p{i}" for i in range(n)], "entered_at": T0})


def test_the_split_is_in_holdout_for_each_person() -> None:
    split = split_audience(KEY, audience(500), 0.2)
    expected = ["held_out" if in_holdout(KEY, f"p{i}", 0.2) else "messaged" for i in range(500)]
    assert split["variant"].tolist() == expected


def test_a_message_that_works_shows_its_lift_over_the_holdout(store) -> None:
    persons = audience(2000)
    rows = []
    for i, pid in enumerate(persons["person_id"]):
        held = in_holdout(KEY, pid, 0.2)
        rows.append((pid, -60, "page_view"))  # everyone is known to the store
        if i % 10 < (1 if held else 3):  # 10% of held-out persons buy, 30% of messaged ones
            rows.append((pid, 60, "purchase", {"order_id": f"o{i}", "value": 20.0}))
    store.load(log(*rows))
    lift = holdout_lift(store, KEY, 0.2, persons, mx.conversion("purchase"), window="2d")
    assert lift.held_out + lift.messaged == 2000
    assert lift.held_out == sum(in_holdout(KEY, p, 0.2) for p in persons["person_id"])
    assert not lift.srm.mismatch
    assert lift.result.expected == pytest.approx(2.0, abs=0.4)  # +200%
    assert lift.result.p_value < 0.001


def test_an_empty_holdout_is_a_result_that_says_so(store) -> None:
    store.load(log(("p0", 0, "page_view")))
    lift = holdout_lift(store, KEY, 0.0, audience(1), mx.conversion("purchase"), engine="bayesian")
    assert lift.held_out == 0 and "nobody in the holdout" in lift.result.error


def test_an_audience_without_entry_times_is_refused() -> None:
    with pytest.raises(ConfigError, match="entered_at"):
        split_audience(KEY, pd.DataFrame({"person_id": ["p1"]}), 0.1)
