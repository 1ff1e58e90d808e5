"""`shopfunnel demo` ends with one flow run: the cart abandoners due a reminder now, as a dry run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopfunnel.audiences.flows import due_now, sends
from shopfunnel.cli import app
from shopfunnel.model import Model
from shopfunnel.store.store import Store


@pytest.mark.slow
def test_the_demo_shows_one_flow_run_and_marks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    stale = tmp_path / "d.duckdb.timeline" / "left-by-an-old-store"
    stale.parent.mkdir()
    stale.write_text("old")
    result = CliRunner().invoke(
        app, ["demo", "--db", "d.duckdb", "--events", "20000", "--report", "r.html", "--fresh"]
    )
    assert result.exit_code == 0, result.output
    assert not stale.exists()  # --fresh takes the old store's timeline with it
    assert "6. a flow: who to remind of their cart now" in result.output
    with Store(tmp_path / "d.duckdb", read_only=True) as store:
        run = due_now(store, "cart-abandonment", model=Model())
        assert sends(store).empty  # a dry run
    assert len(run.due) >= 3
    assert "cart-abandonment at " in result.output
    assert f"{len(run.due)} due" in result.output and "dry run, nothing marked" in result.output
    shown = result.output.split("6. a flow")[1]
    assert all(person in shown for person in run.due["person_id"].head(5))
