"""Connection settings of the one database gateway."""

from __future__ import annotations

from shopfunnel.store.db import Database


def test_the_gateway_never_draws_duckdbs_progress_bar_on_stdout() -> None:
    # The bar is written to stdout for queries over 2 s and would corrupt JSON output.
    db = Database(":memory:")
    assert db.scalar("SELECT current_setting('enable_progress_bar')") is False
    db.close()


def test_the_gateway_works_in_utc() -> None:
    db = Database(":memory:")
    assert db.scalar("SELECT current_setting('TimeZone')") == "UTC"
    db.close()
