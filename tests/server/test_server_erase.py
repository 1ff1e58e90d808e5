"""DELETE /v1/persons/{id} while the server runs: the person's events (also those still in
the spool), links and derived files go, the file is rewritten, and the server goes on."""

from __future__ import annotations

import os
from pathlib import Path

from server.kit import ADMIN, WRITE_KEY, LiveServer, basic

SECRET_EMAIL = "quinn.erase@example.net"


def batch(person: str, n: int, start: int = 0) -> dict:
    return {
        "batch": [
            {
                "event_id": f"{person}-{i}",
                "ts": f"2024-03-01T12:{i:02d}:00Z",
                "event": "purchase" if i == n - 1 else "page_view",
                "anonymous_id": f"anon-{person}",
                "user_id": f"cust-{person}" if i == n - 1 else None,
                "properties": {"email": SECRET_EMAIL} if person == "quinn" and i == n - 1 else None,
            }
            for i in range(start, start + n)
        ]
    }


def files_containing(folder: Path, needle: str) -> list[str]:
    """Files under ``folder`` whose bytes hold ``needle``. The server writes files beside the
    store while it runs (a timeline built in a temporary folder, then renamed): one that
    vanishes during the walk held nothing that stays."""
    found = []
    for root, _, names in os.walk(folder):  # a folder gone during the walk is skipped
        for name in names:
            path = Path(root) / name
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if needle.encode() in data.lower():
                found.append(str(path))
    return found


def test_deleting_a_person_through_the_api_leaves_no_trace_and_the_server_goes_on(tmp_path) -> None:
    db = tmp_path / "shop.duckdb"
    with LiveServer(db) as live:
        assert live.send("/v1/batch", batch("quinn", 3)).status_code == 200
        assert live.send("/v1/batch", batch("ruth", 2)).status_code == 200
        live.flush()
        assert files_containing(tmp_path, SECRET_EMAIL)  # the search can find it
        assert live.client.delete("/v1/persons/cust-quinn").status_code == 401  # admin only
        assert (
            live.client.delete("/v1/persons/cust-quinn", headers=basic(WRITE_KEY)).status_code
            == 401
        )
        answer = live.client.delete("/v1/persons/cust-quinn", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["persons"] == 1 and body["rows"]["events"] == 3
        assert "cust-quinn" not in answer.text
        assert live.sql("SELECT DISTINCT person_id FROM events") == [("cust-ruth",)]
        # the server still collects and answers on the rewritten file
        assert live.send("/v1/batch", batch("sam", 2)).status_code == 200
        assert sorted(live.sql("SELECT DISTINCT person_id FROM events")) == [
            ("cust-ruth",),
            ("cust-sam",),
        ]
        assert live.client.get("/v1/persons", headers=ADMIN).status_code == 200
        for needle in ("cust-quinn", "anon-quinn", SECRET_EMAIL):
            assert files_containing(tmp_path, needle) == [], needle
    for needle in ("cust-quinn", "anon-quinn", SECRET_EMAIL):
        assert files_containing(tmp_path, needle) == [], needle
