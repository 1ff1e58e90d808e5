"""Fuzzing the API from its own OpenAPI description: no 5xx, no partial writes, and every
answer is one the document lists, with the documented content type and body.

Every generated request (valid and invalid bodies, parameters and types) goes to a
real server on loopback, with the credentials each route takes (the write key on the
collector, the admin token elsewhere). After each one the writer is drained and the store is
checked: a request answered with anything but 200 added nothing; a 200 added at most
the events it reported accepted, and every accepted event with an id is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from server.kit import ADMIN, WRITE_KEY, LiveServer, basic

EXAMPLES = 12
COLLECTOR = {
    "/v1/batch",
    "/v1/track",
    "/v1/page",
    "/v1/identify",
    "/v1/screen",
    "/v1/alias",
    "/v1/group",
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    db: Path = tmp_path_factory.mktemp("fuzz") / "s.duckdb"
    with LiveServer(db, rate_events_per_second=1e9, rate_burst_events=1e9) as server:
        yield server


def _count(server: LiveServer) -> int:
    return server.sql("SELECT count(*) FROM events")[0][0]


def _accepted_ids(body, rejected: set[int]) -> list[str]:
    events = body.get("batch") if isinstance(body, dict) and "batch" in body else [body]
    ids = []
    for i, event in enumerate(events if isinstance(events, list) else []):
        if i in rejected or not isinstance(event, dict):
            continue
        key = "messageId" if "type" in event else "event_id"
        value = event.get(key)
        if isinstance(value, str) and value:
            ids.append(value)
    return ids


def check(case, server: LiveServer) -> None:
    collector = case.method.upper() == "POST" and case.path in COLLECTOR
    before = _count(server)
    response = case.call(base_url=server.url, headers=basic(WRITE_KEY) if collector else ADMIN)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    after = _count(server)
    if not collector or response.status_code != 200:
        assert after == before, (case.path, response.status_code, response.text)
        return
    answer = response.json()
    assert before <= after <= before + answer["accepted"]
    rejected = {r["index"] for r in answer["rejected"]}
    for event_id in _accepted_ids(case.body, rejected):
        assert server.sql("SELECT count(*) FROM events WHERE event_id = ?", [event_id]) == [(1,)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_5xx_or_writes_part_of_what_it_was_refused(fuzz_server, mode):
    api = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= COLLECTOR | {
        "/v1/info",
        "/v1/events",
        "/v1/persons",
        "/v1/keys",
    }
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (operation.body or operation.query):
            continue  # nothing to make invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            check(case, fuzz_server)

        run()
