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
from shopfunnel.store.db import json_pointer
from shopfunnel.store.store import Store

NASTY = [
    'a"b',
    "",
    "x.y",
    "sp ace",
    "$",
    "[0]",
    "back\\slash",
    "ü",
    "-- c",
    "a/b",
    "t~x",
    "'; DROP TABLE events; --",
    "$.a",
    '{"k": 1}',
    "*",
    "%",
    "\t",
    "/* c */",
    "a=b",
    "a,b|c",
    "A",
    "name",
    "step",
    "persons",
    "period",
    "table",
    "0",
    "\u2028",
    "🛒",
]

keys = st.one_of(st.sampled_from(NASTY), st.text(min_size=0, max_size=8))
values = st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=8))


def store_with(key: str, hit: str, miss: str) -> Store:
    """p1 and p2 view with ``key`` = ``hit`` and buy; p3 views with ``miss`` and buys; p4
    views without the key."""

    def props(value: str) -> dict[str, str]:
        return {"properties": json.dumps({key: value, "other": "o"})}

    store = Store(":memory:")
    store.load(
        log(
            ("p1", 0, "view_item", props(hit)),
            ("p1", 1, "purchase"),
            ("p2", 0, "view_item", props(hit)),
            ("p2", 2, "purchase"),
            ("p3", 0, "view_item", props(miss)),
            ("p3", 3, "purchase"),
            ("p4", 0, "view_item"),
        )
    )
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
            broken = funnel(engine, ["view_item", "purchase"], by=key)  # by="" is the key ""
            rows = broken.breakdown[broken.breakdown["step"] == 1].set_index(broken.by_column)[
                "persons"
            ]
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
    events = [
        {
            "event_id": f"e{i}",
            "ts": 1709287200 + i * 60,
            "event": ev,
            "anonymous_id": f"a{i % 3}",
            "properties": {key: f"v{i % 2}", "note": "x"},
        }
        for i, ev in enumerate(["view_item", "add_to_cart", "purchase"] * 4)
    ]
    with LiveServer(tmp_path / "shop.duckdb") as live:
        live.send("/v1/batch", {"batch": events})
        live.flush()
        from urllib.parse import quote

        for path in [
            "/v1/funnel?steps=view_item,purchase&by=channel",
            "/v1/funnel?steps="
            + quote(
                f'view_item["{key.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"=v1],purchase'
            ),
            "/v1/diagnosis",
            "/v1/stages",
            "/v1/events",
            "/v1/persons",
            "/v1/retention",
        ]:
            r = live.client.get(path, headers=ADMIN)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])


# -- end to end: one file of events, every face --------------------------------------
def _events_with(key: str, hit: str, miss: str) -> list[dict]:
    """Four shoppers over four days: p4 views without the key and leaves a cart on the
    first; p1 and p2 view and buy with ``key`` = ``hit``, p3 with ``miss``."""
    out: list[dict] = []
    t = 1709287200  # 2024-03-01 10:00 UTC

    def add(person: str, minutes: int, event: str, props: dict | None = None, **extra) -> None:
        out.append(
            {
                "event_id": f"e{len(out)}",
                "ts": t + 60 * minutes + 86400 * (int(person[1]) % 4),
                "event": event,
                "anonymous_id": person,
                "session_id": f"s{person}",
                "device": "mobile",
                **({"properties": props} if props is not None else {}),
                **extra,
            }
        )

    for person, value in (("p1", hit), ("p2", hit), ("p3", miss)):
        add(person, 0, "page_view")
        add(person, 1, "view_item", {key: value, "other": "o"})
        add(person, 2, "add_to_cart", {key: value})
        add(person, 3, "begin_checkout")
        add(
            person,
            4,
            "purchase",
            {key: value, "email": f"{person}@example.com"},
            order_id=f"o-{person}",
            value=20.0,
            currency="EUR",
        )
    add("p4", 0, "page_view")
    add("p4", 1, "view_item", {"other": "o"})
    add("p4", 2, "add_to_cart", {"email": "p4@example.com"})
    return out


