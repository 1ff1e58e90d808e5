"""``shopfunnel person``: the journey in Rich tables or JSON, found by id or e-mail; contacts
only with --contacts."""

from __future__ import annotations

import json

import pytest
from tests.conftest import log
from tests.journey.stores import shopper_store
from typer.testing import CliRunner

from shopfunnel.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("person") / "shop.duckdb")
    shopper_store(path).close()
    return path


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == code, result.output
    return result.output


def test_the_table_shows_identities_stage_changes_sessions_orders_and_events(db) -> None:
    out = run("person", "u-ann", "--db", db)
    assert "u-ann · stage Retention · 7 events in 3 sessions" in out
    for title in ("Identities", "Stage changes", "Sessions", "Orders", "Events, in order"):
        assert title in out
    assert "stitched" in out and "a-laptop" in out and "Mug ×2" in out and "order #2" in out
    assert "Saved audiences: none" in out


def test_contacts_are_left_out_unless_asked(db) -> None:
    assert "Ann@Example.com" not in run("person", "u-ann", "--db", db)
    assert "Ann@Example.com" not in run("person", "u-ann", "--db", db, "--format", "json")
    assert "Ann@Example.com" in run("person", "u-ann", "--db", db, "--contacts")


def test_search_by_email_gives_the_journey_as_json(db) -> None:
    data = json.loads(run("person", "--email", "ann@example.com", "--db", db, "--format", "json"))
    assert data["person_id"] == "u-ann"
    assert [o["order_id"] for o in data["orders"]] == ["o-1", "o-2"]
    assert [c["to_stage"] for c in data["stage_changes"]][-1] == "Retention"


def test_a_cookie_id_from_a_ticket_finds_the_customer(db) -> None:
    data = json.loads(run("person", "a-phone", "--db", db, "--format", "json", "--events", "3"))
    assert data["person_id"] == "u-ann" and len(data["events"]) == 3
    assert data["notes"][0] == "showing the latest 3 of 7 events"


def test_an_unknown_person_and_a_wrong_call_are_refused_with_what_to_do(db) -> None:
    assert "no person with that id" in run("person", "zed", "--db", db, code=1)
    assert "no person with that e-mail" in run(
        "person", "--email", "z@example.com", "--db", db, code=1
    )
    assert "one of them" in run("person", "u-ann", "--email", "a@b.c", "--db", db, code=1)
    assert "one of them" in run("person", "--db", db, code=1)
    assert "several tables" in run("person", "u-ann", "--db", db, "--format", "csv", code=1)


def test_an_email_shared_by_two_persons_lists_both_to_choose_from(tmp_path) -> None:
    from shopfunnel.store.store import Store

    path = str(tmp_path / "two.duckdb")
    with Store(path) as store:
        store.load(
            log(
                ("p1", 0, "page_view", {"properties": json.dumps({"email": "x@example.com"})}),
                ("p2", 1, "page_view", {"properties": json.dumps({"email": "X@example.com"})}),
            )
        )
    out = run("person", "--email", "x@example.com", "--db", path, code=2)
    assert "2 persons match" in out and "p1" in out and "p2" in out
    data = json.loads(run("person", "--email", "x@example.com", "--db", path, "--format", "json"))
    assert data == {
        "matches": [
            {"person_id": "p1", "matched_by": "e-mail"},
            {"person_id": "p2", "matched_by": "e-mail"},
        ]
    }
