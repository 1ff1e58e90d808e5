"""While events arrive, the dashboard's funnels stay on the timeline and count what SQL counts."""

from __future__ import annotations

import time

from server.kit import ADMIN
from shopfunnel.funnel.api import funnel
from shopfunnel.funnel.engine import LocalEngine
from shopfunnel.store import timeline

STEPS = "page_view,view_item,add_to_cart,purchase"


def ev(event_id: str, event: str, minute: int, who: str, **extra):
    return {
        "event_id": event_id,
        "ts": f"2024-03-01T10:{minute:02d}:00Z",
        "event": event,
        "anonymous_id": who,
        **extra,
    }


def wait_for_timeline(live, timeout: float = 30.0) -> None:
    """Until the maintainer has built the base and the reader's timeline is current."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live.flush()
        with live.state.read_lock:
            if timeline.is_current(live.state.reader):
                return
        time.sleep(0.05)
    raise AssertionError("the live timeline did not become current")


def api_counts(live, **params) -> list[int]:
    r = live.client.get(
        "/v1/funnel", params={"steps": STEPS, "allow_unknown": "true", **params}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    return [s["persons"] for s in r.json()["steps"]]


def sql_counts(live, **kw) -> list[int]:
    with live.state.read_lock:
        reader = live.state.reader
        result = funnel(
            reader,
            STEPS.split(","),
            engine=LocalEngine(reader, timeline=False),
            allow_unknown=True,
            **kw,
        )
    return result.steps["persons"].tolist()


def test_funnels_stay_on_the_timeline_and_include_each_new_batch(live) -> None:
    live.send(
        "/v1/batch",
        {
            "batch": [
                ev("a1", "page_view", 0, "anon-a"),
                ev("a2", "view_item", 1, "anon-a"),
                ev("b1", "page_view", 0, "anon-b"),
            ]
        },
    )
    wait_for_timeline(live)
    maintainer = live.state.writer.maintainer
    deadline = time.monotonic() + 30
    while maintainer.builds == 0 and time.monotonic() < deadline:  # done, and counted
        time.sleep(0.05)
    builds = maintainer.builds
    assert builds == 1
    assert api_counts(live) == [2, 1, 0, 0]

    # the next batch: anon-a's visit goes on (no session id: the store continues it), then
    # signs in as amy and buys; anon-b comes back 50 minutes later (a new session)
    live.send(
        "/v1/batch",
        {
            "batch": [
                ev("a3", "add_to_cart", 10, "anon-a"),
                ev("a4", "login", 11, "anon-a", user_id="amy"),
                ev("a5", "purchase", 12, "anon-a", user_id="amy"),
                ev("b2", "view_item", 50, "anon-b"),
            ]
        },
    )
    wait_for_timeline(live)
    assert maintainer.builds == builds, "an append must extend the timeline, not rebuild it"
    with live.state.read_lock:
        tl = LocalEngine(live.state.reader).timeline()
    assert tl.side is not None
    assert api_counts(live) == sql_counts(live) == [2, 2, 1, 1]
    assert (
        api_counts(live, count_by="session") == sql_counts(live, count_by="session") == [2, 1, 1, 1]
    )
    rows = live.sql(
        "SELECT DISTINCT person_id, session_id FROM events WHERE anonymous_id = 'anon-a'"
    )
    assert [r[0] for r in rows] == ["amy"] and len(rows) == 1  # stitched, one visit


def test_the_maintainer_folds_a_grown_delta_into_a_new_base(live, monkeypatch) -> None:
    from shopfunnel.store import live as live_timeline

    live.send("/v1/batch", {"batch": [ev("a1", "page_view", 0, "anon-a")]})
    wait_for_timeline(live)
    monkeypatch.setattr(live_timeline, "COMPACT_MIN_ROWS", 0)  # fold at once
    live.send(
        "/v1/batch",
        {"batch": [ev(f"n{i}", "view_item", 1 + i, f"anon-{i or 'a'}") for i in range(5)]},
    )
    deadline = time.monotonic() + 30
    while live.state.writer.maintainer.compactions == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.state.writer.maintainer.compactions >= 1
    wait_for_timeline(live)
    assert api_counts(live) == sql_counts(live) == [1, 1, 0, 0]
