"""The collector answers each request as specified and stores exactly what it acknowledged."""

from __future__ import annotations

import gzip
import json
import logging
import time
from pathlib import Path

import httpx
import pytest

from server.kit import ADMIN, ADMIN_PASSWORD, WRITE_KEY, LiveServer, basic
from shopfunnel.server import auth

T = "2024-03-01T10:00:00Z"


def ev(event_id: str, event: str = "page_view", ts: str = T, who: str = "anon-1", **extra):
    return {"event_id": event_id, "ts": ts, "event": event, "anonymous_id": who, **extra}


def test_good_events_are_accepted_and_bad_ones_rejected_with_their_index_and_reason(live):
    r = live.send(
        "/v1/batch",
        {
            "batch": [
                ev("a"),
                ev("b", ts="yesterday"),
                ev("c", value="ten"),
                {"event": "x", "ts": T},
                ev("d", colour="red"),
                ev("e", "purchase", order_id="o1", value=12.5, currency="EUR"),
            ]
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 2
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [
        (1, "ts"),
        (2, "value"),
        (3, "anonymous_id"),
        (4, "colour"),
    ]
    assert "ISO 8601" in body["rejected"][0]["reason"]
    assert live.sql("SELECT event_id, value FROM events ORDER BY event_id") == [
        ("a", None),
        ("e", pytest.approx(12.5)),
    ]


def test_a_request_with_no_acceptable_event_gets_400_and_writes_nothing(live):
    r = live.send("/v1/batch", {"batch": [ev("a", ts="nope")]})
    assert r.status_code == 400
    assert r.json()["rejected"][0]["field"] == "ts"
    assert live.sql("SELECT count(*) FROM events") == [(0,)]


def test_resent_event_ids_are_stored_once(live):
    batch = {"batch": [ev("a"), ev("b", "view_item")]}
    assert live.send("/v1/batch", batch).status_code == 200
    assert live.send("/v1/batch", batch).status_code == 200
    live.send("/v1/batch", {"batch": [ev("a"), ev("a"), ev("c", "add_to_cart")]})
    assert live.sql("SELECT event_id, count(*) FROM events GROUP BY 1 ORDER BY 1") == [
        ("a", 1),
        ("b", 1),
        ("c", 1),
    ]


def test_a_visit_sent_over_many_requests_is_one_session_with_the_first_event_channel(live):
    live.send("/v1/batch", {"batch": [ev("a", utm_source="newsletter", utm_medium="email")]})
    live.flush()
    live.send(
        "/v1/batch",
        {
            "batch": [
                ev("b", "view_item", ts="2024-03-01T10:20:00Z", referrer="https://www.google.com/")
            ]
        },
    )
    live.flush()
    live.send("/v1/batch", {"batch": [ev("c", "add_to_cart", ts="2024-03-01T11:00:00Z")]})
    rows = live.sql("SELECT event_id, session_id, channel FROM events ORDER BY ts")
    assert rows[0][1] == rows[1][1] != rows[2][1]  # 20 min gap continues, 40 min gap starts anew
    assert [r[2] for r in rows] == ["email", "email", "direct"]


def test_write_key_can_be_the_basic_user_the_body_writekey_or_the_query_parameter(live):
    assert (
        live.client.post(
            "/v1/batch", json={"batch": [ev("a")]}, headers=basic(WRITE_KEY)
        ).status_code
        == 200
    )
    assert (
        live.client.post("/v1/batch", json={"batch": [ev("b")], "writeKey": WRITE_KEY}).status_code
        == 200
    )
    assert (
        live.client.post(
            f"/v1/batch?writeKey={WRITE_KEY}",
            content=json.dumps({"batch": [ev("c")]}),
            headers={"Content-Type": "text/plain"},
        ).status_code
        == 200
    )
    assert live.sql("SELECT count(*) FROM events") == [(3,)]


@pytest.mark.parametrize(
    "headers, body",
    [
        ({}, {"batch": [ev("a")]}),
        (basic("sfk_wrong"), {"batch": [ev("a")]}),
        ({}, {"batch": [ev("a")], "writeKey": "sfk_wrong"}),
        ({"Authorization": f"Bearer {ADMIN_PASSWORD}"}, {"batch": [ev("a")]}),
    ],
)
def test_missing_or_unknown_write_keys_get_401_and_write_nothing(live, headers, body):
    r = live.client.post("/v1/batch", json=body, headers=headers)
    assert r.status_code == 401
    assert "write key" in r.json()["error"]
    assert live.sql("SELECT count(*) FROM events") == [(0,)]


@pytest.mark.parametrize(
    "content, status",
    [
        (b"{not json", 400),
        (b"", 400),
        (b"[1, 2]", 422),
        (b'"text"', 422),
        (b'{"batch": {"event": "x"}}', 422),
        (b'{"batch": []}', 422),
        (b'{"batch": [1, "two", null]}', 400),
        (b'{"batch": [{"event": 5, "ts": true, "anonymous_id": []}]}', 400),
        (b'{"batch": [{"type": "track", "anonymousId": "a"}]}', 400),
    ],
)
def test_malformed_json_and_wrong_shapes_get_the_right_4xx(live, content, status):
    r = live.client.post(
        "/v1/batch",
        content=content,
        headers={**basic(WRITE_KEY), "Content-Type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert live.sql("SELECT count(*) FROM events") == [(0,)]


def test_oversized_bodies_get_413_even_when_gzipped_or_chunked(tmp_path):
    with LiveServer(tmp_path / "s.duckdb", max_body_bytes=20_000, max_event_bytes=2_000) as live:
        big = {"batch": [ev(f"e{i}", properties={"pad": "x" * 500}) for i in range(60)]}
        assert live.send("/v1/batch", big).status_code == 413
        bomb = gzip.compress(
            json.dumps({"batch": [ev("a", properties={"pad": "x" * 2_000_000})]}).encode()
        )
        assert len(bomb) < 20_000
        r = live.client.post(
            "/v1/batch", content=bomb, headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"}
        )
        assert r.status_code == 413

        def chunks():
            for _ in range(30):
                yield b" " * 1000

        r = live.client.post("/v1/batch", content=chunks(), headers=basic(WRITE_KEY))
        assert r.status_code == 413
        r = live.send(
            "/v1/batch", {"batch": [ev("small"), ev("large", properties={"pad": "x" * 3000})]}
        )
        assert r.status_code == 200 and r.json()["rejected"][0]["index"] == 1
        gz = gzip.compress(json.dumps({"batch": [ev("zipped")]}).encode())
        assert (
            live.client.post(
                "/v1/batch", content=gz, headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"}
            ).status_code
            == 200
        )
        assert live.sql("SELECT event_id FROM events ORDER BY 1") == [("small",), ("zipped",)]


def test_a_write_key_over_its_rate_gets_429_with_retry_after(tmp_path):
    with LiveServer(
        tmp_path / "s.duckdb", rate_events_per_second=0.5, rate_burst_events=10
    ) as live:
        assert (
            live.send("/v1/batch", {"batch": [ev(f"a{i}") for i in range(10)]}).status_code == 200
        )
        r = live.send("/v1/batch", {"batch": [ev("b")]})
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert live.sql("SELECT count(*) FROM events") == [(10,)]


def test_the_collector_answers_503_with_retry_after_while_the_writer_is_behind(tmp_path):
    with LiveServer(tmp_path / "s.duckdb", max_pending_events=3) as live:
        acknowledged = []
        with live.state.write_lock:  # the writer cannot load while we hold the store
            for i in range(6):
                r = live.send("/v1/batch", {"batch": [ev(f"a{i}"), ev(f"b{i}")]})
                if r.status_code == 200:
                    acknowledged += [f"a{i}", f"b{i}"]
                else:
                    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            assert len(acknowledged) == 4
        assert [r[0] for r in live.sql("SELECT event_id FROM events ORDER BY 1")] == sorted(
            acknowledged
        )


def test_only_the_stores_own_origins_may_send_from_a_browser(tmp_path):
    own = "https://shop.example"
    with LiveServer(tmp_path / "s.duckdb", allowed_origins=(own,)) as live:
        pre = live.client.options(
            "/v1/batch", headers={"Origin": own, "Access-Control-Request-Method": "POST"}
        )
        assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == own
        assert (
            live.client.options("/v1/batch", headers={"Origin": "https://evil.example"}).status_code
            == 403
        )
        ok = live.send("/v1/batch", {"batch": [ev("a")]}, headers={"Origin": own})
        assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == own
        bad = live.send(
            "/v1/batch", {"batch": [ev("b")]}, headers={"Origin": "https://evil.example"}
        )
        assert bad.status_code == 403 and "access-control-allow-origin" not in bad.headers
        assert live.sql("SELECT event_id FROM events") == [("a",)]


def test_a_write_key_cannot_read_anything(live):
    live.send("/v1/batch", {"batch": [ev("a")]})
    live.flush()
    paths = [
        p for p, ops in live.client.get("/openapi.json").json()["paths"].items() if "get" in ops
    ]
    admin_paths = [p for p in paths if p not in ("/v1/health",)]
    assert {"/v1/info", "/v1/events", "/v1/persons", "/v1/diagnosis"} <= set(admin_paths)
    for path in admin_paths:
        assert live.client.get(path, headers=basic(WRITE_KEY)).status_code == 401, path
        assert live.client.get(path, params={"writeKey": WRITE_KEY}).status_code == 401, path
        # a write key as a Bearer token is a failed admin attempt: 401, then 429 while they back off
        assert live.client.get(
            path, headers={"Authorization": "Bearer " + WRITE_KEY}
        ).status_code in (401, 429), path
        assert live.client.get(path, headers=ADMIN).status_code in (200, 422), (
            path
        )  # 422: required parameters
    assert live.client.post("/v1/keys", headers=basic(WRITE_KEY)).status_code == 401
    for page in (
        "/",
        "/events",
        "/persons.csv",
        "/keys",
        "/funnel",
        "/stages",
        "/retention",
        "/diagnosis",
    ):
        r = live.client.get(page, headers=basic(WRITE_KEY), follow_redirects=False)
        assert r.status_code in (303, 401), page


def test_keys_created_through_the_api_work_at_once_and_are_stored_hashed(live):
    r = live.client.post("/v1/keys", params={"name": "site"}, headers=ADMIN)
    assert r.status_code == 201
    key = r.json()["write_key"]
    assert live.send("/v1/batch", {"batch": [ev("a")]}, key=key).status_code == 200
    hashes = live.sql("SELECT key_hash, prefix FROM write_keys WHERE name = 'site'")
    assert hashes == [(auth.key_digest(key), key[:10])]


def test_the_transaction_mode_acknowledges_after_its_own_commit(tmp_path):
    with LiveServer(tmp_path / "s.duckdb", durability="transaction") as live:
        r = live.send("/v1/batch", {"batch": [ev("a"), ev("b", "view_item")]})
        assert r.status_code == 200
        with live.state.read_lock:  # no waiting for a writer: already committed
            assert live.state.reader.db.scalar("SELECT count(*) FROM events") == 2


def test_spooled_events_not_yet_loaded_are_loaded_at_the_next_start(tmp_path):
    db = tmp_path / "s.duckdb"
    with LiveServer(db) as live:
        live.send("/v1/batch", {"batch": [ev("a")]})
    spool = Path(str(db) + ".spool")
    record = {
        "event_id": "from-spool",
        "ts": "2024-03-01T10:05:00",
        "event": "view_item",
        "anonymous_id": "anon-1",
    }
    (spool / "99999999.jsonl").write_text(json.dumps(record) + "\n" + '{"event_id": "torn", "ts"')
    with LiveServer(db) as live:
        assert [r[0] for r in live.sql("SELECT event_id FROM events ORDER BY ts")] == [
            "a",
            "from-spool",
        ]
    assert (
        (spool / "99999999.jsonl").read_text().endswith("}\n")
    )  # the torn, never-acknowledged tail is cut


def test_the_admin_password_is_never_stored_or_logged_in_clear(tmp_path, monkeypatch, caplog):
    from shopfunnel.cli.serve import _admin_hash

    db = tmp_path / "s.duckdb"
    secret = "a-very-secret-admin-password"
    monkeypatch.setenv("SHOPFUNNEL_ADMIN_PASSWORD", secret)
    caplog.set_level(logging.DEBUG)
    stored = _admin_hash(str(db))
    assert stored.startswith("scrypt$") and secret not in stored
    assert _admin_hash(str(db)) == stored  # same password: the stored hash is kept
    with LiveServer(db) as live:
        live.client.post("/login", data={"password": "wrong-guess-123"}, follow_redirects=False)
        live.client.post("/login", data={"password": secret}, follow_redirects=False)
        live.client.get("/v1/info", headers={"Authorization": f"Bearer {secret}"})
    time.sleep(0.1)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in caplog.text and "wrong-guess-123" not in caplog.text


def test_health_needs_no_key_and_tells_no_data(live):
    r = httpx.get(live.url + "/v1/health")
    assert r.status_code == 200 and set(r.json()) == {"status", "pending_events"}


def test_segment_single_calls_and_their_short_paths_are_accepted(live):
    msg = {
        "anonymousId": "a1",
        "event": "Product Viewed",
        "messageId": "m1",
        "timestamp": T,
        "properties": {"product_id": "p1", "price": 3},
    }
    assert live.send("/v1/track", msg).status_code == 200
    assert live.send("/v1/t", {**msg, "messageId": "m2"}).status_code == 200
    assert (
        live.send("/v1/p", {"anonymousId": "a1", "messageId": "m3", "timestamp": T}).status_code
        == 200
    )
    assert live.send("/v1/identify", {"type": "track", "anonymousId": "a1"}).status_code == 422
    assert live.sql("SELECT event_id, event FROM events ORDER BY event_id") == [
        ("m1", "view_item"),
        ("m2", "view_item"),
        ("m3", "page_view"),
    ]
