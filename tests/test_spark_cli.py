"""Every analysis command takes ``--engine``, ``--events`` and ``--table`` (issue #18).

Fast and without Spark: ``--events`` without ``--engine spark`` is refused by
:func:`shopfunnel.cli.engine.open_source` with what to do, so a command that reaches that
message has the options and passes them on; a command that lost them (as ``flow --from
--to`` did when ``flow`` became a group of sub-commands) fails with typer's "No such option".
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

STEPS = "view_item,purchase"
COMMANDS = [
    ["funnel", "--steps", STEPS],
    ["stages"],
    ["persons"],
    ["flow", "--from", "2024-02-01", "--to", "2024-03-01"],
    ["retention"],
    ["rfm"],
    ["clv"],
    ["diagnose"],
    ["report"],
    ["audience", "show", "vip"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:3]))
def test_every_analysis_command_passes_events_on_to_the_engine(command, tmp_path) -> None:
    from shopfunnel.cli import app

    db = str(tmp_path / "absent.duckdb")
    events = str(tmp_path / "events.parquet")
    result = CliRunner().invoke(app, [*command, "--db", db, "--events", events])
    assert "No such option" not in result.output, result.output
    assert result.exit_code != 0
    assert "--engine spark" in result.output, result.output
