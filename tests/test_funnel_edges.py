"""Funnel edge cases found by other parts of the product: per-step attribution, window limits."""

from __future__ import annotations

import pandas as pd

from shopfunnel import funnel


def test_a_value_first_seen_after_step_one_is_counted_under_other() -> None:
    events = pd.DataFrame(
        {
            "person_id": ["p", "p", "q", "q"],
            "ts": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:05"] * 2),
            "event": ["a", "b"] * 2,
            "channel": [None, "ads", "web", "web"],
        }
    )
    table = funnel(events, ["a", "b"], by="channel", attribution="per_step").breakdown
    persons = {(r.channel, r.step): r.persons for r in table.itertuples()}
    # p entered with no channel and reached b on "ads", which never entered: "other".
    assert persons == {
        ("(none)", 1): 1,
        ("(none)", 2): 0,
        ("web", 1): 1,
        ("web", 2): 1,
        ("other", 1): 0,
        ("other", 2): 1,
    }


def test_a_window_longer_than_ten_years_is_refused_with_the_limit() -> None:
    import pytest

    from shopfunnel.errors import ConfigError

    events = pd.DataFrame(
        {"person_id": ["p"], "ts": pd.to_datetime(["2024-01-01"]), "event": ["a"]}
    )
    with pytest.raises(ConfigError, match="longest is 3650 days"):
        funnel(events, ["a"], window="99999999999999d")
    assert funnel(events, ["a"], window="3650d").steps["persons"].tolist() == [1]


def test_an_engine_can_be_the_source() -> None:
    import pandas as pd

    from shopfunnel.funnel.engine import LocalEngine

    events = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:05"], utc=True),
            "event": ["view_item", "purchase"],
            "anonymous_id": ["a", "a"],
        }
    )
    steps = ["view_item", "purchase"]
    by_source = funnel(LocalEngine(events), steps).steps["persons"].tolist()
    assert by_source == funnel(events, steps).steps["persons"].tolist() == [1, 1]
    assert funnel(None, steps, engine=LocalEngine(events)).steps["persons"].tolist() == [1, 1]
