"""The browser fixture itself: a page that misbehaves is caught on every count."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_open_page_records_dialogs_console_errors_page_errors_and_blocks_the_network(
    open_page, tmp_path
) -> None:
    path = tmp_path / "bad.html"
    path.write_text(
        "<!DOCTYPE html><title>bad</title><img src='https://example.com/x.png'>"
        "<script>alert('hi'); console.error('broken'); undefinedFunction();</script>",
        encoding="utf-8",
    )
    probe = open_page(path)
    assert probe.dialogs == ["alert: hi"]
    assert "broken" in probe.console_errors
    assert any("undefinedFunction" in e for e in probe.page_errors)
    assert probe.blocked_requests == ["https://example.com/x.png"]
    assert len(probe.problems) >= 4


def test_open_page_lets_allowed_origins_through(open_page, tmp_path) -> None:
    path = tmp_path / "ok.html"
    path.write_text("<!DOCTYPE html><title>ok</title><p>fine</p>", encoding="utf-8")
    probe = open_page(path, allow=("http://127.0.0.1",))
    assert probe.page.title() == "ok" and probe.problems == []
