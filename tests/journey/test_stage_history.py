"""One person's stage history agrees with the store-wide placement (an independent
computation of the same rules, over all persons at once) on random event logs."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import log

from shopfunnel.model import Model
from shopfunnel.stages.history import stage_changes, stage_evidence
from shopfunnel.stages.placement import place_persons
from shopfunnel.store.store import Store

EVENTS = ["page_view", "view_item", "add_to_cart", "begin_checkout", "purchase", "scroll"]

rows = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3"]),
        st.integers(min_value=0, max_value=60 * 24 * 20),
        st.sampled_from(EVENTS),
        st.sampled_from(["o1", "o2", "o3", "o4", None]),
    ),
    min_size=1,
    max_size=25,
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=rows)
def test_the_stage_reached_and_when_agree_with_the_placement(events) -> None:
    model = Model()
    data = [
        (who, minutes, event, {"order_id": order, "value": 10.0} if event == "purchase" else {})
        for who, minutes, event, order in events
    ]
    with Store(":memory:") as store:
        store.load(log(*data))
        placed = place_persons(store, model=model).set_index("person_id")
        for person in placed.index:
            evidence = stage_evidence(store, person, model=model)
            reached = evidence.dropna(subset=["reached_at"])
            top = reached.iloc[-1]
            assert top["stage"] == placed.loc[person, "stage"]
            assert top["reached_at"] == pd.Timestamp(placed.loc[person, "entered_stage_at"])
            changes = stage_changes(evidence)
            assert changes["to_stage"].iloc[-1] == top["stage"]
            index = [model.stage_index(s) for s in changes["to_stage"]]
            assert index == sorted(set(index)), "the stage only moves forward"
            assert changes["at"].is_monotonic_increasing and changes["at"].is_unique