def _check_funnels(store: Store, key: str, hit: str, miss: str) -> None:
    from shopfunnel.funnel.engine import LocalEngine

    for timeline in (False, True):
        engine = LocalEngine(store, timeline=timeline)
        assert funnel(engine, [Step("view_item", where={key: hit}), "purchase"]).steps[
            "persons"
        ].tolist() == [2, 2]
        result = funnel(engine, ["view_item", "purchase"], by=key)
        rows = result.breakdown[result.breakdown["step"] == 2].set_index(result.by_column)
        assert rows["persons"].to_dict() == {hit: 2, miss: 1, "(none)": 0}
        # every step of an attempt carries the same value: p4's view has none
        assert funnel(engine, ["view_item", "add_to_cart", "purchase"], hold=key).steps[
            "persons"
        ].tolist() == [3, 3, 3]


@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(key=keys, hit=values, miss=values)
def test_any_key_and_value_flow_from_a_file_through_every_face(key, hit, miss, tmp_path_factory):
    """Ingest (JSON Lines, as a user's export) → funnel filter, breakdown and hold on the
    key, on both paths → diagnosis → report → abandoned carts → every server read."""
    from urllib.parse import urlencode

    from hypothesis import assume
    from typer.testing import CliRunner

    from server.kit import ADMIN, ADMIN_PASSWORD, LiveServer
    from shopfunnel.audiences import abandoned_carts
    from shopfunnel.cli import app
    from shopfunnel.funnel.syntax import format_step
    from shopfunnel.report import build_report
    from shopfunnel.store.schema import COLUMN_NAMES, ITEM_FIELDS

    # a canonical column or item field of that name is read before any property (docs)
    assume(key not in COLUMN_NAMES and key not in ITEM_FIELDS and hit != miss)
    folder = tmp_path_factory.mktemp("e2e")
    source = folder / "export.jsonl"
    source.write_text(
        "".join(json.dumps(e) + "\n" for e in _events_with(key, hit, miss)), encoding="utf-8"
    )
    db = folder / "shop.duckdb"
    loaded = CliRunner().invoke(app, ["ingest", str(source), "--db", str(db)])
    assert loaded.exit_code == 0, loaded.output
    with Store(str(db)) as store:
        stored = store.db.rows(
            "SELECT DISTINCT json_extract_string(properties, ?) FROM events "
            "WHERE event = 'view_item'",
            [json_pointer(key)],
        )
        assert {r[0] for r in stored} == {hit, miss, None}
        _check_funnels(store, key, hit, miss)
        assert isinstance(diagnose(store).findings, pd.DataFrame)
        assert "<html" in build_report(store).lower()
        assert abandoned_carts(store)["person_id"].tolist() == ["p4"]

    filtered = format_step(Step("view_item", where={key: hit})) + ",purchase"
    with LiveServer(db) as live:
        r = live.client.get("/v1/funnel?" + urlencode({"steps": filtered}), headers=ADMIN)
        assert r.status_code == 200, r.text[:300]
        assert [s["persons"] for s in r.json()["steps"]] == [2, 2]
        r = live.client.get(
            "/v1/funnel?" + urlencode({"steps": "view_item,add_to_cart,purchase", "hold": key}),
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text[:300]
        # an empty query parameter is no parameter: ?hold= holds nothing, as a blank form
        assert [s["persons"] for s in r.json()["steps"]] == ([4, 4, 3] if key == "" else [3, 3, 3])
        for path in [
            "/v1/info",
            "/v1/events",
            "/v1/events?format=csv",
            "/v1/persons",
            "/v1/stages",
            "/v1/stages/persons",
            "/v1/retention",
            "/v1/rfm",
            "/v1/rfm/groups",
            "/v1/diagnosis",
            "/v1/stages/flow?start=2024-03-01&end=2024-03-08",
        ]:
            r = live.client.get(path, headers=ADMIN)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
        login = live.client.post(
            "/login", data={"password": ADMIN_PASSWORD}, follow_redirects=False
        )
        assert login.status_code == 303
        for path in [
            "/",
            "/events",
            "/persons",
            "/persons.csv",
            "/stages",
            "/retention",
            "/diagnosis",
            "/funnel?" + urlencode({"steps": filtered}),
        ]:
            r = live.client.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
