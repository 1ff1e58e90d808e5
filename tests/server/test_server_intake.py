"""Converting in worker processes (``convert_workers``) answers every request as converting
in the server's own process does, and stores the same events."""

from __future__ import annotations

import json

from server.kit import WRITE_KEY, LiveServer

T = "2024-03-01T10:00:00Z"
REQUESTS = [
    (
        "/v1/batch",
        {
            "batch": [
                {"event_id": "c1", "ts": T, "event": "page_view", "anonymous_id": "a"},
                {"event_id": "c2", "ts": "soon", "event": "page_view", "anonymous_id": "a"},
                {
                    "type": "track",
                    "event": "Order Completed",
                    "messageId": "s1",
                    "anonymousId": "a",
                    "timestamp": T,
                    "properties": {
                        "order_id": "o1",
                        "revenue": 25,
                        "currency": "eur",
                        "products": [{"product_id": "p", "price": 12.5, "quantity": 2}],
                    },
                    "context": {
                        "userAgent": "Mozilla/5.0 (iPhone)",
                        "page": {"url": "https://s.example/?utm_source=x"},
                    },
                },
                {"type": "track", "messageId": "s2", "anonymousId": "a", "timestamp": T},
            ],
            "context": {"campaign": {"source": "news"}},
        },
    ),
    (
        "/v1/track",
        {
            "event": "Product Viewed",
            "messageId": "s3",
            "userId": "u",
            "timestamp": T,
            "properties": {"product_id": "p", "price": 3},
        },
    ),
    ("/v1/page", {"type": "track", "anonymousId": "a"}),
    ("/v1/batch", {"batch": []}),
    ("/v1/batch", "not an object"),
    ("/v1/batch", {"batch": [{"event_id": "x", "ts": "never", "event": "e", "anonymous_id": "a"}]}),
]


def _answers(live: LiveServer) -> list[tuple[int, dict]]:
    out = [(r.status_code, r.json()) for r in (live.send(path, body) for path, body in REQUESTS)]
    bad_json = live.client.post(
        "/v1/batch",
        content=b"{nope",
        headers={"Content-Type": "application/json", **live.client.headers},
    )
    out.append((bad_json.status_code, {"code": bad_json.json()["code"]}))
    return out


def test_worker_processes_answer_and_store_as_the_server_itself(tmp_path):
    with LiveServer(tmp_path / "own.duckdb") as own:
        expected = _answers(own)
        stored = own.sql(
            "SELECT event_id, event, value, currency, device, utm_source, items FROM events ORDER BY 1"
        )
    with LiveServer(tmp_path / "workers.duckdb", convert_workers=1) as workers:
        assert workers.state._converters is not None
        assert json.dumps(_answers(workers)) == json.dumps(expected)
        assert (
            workers.sql(
                "SELECT event_id, event, value, currency, device, utm_source, items FROM events "
                "ORDER BY 1"
            )
            == stored
        )
    assert [s for s, _ in expected] == [200, 200, 422, 422, 422, 400, 400]
    assert [r[0] for r in stored] == ["c1", "s1", "s3"]


def _counting_conversions(monkeypatch) -> list[int]:
    """Record the size of every conversion the collector runs (in this process)."""
    from shopfunnel.server import intake

    seen: list[int] = []
    real = intake.incoming_many

    def counting(messages, **kwargs):
        seen.append(len(messages))
        return real(messages, **kwargs)

    monkeypatch.setattr(intake, "incoming_many", counting)
    return seen


def test_a_body_key_that_is_not_known_is_refused_before_any_event_is_converted(
    tmp_path, monkeypatch
):
    seen = _counting_conversions(monkeypatch)
    with LiveServer(tmp_path / "s.duckdb") as live:
        batch = [
            {"type": "track", "event": "x", "anonymousId": "a", "messageId": f"m{i}"}
            for i in range(50)
        ]
        refused = live.client.post("/v1/batch", json={"batch": batch, "writeKey": "sfk_guessed"})
        assert refused.status_code == 401 and seen == []
        taken = live.client.post("/v1/batch", json={"batch": batch, "writeKey": WRITE_KEY})
        assert taken.status_code == 200 and seen == [50]


def test_a_header_key_without_tokens_is_refused_before_its_body_is_converted(tmp_path, monkeypatch):
    seen = _counting_conversions(monkeypatch)
    with LiveServer(
        tmp_path / "s.duckdb", rate_events_per_second=0.001, rate_burst_events=20
    ) as live:
        batch = [
            {"type": "track", "event": "x", "anonymousId": "a", "messageId": f"m{i}"}
            for i in range(20)
        ]
        assert live.send("/v1/batch", {"batch": batch}).status_code == 200
        again = live.send("/v1/batch", {"batch": batch})
        assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1
        assert seen == [20]
