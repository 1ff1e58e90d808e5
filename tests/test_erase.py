"""Erasing a person leaves no trace: every table (all columns as text) and every file under
the store's folder are searched for their ids, e-mail and phone, before and after."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfunnel.audiences.flows import run_flow
from shopfunnel.audiences.membership import publish, refresh_audience
from shopfunnel.cli import app
from shopfunnel.errors import ConfigError
from shopfunnel.funnel import funnel
from shopfunnel.model import model_from_dict
from shopfunnel.store import timeline
from shopfunnel.store.erase import compact_store, erase_person, find_persons
from shopfunnel.store.store import Store
from shopfunnel.webhooks import add_endpoint

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
ZED = {
    "anon": "anon-zed-7f3",
    "user": "cust-zed-42",
    "email": "zed.secret@example.com",
    "phone": "+44 20 7946 0958",
}
NEEDLES = [ZED["anon"], ZED["user"], ZED["email"], ZED["phone"]]


def ev(i: int, anon: str, event: str, minutes: int, **extra) -> dict:
    return {
        "event_id": f"e{i}",
        "ts": T0 + timedelta(minutes=minutes),
        "event": event,
        "anonymous_id": anon,
        **extra,
    }


def build(db: Path) -> None:
    """Zed browses, logs in, buys (e-mail and phone in the order) and buys again as a guest
    (an order webhook: the e-mail is the user id); Amy and Bob are the others."""
    zed_props = json.dumps({"email": "Zed.Secret@Example.com", "phone": ZED["phone"]})
    rows = [
        ev(1, ZED["anon"], "page_view", 0, utm_source="newsletter"),
        ev(2, ZED["anon"], "add_to_cart", 5),
        ev(3, ZED["anon"], "identify", 6, user_id=ZED["user"]),
        ev(
            4,
            ZED["anon"],
            "purchase",
            8,
            user_id=ZED["user"],
            order_id="o-1",
            value=20.0,
            currency="EUR",
            properties=zed_props,
        ),
        ev(
            5,
            ZED["email"],
            "purchase",
            900,
            user_id=ZED["email"],
            order_id="o-2",
            value=5.0,
            currency="EUR",
            properties=json.dumps({"email": ZED["email"]}),
        ),
        ev(6, "anon-amy", "page_view", 1),
        ev(7, "anon-amy", "add_to_cart", 3),
        ev(
            8,
            "anon-amy",
            "purchase",
            4,
            user_id="cust-amy",
            order_id="o-3",
            value=9.0,
            currency="EUR",
            properties=json.dumps({"email": "amy@example.org"}),
        ),
        ev(9, "anon-bob", "page_view", 2),
    ]
    with Store(db) as store:
        store.load(pd.DataFrame(rows))
        # what audiences and flows keep: a membership history, a flow's sends, and both in
        # the webhook outbox (the flow's messages with the contacts in them)
        add_endpoint(store, "https://hooks.example.com/h")
        model = model_from_dict({"flows": {"post-purchase": {"contacts": True}}})
        refresh_audience(store, "one-time-buyers", model=model)
        assert publish(store, "one-time-buyers") == 3
        run = run_flow(store, "post-purchase", now=T0 + timedelta(days=8), model=model)
        assert len(run.due) == 3
        funnel(store, ["page_view", "add_to_cart", "purchase"])  # builds the timeline beside it
        assert timeline.is_current(store)
    # what a server left in its spool: records already loaded into the store
    spool = Path(str(db) + ".spool")
    spool.mkdir()
    line = (
        json.dumps(
            {
                "event_id": "e4",
                "anonymous_id": ZED["anon"],
                "user_id": ZED["user"],
                "properties": zed_props,
            }
        )
        + "\n"
    )
    (spool / "00000000.jsonl").write_text(line)
    (spool / "checkpoint").write_text(json.dumps({"segment": 0, "offset": len(line)}))


def traces_in_tables(db: Path) -> dict[str, list[str]]:
    """Every relation (tables and views), each row cast to text, searched case-insensitively."""
    found: dict[str, list[str]] = {}
    with Store(db, read_only=True) as store:
        names = [
            r[0]
            for r in store.db.rows(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            )
        ]
        for name in names:
            for needle in NEEDLES:
                n = store.db.scalar(
                    f'SELECT count(*) FROM "{name}" AS r '
                    "WHERE contains(lower(CAST(r AS VARCHAR)), ?)",
                    [needle.lower()],
                )
                if n:
                    found.setdefault(name, []).append(needle)
    return found


def traces_in_files(folder: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            hits = [n for n in NEEDLES if n.lower().encode() in data]
            if hits:
                found[str(path.relative_to(folder))] = hits
    return found


def test_erasing_by_email_leaves_no_trace_in_any_table_or_file(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    build(db)
    before_tables, before_files = traces_in_tables(db), traces_in_files(tmp_path)
    # the search can fail: every needle is found before the erase, in tables and in files
    assert {
        "events",
        "identities",
        "audience_members",
        "flow_sends",
        "webhook_outbox",
        "webhook_deliveries",
        "persons",
    } <= set(before_tables)
    assert set(sum(before_tables.values(), [])) == set(NEEDLES)
    for table in ("audience_members", "flow_sends", "webhook_outbox", "webhook_deliveries"):
        assert {ZED["user"], ZED["email"]} <= set(before_tables[table]), table
    assert "shop.duckdb" in before_files and any(
        f.startswith("shop.duckdb.spool") for f in before_files
    )
    assert any(
        f.startswith("shop.duckdb.timeline")
        for f in (str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    )

    result = CliRunner().invoke(
        app, ["erase", "--email", " Zed.Secret@EXAMPLE.com ", "--db", str(db), "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert "erased 2 person(s)" in result.output

    assert traces_in_tables(db) == {}
    assert traces_in_files(tmp_path) == {}
    assert not Path(str(db) + ".timeline").exists()
    with Store(db) as store:
        # the others are untouched
        assert store.db.rows("SELECT person_id, count(*) FROM events GROUP BY 1 ORDER BY 1") == [
            ("anon-bob", 1),
            ("cust-amy", 3),
        ]
        assert store.db.rows("SELECT person_id FROM audience_members") == [("cust-amy",)]
        assert store.db.rows("SELECT person_id FROM flow_sends") == [("cust-amy",)]
        assert store.db.rows("SELECT topic, person_id FROM webhook_outbox ORDER BY 1") == [
            ("audience.entered", "cust-amy"),
            ("flow.due", "cust-amy"),
        ]
        assert store.db.rows("SELECT DISTINCT person_id FROM webhook_deliveries") == [("cust-amy",)]
        # the audit line: a keyed hash of the request, no personal data
        store_id = store.db.scalar("SELECT value FROM meta WHERE key = 'store_id'")
        audit = store.db.rows("SELECT subject_sha256, persons, rows_removed FROM erasures")
        expected = hmac.new(store_id.encode(), ZED["email"].encode(), hashlib.sha256).hexdigest()
        assert audit[0][:2] == (expected, 2)
        assert json.loads(audit[0][2])["events"] == 5
        # queries still work: the funnel rebuilds the timeline without Zed
        result = funnel(store, ["page_view", "add_to_cart", "purchase"])
        assert result.to_dict()["steps"][0]["persons"] == 2


def test_erasing_by_person_id_removes_only_that_person(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    build(db)
    with Store(db) as store:
        erased = erase_person(store, person_id="cust-amy", requested_by="test")
        assert erased.persons == 1 and erased.rows["events"] == 3
        assert erased.rows["identities"] == 1
        assert store.db.scalar("SELECT count(*) FROM events WHERE person_id = 'cust-amy'") == 0
        assert (
            store.db.scalar("SELECT count(*) FROM events WHERE person_id = ?", [ZED["user"]]) == 4
        )
    compact_store(db)
    with Store(db, read_only=True) as store:
        assert store.db.scalar("SELECT count(*) FROM events") == 6


def test_an_unknown_person_erases_nothing_but_is_recorded(store: Store) -> None:
    store.load(pd.DataFrame([ev(1, "a", "page_view", 0)]))
    erased = erase_person(store, email="nobody@example.com")
    assert (erased.persons, erased.rows) == (0, {})
    assert store.db.scalar("SELECT count(*) FROM erasures") == 1
    assert store.db.scalar("SELECT count(*) FROM events") == 1


def test_erase_needs_exactly_one_of_id_and_email(store: Store) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        find_persons(store)
    with pytest.raises(ConfigError, match="not an e-mail"):
        find_persons(store, email="zed")


def test_the_cli_refuses_while_the_spool_holds_events_not_yet_loaded(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    build(db)
    (Path(str(db) + ".spool") / "checkpoint").write_text(json.dumps({"segment": 0, "offset": 0}))
    result = CliRunner().invoke(app, ["erase", "--person", ZED["user"], "--db", str(db), "--yes"])
    assert result.exit_code == 1 and "not yet in the store" in result.output
    assert traces_in_tables(db)  # nothing was erased
