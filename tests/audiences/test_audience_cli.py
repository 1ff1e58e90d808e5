"""The `audience` and `flow` commands: saved audiences end to end, exports with contacts only
when asked, flow runs that mark sends (and dry runs that do not), the model file found
beside the store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import log
from typer.testing import CliRunner

from shopfunnel.cli import app
from shopfunnel.store.store import Store

runner = CliRunner()
HOUR = 60


def run(*args: str, code: int = 0) -> str:
    """What the command printed: stdout when it succeeds, everything when it fails."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


def frame(text: str) -> pd.DataFrame:
    return pd.DataFrame(json.loads(text))


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "shop.duckdb"
    contact = json.dumps({"email": "Ann@Example.com", "phone": "+1 650 555 0123"})
    with Store(path) as store:
        store.load(
            log(
                ("ann", 0, "page_view", {"properties": contact}),
                (
                    "ann",
                    1,
                    "add_to_cart",
                    {
                        "items": [
                            {
                                "item_id": "shoe",
                                "item_name": "Shoe",
                                "item_category": "shoes",
                                "price": 50.0,
                                "quantity": 1,
                            }
                        ]
                    },
                ),
                ("bob", 0, "view_item"),
                ("cat", 0, "purchase", {"order_id": "o1", "value": 20.0}),
                ("clock", 6 * HOUR, "page_view"),
            )
        )
    return str(path)


def test_list_shows_the_built_ins(db: str) -> None:
    listed = json.loads(run("audience", "list", "--db", db, "--format", "json"))
    names = [a["name"] for a in listed]
    assert names[:3] == ["abandoned-carts", "abandoned-checkouts", "browse-abandoners"]
    assert {"stalled-decision", "lapsed-customers", "vip", "one-time-buyers"} <= set(names)


def test_create_show_refresh_history_and_delete(db: str) -> None:
    run(
        "audience",
        "create",
        "carts-no-buyers",
        "--all",
        "abandoned-carts",
        "--but-not",
        "one-time-buyers",
        "--db",
        db,
    )
    run(
        "audience",
        "create",
        "viewers",
        "--rule",
        '{kind = "events", event = "view_item"}',
        "--db",
        db,
    )
    shown = frame(run("audience", "show", "carts-no-buyers", "--db", db, "--format", "json"))
    assert list(shown["person_id"]) == ["ann"] and "email" not in shown.columns
    changes = run(
        "audience", "refresh", "carts-no-buyers", "viewers", "--db", db, "--format", "csv"
    )
    assert changes.splitlines()[0] == "audience,person_id,change,at,entry_id"
    assert sorted(line.split(",")[1] for line in changes.splitlines()[1:]) == ["ann", "bob"]
    history = json.loads(run("audience", "history", "viewers", "--db", db, "--format", "json"))
    assert [h["person_id"] for h in history] == ["bob"]
    run("audience", "delete", "viewers", "--db", db)
    assert "no audience 'viewers'" in run("audience", "show", "viewers", "--db", db, code=1)


def test_create_says_what_is_wrong(db: str) -> None:
    out = run("audience", "create", "x", "--rule", "{kind = 'events'", "--db", db, code=1)
    assert "neither JSON nor a TOML inline table" in out
    out = run("audience", "create", "x", "--all", "vip", "--any", "vip", "--db", db, code=1)
    assert "exactly one of --rule, --all or --any" in out


def test_exports_carry_contacts_only_when_asked_and_hashed_for_platforms(db: str, tmp_path) -> None:
    plain = run("audience", "show", "abandoned-carts", "--db", db, "--format", "csv")
    assert "ann@example.com" not in plain.lower()
    asked = run("audience", "show", "abandoned-carts", "--db", db, "--contacts", "--format", "csv")
    assert "Ann@Example.com" in asked
    meta = tmp_path / "meta.csv"
    run(
        "audience",
        "show",
        "abandoned-carts",
        "--db",
        db,
        "--export",
        "meta",
        "--format",
        "csv",
        "--out",
        str(meta),
    )
    text = meta.read_text()
    assert text.splitlines()[0] == "EMAIL,PHONE,EXTERN_ID" and "example.com" not in text.lower()


def test_the_old_abandoned_carts_command_still_works(db: str) -> None:
    carts = frame(run("audience", "abandoned-carts", "--db", db, "--format", "json"))
    assert list(carts["person_id"]) == ["ann"] and carts["cart_value"][0] == 50.0


def test_flow_run_marks_sends_and_a_dry_run_does_not(db: str, tmp_path) -> None:
    dry = json.loads(
        run("flow", "run", "cart-abandonment", "--db", db, "--dry-run", "--format", "json")
    )
    assert dry["counts"]["due"] == 1 and dry["due"][0]["cart_items"] == "Shoe"
    assert json.loads(run("flow", "sent", "--db", db, "--format", "json")) == []
    out = tmp_path / "due.csv"
    run(
        "flow",
        "run",
        "cart-abandonment",
        "--db",
        db,
        "--contacts",
        "--format",
        "csv",
        "--out",
        str(out),
    )
    due = pd.read_csv(out)
    assert list(due["person_id"]) == ["ann"] and due["email"][0] == "Ann@Example.com"
    again = json.loads(run("flow", "run", "cart-abandonment", "--db", db, "--format", "json"))
    assert again["counts"]["due"] == 0 and again["counts"]["already_sent"] == 1
    listed = json.loads(run("flow", "list", "--db", db, "--format", "json"))
    assert {f["name"]: f["sent"] for f in listed}["cart-abandonment"] == 1


def test_flow_at_a_given_time(db: str) -> None:
    early = json.loads(
        run(
            "flow",
            "run",
            "cart-abandonment",
            "--db",
            db,
            "--dry-run",
            "--now",
            "2024-03-01T15:00",
            "--format",
            "json",
        )
    )
    assert early["counts"]["due"] == 0  # the cart (12:01) is under 4 hours old at 15:00


def test_flow_without_a_command_shows_help(db: str) -> None:
    assert "shopfunnel flow list" in runner.invoke(app, ["flow"]).output


def test_the_model_file_beside_the_store_is_read(db: str, monkeypatch, tmp_path) -> None:
    (Path(db).parent / "shopfunnel.toml").write_text(
        '[audiences.viewers]\nkind = "events"\nevent = "view_item"\n\n'
        '[flows.cart-abandonment]\ndelay = "10h"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    shown = frame(run("audience", "show", "viewers", "--db", db, "--format", "json"))
    assert list(shown["person_id"]) == ["bob"]
    dry = json.loads(
        run("flow", "run", "cart-abandonment", "--db", db, "--dry-run", "--format", "json")
    )
    assert dry["counts"]["due"] == 0  # 10 hours now


def test_audience_refresh_on_spark_is_refused_with_what_to_do(tmp_path) -> None:
    # a saved audience's history lives in the store's tables: a lake cannot keep it
    from typer.testing import CliRunner

    from shopfunnel.cli import app

    result = CliRunner().invoke(
        app,
        ["audience", "refresh", "--engine", "spark", "--events", str(tmp_path / "e.parquet")],
    )
    assert result.exit_code != 0
    assert "shopfunnel ingest" in result.output and "--db" in result.output
