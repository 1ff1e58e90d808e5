"""The server's defences: revocable keys, rate limits counted in events, admin log-in
back-off that cannot lock the owner out, capped gzip, formula-safe CSV, and an OpenAPI
document that lists every answer a client can get.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.kit import ADMIN, ADMIN_PASSWORD, WRITE_KEY, LiveServer, basic
from shopfunnel.server.limits import FailureBackoff, LoginGuard, RateLimiter

T = "2024-03-01T10:00:00Z"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def ev(event_id: str, event: str = "page_view", who: str = "anon-1", **extra):
    return {"event_id": event_id, "ts": T, "event": event, "anonymous_id": who, **extra}


def from_ip(ip: str) -> dict[str, str]:
    """The client address as a TLS proxy in front of the server reports it."""
    return {"X-Forwarded-For": ip}


# -- revoking a write key while the server runs --------------------------------------------------
def _new_key(live: LiveServer, name: str = "site") -> tuple[str, str]:
    created = live.client.post("/v1/keys", params={"name": name}, headers=ADMIN)
    assert created.status_code == 201, created.text
    key = created.json()["write_key"]
    prefix = next(
        r["prefix"]
        for r in live.client.get("/v1/keys", headers=ADMIN).json()["rows"]
        if r["name"] == name
    )
    return key, prefix


def test_a_key_revoked_through_the_api_is_refused_from_the_next_request_on(live):
    key, prefix = _new_key(live)
    other, _ = _new_key(live, "other")
    assert live.send("/v1/batch", {"batch": [ev("a")]}, key=key).status_code == 200
    r = live.client.delete(f"/v1/keys/{prefix}", headers=ADMIN)
    assert r.status_code == 200 and r.json() == {"revoked": 1, "prefix": prefix}
    refused = live.send("/v1/batch", {"batch": [ev("b")]}, key=key)
    assert refused.status_code == 401
    assert (
        live.client.post("/v1/batch", json={"batch": [ev("c")], "writeKey": key}).status_code == 401
    )
    assert live.send("/v1/batch", {"batch": [ev("d")]}, key=other).status_code == 200
    listed = {
        r["prefix"]: r["revoked"] for r in live.client.get("/v1/keys", headers=ADMIN).json()["rows"]
    }
    assert listed[prefix] is True
    assert live.sql("SELECT event_id FROM events ORDER BY 1") == [("a",), ("d",)]
    assert live.client.delete(f"/v1/keys/{prefix}", headers=ADMIN).status_code == 404
    assert live.client.delete(f"/v1/keys/{prefix}", headers=basic(other)).status_code == 401


def test_keys_revoke_on_the_command_line_reaches_the_running_server(live):
    key, prefix = _new_key(live)
    assert live.send("/v1/batch", {"batch": [ev("a")]}, key=key).status_code == 200
    # another process: the server holds the store file's lock
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-m", "shopfunnel", "keys", "revoke", prefix, "--db", str(live.db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "revoked 1 key" in done.stdout and "running server" in done.stdout
    assert live.send("/v1/batch", {"batch": [ev("b")]}, key=key).status_code == 401
    unknown = subprocess.run(
        [sys.executable, "-m", "shopfunnel", "keys", "revoke", "sfk_nope", "--db", str(live.db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 1 and "keys list" in unknown.stdout + unknown.stderr
    assert not [p for p in Path(str(live.db) + ".control").iterdir()]  # nothing left behind


def test_the_admin_revokes_a_key_on_the_keys_page(live):
    key, prefix = _new_key(live)
    live.client.post("/login", data={"password": ADMIN_PASSWORD})
    page = live.client.get("/keys")
    assert f'value="{prefix}"' in page.text
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    assert (
        live.client.post("/keys/revoke", data={"prefix": prefix, "csrf": "forged"}).status_code
        == 403
    )
    assert live.send("/v1/batch", {"batch": [ev("a")]}, key=key).status_code == 200
    assert (
        live.client.post("/keys/revoke", data={"prefix": prefix, "csrf": token}).status_code == 200
    )
    assert live.send("/v1/batch", {"batch": [ev("b")]}, key=key).status_code == 401


# -- rate limits count events ----------------------------------------------------------------------
def test_the_rate_limit_counts_events_not_requests():
    limiter = RateLimiter(rate=1.0, burst=10)
    now = [0.0]
    limiter.clock = lambda: now[0]
    assert limiter.take("k", 6) == 0
    assert limiter.take("k", 5) == pytest.approx(1.0)  # 4 left, 5 asked: one second to wait
    assert limiter.take("k", 4) == 0  # a refused request cost nothing
    now[0] = 3.0
    assert [limiter.take("k") for _ in range(4)] == [0, 0, 0, 1.0]


def test_a_batch_larger_than_the_burst_is_refused_as_too_large_not_retried_forever(tmp_path):
    with LiveServer(tmp_path / "s.duckdb", rate_events_per_second=5, rate_burst_events=10) as live:
        r = live.send("/v1/batch", {"batch": [ev(f"a{i}") for i in range(11)]})
        assert r.status_code == 413 and "at most 10 events" in r.json()["message"]
        assert "Retry-After" not in r.headers
        assert (
            live.send("/v1/batch", {"batch": [ev(f"b{i}") for i in range(10)]}).status_code == 200
        )
        assert (
            live.send("/v1/track", {"type": "track", "event": "x", "anonymousId": "a"}).status_code
            == 429
        )
        assert live.sql("SELECT count(*) FROM events") == [(10,)]


# -- admin log-in: failures only, per address and per account, with back-off -----------------------
def test_failures_back_off_exponentially_and_a_success_forgets_them():
    now = [0.0]
    backoff = FailureBackoff(
        free_failures=3, first_wait_seconds=1, max_wait_seconds=8, clock=lambda: now[0]
    )
    for _ in range(3):
        assert backoff.wait("ip") == 0
        backoff.failed("ip")
    assert backoff.wait("ip") == 0  # three free failures
    waits = []
    for _ in range(5):
        backoff.failed("ip")
        waits.append(backoff.wait("ip"))
        now[0] += waits[-1]
    assert waits == [1, 2, 4, 8, 8]
    assert backoff.wait("other") == 0
    backoff.succeeded("ip")
    assert backoff.wait("ip") == 0


def test_the_guard_exempts_a_trusted_device_from_the_address_and_account_back_off():
    now = [0.0]
    guard = LoginGuard(clock=lambda: now[0])
    for i in range(200):
        guard.failed(f"10.0.{i // 250}.{i % 250}", device=None)
    assert guard.wait("10.9.9.9", device=None) > 0  # the account is slowed for strangers
    assert guard.wait("10.9.9.9", device="owner-laptop") == 0


def test_an_attacker_guessing_cannot_lock_the_owner_out(tmp_path):
    db = tmp_path / "s.duckdb"
    with LiveServer(db) as live:  # the owner logs in once from this browser
        first = live.client.post(
            "/login", data={"password": ADMIN_PASSWORD}, follow_redirects=False
        )
        assert first.status_code == 303
        device = live.client.cookies.get("sf_device")
        assert device
    with LiveServer(db) as live:  # after a restart, a stranger guesses from the owner's address
        live.state.login_guard = LoginGuard(clock=lambda: 0.0)  # no wait elapses during the test
        for i in range(12):
            r = live.client.post("/login", data={"password": f"guess-{i}-xxxx"})
            assert r.status_code in (401, 429)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        live.client.cookies.clear()
        blocked = live.client.post(
            "/login", data={"password": ADMIN_PASSWORD}, follow_redirects=False
        )
        assert blocked.status_code == 429  # a stranger's browser on that address waits
        live.client.cookies.set("sf_device", device)
        owner = live.client.post(
            "/login", data={"password": ADMIN_PASSWORD}, follow_redirects=False
        )
        assert owner.status_code == 303  # the owner's browser does not
        live.client.cookies.clear()
        other = live.client.post(
            "/login",
            data={"password": ADMIN_PASSWORD},
            headers=from_ip("198.51.100.7"),
            follow_redirects=False,
        )
        assert other.status_code == 303  # nor does another address


def test_guessing_from_many_addresses_slows_the_account(live):
    live.state.login_guard = LoginGuard(clock=lambda: 0.0)
    for i in range(40):
        r = live.client.post(
            "/login", data={"password": f"guess-{i}-xxxx"}, headers=from_ip(f"203.0.113.{i}")
        )
    assert r.status_code == 429
    api = live.client.get(
        "/v1/info",
        headers={**ADMIN, **from_ip("203.0.113.200"), "Authorization": "Bearer nope-nope"},
    )
    assert api.status_code == 429 and int(api.headers["Retry-After"]) >= 1


def test_right_passwords_are_never_counted(live):
    for i in range(30):
        r = live.client.post("/login", data={"password": ADMIN_PASSWORD}, follow_redirects=False)
        assert r.status_code == 303, i
    assert live.client.get("/v1/info", headers=ADMIN).status_code == 200


# -- gzip bodies are capped while they are inflated ------------------------------------------------
def test_a_gzip_body_that_inflates_past_the_limit_is_refused(tmp_path):
    with LiveServer(tmp_path / "s.duckdb", max_body_bytes=20_000, max_event_bytes=20_000) as live:
        events = [ev(f"e{i}", properties={"pad": "x" * 900}) for i in range(60)]
        body = json.dumps({"batch": events}).encode()
        assert 40_000 < len(body) < 160_000  # between the limit and 8 times it
        r = live.client.post(
            "/v1/batch",
            content=gzip.compress(body),
            headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"},
        )
        assert r.status_code == 413
        fits = json.dumps({"batch": events[:15]}).encode()
        assert len(fits) < 20_000
        r = live.client.post(
            "/v1/batch",
            content=gzip.compress(fits),
            headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"},
        )
        assert r.status_code == 200 and r.json()["accepted"] == 15
        two_members = gzip.compress(fits[:100]) + gzip.compress(fits[100:])
        r = live.client.post(
            "/v1/batch",
            content=two_members,
            headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"},
        )
        assert r.status_code == 200
        broken = live.client.post(
            "/v1/batch",
            content=gzip.compress(fits)[:-20],
            headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"},
        )
        assert broken.status_code == 400


def test_the_inflating_reader_stops_at_the_cap_without_inflating_the_rest():
    from shopfunnel.server.collector import Inflater, TooLarge

    bomb = gzip.compress(b" " * 50_000_000)
    inflater = Inflater(limit=100_000)
    with pytest.raises(TooLarge):
        for i in range(0, len(bomb), 4096):
            inflater.feed(bomb[i : i + 4096])
    assert inflater.size <= 100_000 + 65_536


# -- CSV answers cannot run formulas ---------------------------------------------------------------
def test_csv_downloads_neutralise_formulas(live):
    attack = '=HYPERLINK("http://evil.example","click")'
    live.send(
        "/v1/batch", {"batch": [ev("a", who=attack), ev("b", who="@SUM(1)"), ev("c", who="plain")]}
    )
    live.flush()
    api = live.client.get("/v1/persons", params={"format": "csv"}, headers=ADMIN)
    ids = sorted(r["person_id"] for r in csv.DictReader(io.StringIO(api.text)))
    assert ids == sorted(["'" + attack, "'@SUM(1)", "plain"])
    live.client.post("/login", data={"password": ADMIN_PASSWORD})
    page = live.client.get("/persons.csv")
    assert sorted(r["person_id"] for r in csv.DictReader(io.StringIO(page.text))) == ids
    events = live.client.get("/v1/events", params={"format": "csv"}, headers=ADMIN).text
    assert "\n=" not in events and ",=" not in events and ",@" not in events


# -- the OpenAPI document lists every answer -------------------------------------------------------
def test_the_openapi_document_lists_error_answers_with_their_bodies_and_csv(live):
    doc = live.client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    expected = {
        "collector": {"400", "401", "403", "413", "422", "429", "503"},
        "webhook": {"400", "401", "413", "422"},
        "admin": {"401", "422", "429"},
    }
    seen = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path == "/v1/health":
                continue
            security = str(op.get("security"))
            kind = (
                "collector"
                if "writeKey" in security
                else "admin"
                if "admin" in security
                else "webhook"
                if path.startswith("/v1/webhooks/")
                else "?"
            )
            seen.add(kind)
            codes = op["responses"]
            assert expected[kind] <= set(codes), (method, path, expected[kind] - set(codes))
            for code, answer in codes.items():
                if code.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[1] in schemas, (method, path, code)
                if code in ("429", "503"):
                    assert "Retry-After" in answer["headers"], (method, path, code)
            if any(p["name"] == "format" for p in op.get("parameters", [])):
                assert "text/csv" in codes["200"]["content"], (method, path)
    assert seen == set(expected)
    assert "404" in doc["paths"]["/v1/keys/{prefix}"]["delete"]["responses"]
    # the documented bodies are the ones sent
    refused = live.send("/v1/batch", {"batch": [ev("a")]}, key="sfk_unknown")
    assert set(schemas["CollectorError"]["required"]) <= set(refused.json())
    assert list(live.client.get("/v1/info").json()) == ["detail"]
