"""Data cannot break it: any property key or value — quotes, empty keys, dots, spaces, ``$``,
brackets, backslashes, slashes, tildes, unicode, SQL comment text — flows through loading,
funnel filters and breakdowns, the diagnosis, the report and the server, and is counted
as the value it is. Nothing from data goes into SQL or a JSON path unquoted.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import log
from shopfunnel.diagnosis.diagnose import diagnose
from shopfunnel.funnel.api import Step, funnel
from shopfunnel.store.store import Store

NASTY = ['a"b', "", "x.y", "sp ace", "$", "[0]", "back\\slash", "ü", "-- c", "a/b", "t~x",
         "'; DROP TABLE events; --", "$.a", '{"k": 1}', "*", "%", "\t"]

keys = st.one_of(st.sampled_from(NASTY), st.text(min_size=0, max_size=8))
values = st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=8))


def store_with(key: str, hit: str, miss: str) -> Store:
    """p1 and p2 view with ``key`` = ``hit`` and buy; p3 views with ``miss`` and buys; p4
    views without the key."""
    def props(value: str) -> dict[str, str]:
        return {"properties": json.dumps({key: value, "other": "o"})}

    store = Store(":memory:")
    store.load(log(("p1", 0, "view_item", props(hit)), ("p1", 1, "purchase"),
                   ("p2", 0, "view_item", props(hit)), ("p2", 2, "purchase"),
                   ("p3", 0, "view_item", props(miss)), ("p3", 3, "purchase"),
                   ("p4", 0, "view_item")))
    return store


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=keys, hit=values, miss=values)
def test_any_key_and_value_filter_and_break_down_a_funnel_as_what_they_are(key, hit, miss) -> None:
    if hit == miss:
        miss = hit + "_"
    with store_with(key, hit, miss) as store:
        for timeline in (False, True):
            from shopfunnel.funnel.engine import LocalEngine

            engine = LocalEngine(store, timeline=timeline)
            filtered = funnel(engine, [Step("view_item", where={key: hit}), "purchase"])
            assert filtered.steps["persons"].tolist() == [2, 2]
            if key == "":  # by="" means no breakdown, and is refused as such
                continue
            broken = funnel(engine, ["view_item", "purchase"], by=key)
            rows = broken.breakdown[broken.breakdown["step"] == 1].set_index(key)["persons"]
            assert rows.get(hit) == 2 and rows.get(miss) == 1 and rows.get("(none)") == 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=keys, value=values)
def test_the_diagnosis_runs_whatever_the_keys(key, value) -> None:
    with store_with(key, value, value + "_") as store:
        result = diagnose(store)
        assert isinstance(result.findings, pd.DataFrame)


@pytest.mark.parametrize("key", NASTY)
def test_the_report_and_every_server_page_survive_a_hostile_key(key, tmp_path) -> None:
    from server.kit import ADMIN, LiveServer
    from shopfunnel.report import build_report

    with store_with(key, 'v"1', "v'2") as store:
        html = build_report(store)
        assert "<html" in html.lower()
    events = [{"event_id": f"e{i}", "ts": 1709287200 + i * 60, "event": ev, "anonymous_id": f"a{i % 3}",
               "properties": {key: f"v{i % 2}", "note": "x"}}
              for i, ev in enumerate(["view_item", "add_to_cart", "purchase"] * 4)]
    with LiveServer(tmp_path / "shop.duckdb") as live:
        live.send("/v1/batch", {"batch": events})
        live.flush()
        from urllib.parse import quote

        for path in ["/v1/funnel?steps=view_item,purchase&by=channel",
                     "/v1/funnel?steps=" + quote(f'view_item["{key.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"=v1],purchase'),
                     "/v1/diagnosis", "/v1/stages", "/v1/events", "/v1/persons", "/v1/retention"]:
            r = live.client.get(path, headers=ADMIN)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
