"""The outbox: each entry reaches each endpoint at least once, signed, with back-off, and
takes effect once at a receiver that dedupes on the idempotency key."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime, timedelta

import orjson
import pandas as pd
import pytest

from shopfunnel.errors import ConfigError
from shopfunnel.store.store import Store
from shopfunnel.webhooks import (
    RetryPolicy,
    SignatureError,
    add_endpoint,
    deliver_due,
    delivery_status,
    enqueue,
    enqueue_audience_changes,
    list_endpoints,
    remove_endpoint,
    retry_failed,
    verify_signature,
)
from shopfunnel.webhooks.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from webhooks.receiver import Receiver

T0 = datetime(2024, 5, 1, 9, 0, 0)
SECRET = "whsec_test_secret_for_the_receiver"


def changes(n: int, audience: str = "abandoned-carts", change: str = "enter") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "audience": [audience] * n,
            "person_id": [f"p{i}" for i in range(n)],
            "change": [change] * n,
            "at": [
                pd.Timestamp("2024-05-01T08:00:00Z") + pd.Timedelta(minutes=i) for i in range(n)
            ],
            "entry_id": [f"m{i}" for i in range(n)],
        }
    )


def deliveries(store: Store) -> pd.DataFrame:
    return store.db.df("SELECT * FROM webhook_deliveries ORDER BY idempotency_key")


# -- signing -------------------------------------------------------------------------------
def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    captured = {}

    def transport(url, body, headers, timeout):
        captured.update(body=body, headers=dict(headers))
        return 200

    with Store(":memory:") as store:
        add_endpoint(store, "https://hooks.example.com/x", secret=SECRET)
        enqueue(store, topic="test.ping", idempotency_key="k1", payload={"n": 1})
        before = int(time.time())
        deliver_due(store, now=T0, transport=transport)
        after = int(time.time())
    headers, body = captured["headers"], captured["body"]
    t = headers[TIMESTAMP_HEADER]
    assert before <= int(t) <= after  # the wall clock of the attempt
    expected = hmac.new(SECRET.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == "sha256=" + expected
    assert headers[ID_HEADER] == "k1"
    assert orjson.loads(body)["data"] == {"n": 1}


def test_verify_refuses_a_wrong_secret_a_changed_body_and_an_old_timestamp() -> None:
    body = b'{"id":"k"}'
    t = 1_700_000_000
    sig = "sha256=" + hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {TIMESTAMP_HEADER: str(t), SIGNATURE_HEADER: sig}
    assert verify_signature(SECRET, body, headers, now=t + 10) == t
    assert verify_signature(["old_secret_value_x", SECRET], body, headers, now=t) == t
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("another_secret_value", body, headers, now=t)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, body + b" ", headers, now=t)
    with pytest.raises(SignatureError, match="replay window"):
        verify_signature(SECRET, body, headers, now=t + 301)
    assert verify_signature(SECRET, body, headers, now=t + 300) == t  # the window includes its end
    with pytest.raises(SignatureError, match="no X-Shopfunnel-Timestamp"):
        verify_signature(SECRET, body, {SIGNATURE_HEADER: sig}, now=t)
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify_signature(SECRET, body, lower, now=t) == t


# -- enqueuing -----------------------------------------------------------------------------
def test_enqueue_ignores_a_key_it_already_holds(store: Store) -> None:
    add_endpoint(store, "https://hooks.example.com/x")
    assert enqueue(store, topic="t", idempotency_key="same", payload={"v": 1}) is True
    assert enqueue(store, topic="t", idempotency_key="same", payload={"v": 2}) is False
    assert store.db.rows("SELECT count(*) FROM webhook_outbox") == [(1,)]
    assert store.db.rows("SELECT count(*) FROM webhook_deliveries") == [(1,)]
    assert orjson.loads(store.db.scalar("SELECT body FROM webhook_outbox"))["data"] == {"v": 1}


def test_audience_changes_become_entered_and_exited_entries(store: Store) -> None:
    frame = pd.concat(
        [changes(1), changes(1, change="exit").assign(at=pd.Timestamp("2024-05-02T10:30:00Z"))]
    )
    assert enqueue_audience_changes(store, "abandoned-carts", frame) == 2
    assert enqueue_audience_changes(store, "abandoned-carts", frame) == 0  # the same history again
    rows = store.db.rows(
        "SELECT idempotency_key, topic, person_id, body FROM webhook_outbox "
        "ORDER BY idempotency_key"
    )
    assert [r[:3] for r in rows] == [
        ("audience:abandoned-carts:m0:enter", "audience.entered", "p0"),
        ("audience:abandoned-carts:m0:exit", "audience.exited", "p0"),
    ]
    entered, exited = (orjson.loads(r[3]) for r in rows)
    assert entered["data"] == {
        "audience": "abandoned-carts",
        "person_id": "p0",
        "entered_at": "2024-05-01T08:00:00.000000Z",
        "entry_id": "m0",
    }
    assert exited["data"] == {
        "audience": "abandoned-carts",
        "person_id": "p0",
        "exited_at": "2024-05-02T10:30:00.000000Z",
        "entry_id": "m0",
    }
    assert entered["id"] == "audience:abandoned-carts:m0:enter"
    assert entered["topic"] == "audience.entered"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("audience", "vip", "is not 'abandoned-carts'"),
        ("change", "left", "is not 'enter' or 'exit'"),
        ("entry_id", None, "entry_id is missing"),
    ],
)
def test_bad_audience_changes_are_refused_and_nothing_is_enqueued(
    store: Store, column: str, value: object, message: str
) -> None:
    add_endpoint(store, "https://hooks.example.com/x")
    frame = changes(3)
    frame.loc[2, column] = value
    with pytest.raises(ConfigError, match=f"row 2: .*{message}"):
        enqueue_audience_changes(store, "abandoned-carts", frame)
    assert store.db.rows("SELECT count(*) FROM webhook_outbox") == [(0,)]


def test_an_endpoint_gets_its_topics_and_the_entries_enqueued_after_it(store: Store) -> None:
    enqueue(store, topic="audience.entered", idempotency_key="before", payload={})
    exits = add_endpoint(store, "https://a.example/h", topics="audience.exited")
    every = add_endpoint(store, "https://b.example/h")
    enqueue_audience_changes(store, "vip", changes(1, "vip"))
    enqueue_audience_changes(store, "vip", changes(1, "vip", "exit"))
    got = store.db.rows("SELECT endpoint_id, idempotency_key FROM webhook_deliveries ORDER BY 1, 2")
    assert sorted(got) == sorted(
        [
            (exits.endpoint_id, "audience:vip:m0:exit"),
            (every.endpoint_id, "audience:vip:m0:enter"),
            (every.endpoint_id, "audience:vip:m0:exit"),
        ]
    )
    status = delivery_status(store).set_index("endpoint_id")
    assert status.loc["(none)", "pending"] == 1  # "before" has no endpoint
    assert status.loc[every.endpoint_id, "pending"] == 2


def test_endpoints_are_listed_without_secrets_and_removed_with_their_deliveries(
    store: Store,
) -> None:
    endpoint = add_endpoint(store, "https://a.example/h", secret=SECRET)
    enqueue(store, topic="t", idempotency_key="k", payload={})
    listed = list_endpoints(store)
    assert listed["url"].tolist() == ["https://a.example/h"]
    assert SECRET not in listed.to_csv()
    assert remove_endpoint(store, endpoint.endpoint_id) == 1
    assert store.db.rows("SELECT count(*) FROM webhook_deliveries") == [(0,)]
    with pytest.raises(ConfigError, match="no webhook endpoint"):
        remove_endpoint(store, endpoint.endpoint_id)


@pytest.mark.parametrize("url", ["ftp://x.example/h", "hooks.example.com", "https:///path"])
def test_an_endpoint_url_must_be_absolute_http(store: Store, url: str) -> None:
    with pytest.raises(ConfigError, match="absolute http"):
        add_endpoint(store, url)


# -- delivering ----------------------------------------------------------------------------
def test_every_entry_arrives_exactly_once_when_the_first_attempts_fail(store: Store) -> None:
    with Receiver(SECRET, fail_first=2) as receiver:
        add_endpoint(store, receiver.url, secret=SECRET)
        enqueue_audience_changes(store, "abandoned-carts", changes(5))
        first = deliver_due(store, now=T0)
        assert (first.attempted, first.delivered, first.retrying) == (5, 0, 5)
        # the back-off is respected: 30 s after the first attempt, not a second earlier
        assert deliver_due(store, now=T0 + timedelta(seconds=29)).attempted == 0
        second = deliver_due(store, now=T0 + timedelta(seconds=30))
        assert (second.attempted, second.delivered) == (5, 0)
        assert deliver_due(store, now=T0 + timedelta(seconds=89)).attempted == 0
        third = deliver_due(store, now=T0 + timedelta(seconds=90))
        assert (third.attempted, third.delivered) == (5, 5)
        assert deliver_due(store, now=T0 + timedelta(days=9)).attempted == 0
    assert receiver.bad_signatures == 0
    assert sorted(receiver.applied) == sorted(
        f"audience:abandoned-carts:m{i}:enter" for i in range(5)
    )
    assert set(receiver.applied_count.values()) == {1}
    assert set(receiver.attempts.values()) == {3}
    assert receiver.applied["audience:abandoned-carts:m3:enter"]["data"]["person_id"] == "p3"
    status = delivery_status(store).iloc[0]
    assert (status["pending"], status["delivered"], status["failed"]) == (0, 5, 0)


def test_the_back_off_doubles_up_to_its_cap_and_stops_after_max_attempts(store: Store) -> None:
    policy = RetryPolicy(first_delay_seconds=10, factor=2, max_delay_seconds=25, max_attempts=4)
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == [10, 20, 25, 25]
    add_endpoint(store, "https://down.example/h")
    enqueue(store, topic="t", idempotency_key="k", payload={})
    calls = []

    def refused(url, body, headers, timeout):
        calls.append(headers[ID_HEADER])
        raise ConnectionRefusedError("connection refused")

    at = T0
    for expected_wait in (10, 20, 25):
        report = deliver_due(store, now=at, policy=policy, transport=refused)
        assert (report.attempted, report.retrying) == (1, 1)
        row = deliveries(store).iloc[0]
        assert row["next_attempt_at"] == at + timedelta(seconds=expected_wait)
        assert "ConnectionRefusedError" in row["last_error"]
        at += timedelta(seconds=expected_wait)
    last = deliver_due(store, now=at, policy=policy, transport=refused)
    assert (last.attempted, last.failed) == (1, 1)
    assert deliveries(store).iloc[0]["status"] == "failed"
    assert (
        deliver_due(store, now=at + timedelta(days=30), policy=policy, transport=refused).attempted
        == 0
    )
    assert calls == ["k"] * 4
    assert retry_failed(store, now=at) == 1
    assert deliver_due(store, now=at, transport=lambda *a: 204).delivered == 1


def test_a_crash_between_the_post_and_the_mark_resends_the_same_key(store: Store) -> None:
    add_endpoint(store, "https://a.example/h", secret=SECRET)
    enqueue(store, topic="t", idempotency_key="k", payload={"x": 1})
    sent: list[tuple[str, bytes]] = []

    def received_then_crash(url, body, headers, timeout):
        sent.append((headers[ID_HEADER], body))
        raise KeyboardInterrupt  # the process dies after the receiver got the request

    with pytest.raises(KeyboardInterrupt):
        deliver_due(store, now=T0, transport=received_then_crash)
    assert deliveries(store).iloc[0]["status"] == "pending"

    def accept(url, body, headers, timeout):
        sent.append((headers[ID_HEADER], body))
        return 200

    assert deliver_due(store, now=T0 + timedelta(seconds=30), transport=accept).delivered == 1
    assert [k for k, _ in sent] == ["k", "k"]
    assert sent[0][1] == sent[1][1]  # the same bytes, so the receiver sees the same entry


def test_a_redirect_is_a_failed_attempt(store: Store) -> None:
    add_endpoint(store, "https://a.example/h")
    enqueue(store, topic="t", idempotency_key="k", payload={})
    report = deliver_due(store, now=T0, transport=lambda *a: 301)
    assert (report.delivered, report.retrying) == (0, 1)
    assert deliveries(store).iloc[0]["last_error"] == "HTTP 301"
