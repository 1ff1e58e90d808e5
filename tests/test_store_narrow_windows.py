"""Sessions and channels derived on the key columns (small loads, ADR 0184) are the ones the
whole-row windows derive (large loads): the same rows in, the same events out."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from shopfunnel.server.writer import records_table
from shopfunnel.store import store as store_module
from shopfunnel.store.store import Staged, Store

SOURCES = [
    {},
    {"utm_source": "newsletter", "utm_medium": "email"},
    {"referrer": "https://www.google.com/search?q=mug"},
    {"referrer": "https://shop.example/p/2"},  # internal navigation
    {"channel": "paid_social"},
]


def _rows(seed: int, start: int, n: int) -> list[dict]:
    rnd = random.Random(seed)
    rows, clock = [], {}
    for _ in range(n):
        who = f"a{rnd.randrange(6)}"
        # gaps around the 30-minute timeout, some far apart
        clock[who] = clock.get(who, start) + rnd.choice([5, 60, 1700, 1900, 20_000])
        row = {
            "event_id": f"e{seed}-{rnd.randrange(n * 2)}",  # repeats: the first one wins
            "event": rnd.choice(["page_view", "view_item", "add_to_cart", "purchase"]),
            "anonymous_id": who,
            "user_id": f"u{who}" if rnd.random() < 0.1 else None,
            "session_id": f"given-{rnd.randrange(3)}" if rnd.random() < 0.15 else None,
            "page": f"https://shop.example/p/{rnd.randrange(5)}",
            "properties": '{"title": "Mug"}' if rnd.random() < 0.5 else None,
            **rnd.choice(SOURCES),
        }
        row["ts"] = pa.scalar(clock[who] * 1_000_000, pa.timestamp("us")).as_py().isoformat()
        rows.append(row)
    return rows


def _load_all(tmp_path, name: str, batches: list[list[dict]]) -> list[tuple]:
    import orjson

    with Store(tmp_path / f"{name}.duckdb") as store:
        for rows in batches:
            data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
            store.load_staged(Staged("t", table=records_table(data)), on_error="skip")
        return store.db.rows(
            "SELECT event_id, ts, event, anonymous_id, user_id, session_id, channel, person_id "
            "FROM events ORDER BY event_id"
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_small_loads_derive_the_sessions_and_channels_large_loads_derive(
    tmp_path, monkeypatch, seed
) -> None:
    # a first load, then two that continue its visitors' sessions (ADR 0152)
    batches = [_rows(seed, 1_700_000_000, 150), _rows(seed + 10, 1_700_030_000, 120)]
    batches.append(_rows(seed + 20, 1_700_060_000, 120))
    narrow = _load_all(tmp_path, "narrow", batches)
    monkeypatch.setattr(store_module, "_BIG_LOAD", 0)  # every load takes the whole-row path
    wide = _load_all(tmp_path, "wide", batches)
    assert narrow == wide
    assert len({r[5] for r in narrow}) > 10  # sessions were derived, not all one
    assert {r[6] for r in narrow} >= {"direct", "email", "paid_social"}


# -- a session's channel, against a reference computed row by row ----------------------------
CHANNEL_INPUTS = [
    {},
    {"utm_source": "newsletter", "utm_medium": "email"},
    {"utm_source": "Facebook", "utm_medium": "cpc"},
    {"referrer": "https://www.google.com/search?q=mug"},
    {"referrer": "https://shop.example/p/2"},  # internal navigation: not a referral
    {"channel": "paid_social"},
    {"channel": "affiliate"},
]


def _derived_channel(db, row: dict) -> str:
    """The channel the store's rule gives one row alone (channels.channel_sql)."""
    from shopfunnel.store.channels import channel_sql

    expr = channel_sql("s", "m", "c", "r", "p")
    return db.scalar(
        f"SELECT {expr} FROM (SELECT ?::VARCHAR s, ?::VARCHAR m, ?::VARCHAR c, "
        "?::VARCHAR r, ?::VARCHAR p)",
        [row.get("utm_source"), row.get("utm_medium"), None, row.get("referrer"), row.get("page")],
    )


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_row = st.fixed_dictionaries(
    {
        "who": st.integers(0, 3),
        "dt": st.sampled_from([0, 0, 1, 60, 1900]),  # ties in time, and new visits
        "given_session": st.sampled_from([None, None, None, "g-1", "g-2"]),
        "inputs": st.integers(0, len(CHANNEL_INPUTS) - 1),
    }
)


@pytest.mark.parametrize("big", [False, True], ids=["key columns", "whole rows"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=st.lists(_row, min_size=1, max_size=40))
def test_a_sessions_channel_is_its_first_rows_in_time_then_input_order(
    tmp_path_factory, monkeypatch, big, spec
) -> None:
    """Each event without a channel of its own takes its session's: the first event's (by
    time, ties by the order of the input), its own channel when given, else the one the
    rules derive from its UTM values and referrer (GA4's session scope)."""
    import orjson

    if big:
        monkeypatch.setattr(store_module, "_BIG_LOAD", 0)
    clock: dict[int, int] = {}
    rows = []
    for i, s in enumerate(spec):
        clock[s["who"]] = clock.get(s["who"], 1_700_000_000) + s["dt"]
        row = {
            "event_id": f"e{i}",
            "event": "page_view",
            "anonymous_id": f"a{s['who']}",
            "session_id": s["given_session"],
            "page": "https://shop.example/p/1",
            "ts": pa.scalar(clock[s["who"]] * 1_000_000, pa.timestamp("us")).as_py().isoformat(),
            **CHANNEL_INPUTS[s["inputs"]],
        }
        rows.append(row)
    path = tmp_path_factory.mktemp("ch") / "s.duckdb"
    with Store(path) as store:
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        store.load_staged(Staged("t", table=records_table(data)), on_error="skip")
        stored = dict(
            (eid, (sid, ch))
            for eid, sid, ch in store.db.rows("SELECT event_id, session_id, channel FROM events")
        )
        first: dict[str, dict] = {}
        # input order, then a stable sort by time: the first row of each session
        for i in sorted(range(len(rows)), key=lambda i: rows[i]["ts"]):
            first.setdefault(stored[rows[i]["event_id"]][0], rows[i])
        for row in rows:
            sid, channel = stored[row["event_id"]]
            head = first[sid]
            expected = row.get("channel") or head.get("channel") or _derived_channel(store.db, head)
            assert channel == expected, (row, head)
