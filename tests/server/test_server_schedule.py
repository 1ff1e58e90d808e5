"""While `serve` runs, the followed audiences are refreshed and the scheduled flows run on a
schedule, and their entries, exits and messages reach a loopback receiver exactly once each,
signed, although the receiver fails the first attempts of every one."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import T0, log

from server.kit import LiveServer
from shopfunnel.audiences.flows import sends
from shopfunnel.audiences.membership import audience_history, refresh_audience
from shopfunnel.model import Model
from shopfunnel.store.store import Store
from shopfunnel.webhooks import RetryPolicy, add_endpoint
from webhooks.receiver import Receiver

SECRET = "whsec_server_schedule_audiences"
HOUR = 60
FAST = RetryPolicy(first_delay_seconds=0.05, factor=1.0, max_attempts=10)


def at(minutes: float) -> pd.Timestamp:
    return pd.Timestamp(T0).tz_localize(None) + pd.Timedelta(minutes=minutes)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited a minute for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_serve_refreshes_audiences_runs_flows_and_delivers_each_change_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shopfunnel.toml").write_text("[flows.cart-abandonment]\nschedule = true\n")
    db = tmp_path / "shop.duckdb"
    with Store(db) as store:
        store.load(log(("a", 0, "add_to_cart"), ("b", 2 * HOUR, "add_to_cart")))
        refresh_audience(store, "abandoned-carts", as_of=at(30), model=Model())  # follow it
    with Receiver(SECRET, fail_first=2) as receiver:
        with Store(db) as store:
            add_endpoint(store, receiver.url, secret=SECRET)
        live = LiveServer(
            db, webhook_interval_seconds=0.05, schedule_interval_seconds=0.05, webhook_retry=FAST
        )
        clock = {"now": at(5 * HOUR)}
        live.state.clock = lambda: clock["now"].to_pydatetime()
        with live:
            # 5h: a and b enter abandoned-carts; a's cart (0h) is due its message, b's (2h) not
            wait_for(lambda: len(receiver.applied) == 3, "two entries and one message")
            clock["now"] = at(6 * HOUR)  # b's message falls due
            wait_for(lambda: len(receiver.applied) == 4, "b's message")
            clock["now"] = at(31 * 24 * HOUR)  # both carts are past the 30-day lookback
            wait_for(lambda: len(receiver.applied) == 6, "two exits")
            time.sleep(0.5)  # more rounds at the same time: nothing new
            with live.state.write_lock:
                history = audience_history(live.state.store, "abandoned-carts")
                record = sends(live.state.store, "cart-abandonment")
                outbox = live.state.store.db.scalar("SELECT count(*) FROM webhook_outbox")
    by_topic = pd.Series([b["topic"] for b in receiver.applied.values()]).value_counts()
    assert by_topic.to_dict() == {"audience.entered": 2, "flow.due": 2, "audience.exited": 2}
    assert set(receiver.applied_count.values()) == {1} and outbox == 6
    assert all(n >= 3 for n in receiver.attempts.values())  # two refusals, then accepted
    assert receiver.bad_signatures == 0
    keys = set(receiver.applied)
    assert keys == {
        *(
            f"audience:abandoned-carts:{e}:{c}"
            for e in history["entry_id"]
            for c in ("enter", "exit")
        ),
        *(f"flow:cart-abandonment:{s}" for s in record["send_id"]),
    }
    assert sorted(record["person_id"]) == ["a", "b"]
    flows = {
        b["data"]["person_id"]: b["data"]
        for b in receiver.applied.values()
        if b["topic"] == "flow.due"
    }
    assert flows["a"]["due_at"].startswith("2024-03-01T16:00:00") and flows["b"][
        "due_at"
    ].startswith("2024-03-01T18:00:00")


def test_the_audiences_page_shows_audiences_flows_changes_and_deliveries_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.kit import ADMIN_PASSWORD

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shopfunnel.toml").write_text("[flows.cart-abandonment]\nschedule = true\n")
    script = "<script>alert('x')</script>"
    db = tmp_path / "shop.duckdb"
    with Store(db) as store:
        store.load(log((script, 0, "add_to_cart"), ("clock", 2 * HOUR, "page_view")))
        refresh_audience(store, "abandoned-carts", model=Model())
        add_endpoint(store, "https://hooks.example.com/in", secret=SECRET)
    with LiveServer(db, webhook_interval_seconds=0, schedule_interval_seconds=0) as live:
        assert live.client.get("/audiences", follow_redirects=False).status_code == 303
        live.client.post("/login", data={"password": ADMIN_PASSWORD})
        page = live.client.get("/audiences")
    assert page.status_code == 200
    assert script not in page.text and "&lt;script&gt;" in page.text  # the person, escaped
    rows = [line for line in page.text.splitlines() if line.startswith("<tr><td>")]
    audience = next(r for r in rows if r.startswith("<tr><td>abandoned-carts</td><td>builtin"))
    flow = next(r for r in rows if r.startswith("<tr><td>cart-abandonment</td>"))
    assert audience.endswith("<td>1</td><td>2024-03-01 14:00:00</td><td>True</td></tr>")
    assert "<td>True</td><td>0</td>" in flow  # scheduled, nothing sent yet
    assert "hooks.example.com" in page.text and "The schedule is off" in page.text
