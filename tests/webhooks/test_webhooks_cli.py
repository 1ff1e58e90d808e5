"""`shopfunnel webhooks`: add, list, status, deliver (for cron), retry and remove."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from shopfunnel.cli import app
from shopfunnel.store.store import Store
from shopfunnel.webhooks import enqueue_audience_changes
from webhooks.receiver import Receiver


def test_the_cli_adds_an_endpoint_delivers_due_entries_and_shows_the_status(tmp_path) -> None:
    db = str(tmp_path / "shop.duckdb")
    runner = CliRunner()
    with Receiver("unused-until-known") as receiver:
        added = runner.invoke(app, ["webhooks", "add", receiver.url, "--db", db])
        assert added.exit_code == 0, added.output
        secret = added.stdout.strip().splitlines()[-1]
        assert secret.startswith("whsec_")
        receiver.secret = secret
        listed = runner.invoke(app, ["webhooks", "list", "--db", db, "--format", "csv"])
        assert receiver.url in listed.output and secret not in listed.output
        with Store(db) as store:
            enqueue_audience_changes(
                store,
                "vip",
                pd.DataFrame(
                    {
                        "audience": ["vip", "vip"],
                        "person_id": ["a", "b"],
                        "change": ["enter", "enter"],
                        "at": [pd.Timestamp("2024-05-01T08:00:00Z")] * 2,
                        "entry_id": ["1", "2"],
                    }
                ),
            )
        delivered = runner.invoke(app, ["webhooks", "deliver", "--db", db])
        assert delivered.exit_code == 0, delivered.output
        assert "2 delivered" in delivered.output
    assert sorted(receiver.applied) == ["audience:vip:1:enter", "audience:vip:2:enter"]
    status = runner.invoke(app, ["webhooks", "status", "--db", db, "--format", "json"])
    assert '"delivered":2' in status.output.replace(" ", "")
    endpoint = pd.read_csv(pd.io.common.StringIO(listed.output))["endpoint_id"][0]
    removed = runner.invoke(app, ["webhooks", "remove", endpoint, "--db", db])
    assert removed.exit_code == 0 and "removed" in removed.output
    again = runner.invoke(app, ["webhooks", "remove", endpoint, "--db", db])
    assert again.exit_code == 1 and "webhooks list" in again.output


def test_a_failed_attempt_is_left_for_a_later_run(tmp_path) -> None:
    db = str(tmp_path / "shop.duckdb")
    runner = CliRunner()
    with Receiver("whsec_a_secret_of_the_receiver", fail_first=1) as receiver:
        env = {"HOOK_SECRET": "whsec_a_secret_of_the_receiver"}
        added = runner.invoke(
            app,
            ["webhooks", "add", receiver.url, "--db", db, "--secret-env", "HOOK_SECRET"],
            env=env,
        )
        assert added.exit_code == 0 and "whsec_a_secret" not in added.output
        with Store(db) as store:
            enqueue_audience_changes(
                store,
                "vip",
                pd.DataFrame(
                    {
                        "audience": ["vip"],
                        "person_id": ["a"],
                        "change": ["enter"],
                        "at": [pd.Timestamp("2024-05-01T08:00:00Z")],
                        "entry_id": ["1"],
                    }
                ),
            )
        first = runner.invoke(app, ["webhooks", "deliver", "--db", db])
        assert "1 to retry later" in first.output
        assert receiver.applied == {}
