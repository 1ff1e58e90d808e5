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
