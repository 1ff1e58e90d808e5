"""A large load of rows that carry their sessions but no channel takes each session's channel
from a table filled before its insert (ADR 0196): the session's first row's channel, or the one
the store already holds for the session. The same loads must end where the insert's own
aggregates (the small loads' path, and the general path of a first load) end."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import T0, log
from shopfunnel.store import prepare as prepare_module
from shopfunnel.store import store as store_module
from shopfunnel.store.store import Store

INPUTS = [
    {},
    {"utm_source": "newsletter", "utm_medium": "email"},
    {"utm_source": "google", "utm_medium": "cpc"},
    {"referrer": "https://www.facebook.com/x"},
    {"referrer": "https://shop.example/p/2"},  # internal navigation: not a referral
]


def _events(loads: list[pd.DataFrame], *, streamed: bool, monkeypatch) -> list[tuple]:
    """The events after ``loads``, by the table filled first (``streamed``: every load is
    large) or by the insert's own aggregates (the first load by the general path, the
    others as small loads)."""
    fills = []
    fill = prepare_module.fill_first_channels

    def counted(*args, **kwargs):
        fills.append(1)
        return fill(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(prepare_module, "fill_first_channels", counted)  # the first load's
        m.setattr(store_module, "fill_first_channels", counted)  # the general path's
        if streamed:
            m.setattr(store_module, "_BIG_LOAD", 0)
        else:
            m.setattr(store_module, "first_load", lambda *args, **kwargs: None)
        with Store(":memory:") as store:
            for frame in loads:
                store.load(frame)
            # every load took the table, or none did
            assert len(fills) >= len(loads) if streamed else fills == []
            temporary = store.db.rows("SELECT table_name FROM duckdb_tables() WHERE temporary")
            assert temporary == []
            return store.db.rows(
                "SELECT event_id, session_id, channel, utm_source, person_id FROM events "
                "ORDER BY event_id"
            )


def test_a_session_the_store_holds_keeps_its_channel_and_a_new_one_takes_its_first_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = log(
        ("a", 0, "page_view", {"session_id": "s1", "utm_source": "google", "utm_medium": "cpc"}),
        ("b", 0, "page_view", {"session_id": "s2"}),
    )
    later = log(
        ("a", 5, "view_item", {"session_id": "s1", "utm_source": "newsletter"}),
        ("c", 9, "page_view", {"session_id": "s3", "referrer": "https://www.facebook.com/x"}),
        ("c", 9, "page_view", {"session_id": "s3", "utm_source": "newsletter"}),
    )
    later["event_id"] = ["f0", "f1", "f2"]
    streamed = _events([first, later], streamed=True, monkeypatch=monkeypatch)
    assert streamed == _events([first, later], streamed=False, monkeypatch=monkeypatch)
    channels = {(r[0], r[2]) for r in streamed}
    assert channels == {
        ("e0", "paid search"),
        ("e1", "direct"),
        ("f0", "paid search"),  # the stored session's channel, not the newsletter's
        ("f1", "organic social"),
        ("f2", "organic social"),  # its session's first row (the tie broken by the line)
    }


_row = st.fixed_dictionaries(
    {
        "who": st.integers(0, 3),
        "session": st.integers(0, 4),
        "minutes": st.sampled_from([0, 0, 1, 30, 90]),  # ties in time
        "inputs": st.integers(0, len(INPUTS) - 1),
        "user": st.sampled_from([None, None, None, "u1", "u2"]),
        "load": st.integers(0, 2),
    }
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=st.lists(_row, min_size=1, max_size=30))
def test_random_loads_take_the_channels_the_inserts_own_aggregates_give(
    monkeypatch: pytest.MonkeyPatch, spec: list[dict]
) -> None:
    """Sessions split across up to three loads, in any time order within a load."""
    rows: list[list[dict]] = [[], [], []]
    for i, s in enumerate(spec):
        rows[s["load"]].append(
            {
                "event_id": f"e{i}",
                "ts": T0 + timedelta(minutes=s["minutes"] + 100 * s["load"]),
                "event": "page_view",
                "anonymous_id": f"a{s['who']}",
                "user_id": s["user"],
                "session_id": f"s{s['session']}",
                "page": "https://shop.example/p/1",
                **INPUTS[s["inputs"]],
            }
        )
    loads = [pd.DataFrame(r) for r in rows if r]
    streamed = _events(loads, streamed=True, monkeypatch=monkeypatch)
    assert streamed == _events(loads, streamed=False, monkeypatch=monkeypatch)
    assert {r[0] for r in streamed} == {f"e{i}" for i in range(len(spec))}


def test_a_streamed_load_extends_a_kept_timeline_as_a_rebuild_would_count_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shopfunnel.funnel.api import funnel
    from shopfunnel.funnel.engine import LocalEngine
    from shopfunnel.store import timeline as tl_mod

    first = log(
        ("a", 0, "view", {"session_id": "s1", "utm_source": "google", "utm_medium": "cpc"}),
        ("b", 0, "view", {"session_id": "s2", "referrer": "https://www.facebook.com/x"}),
    )
    later = log(
        ("a", 5, "cart", {"session_id": "s1", "utm_source": "newsletter"}),
        ("c", 7, "view", {"session_id": "s3", "utm_source": "newsletter", "utm_medium": "email"}),
        ("c", 9, "cart", {"session_id": "s3"}),
    ).assign(event_id=["f0", "f1", "f2"])
    monkeypatch.setattr(store_module, "_BIG_LOAD", 0)  # the later load streams
    filled = []
    fill = store_module.fill_first_channels
    monkeypatch.setattr(
        store_module, "fill_first_channels", lambda *a, **k: filled.append(1) or fill(*a, **k)
    )
    with Store(tmp_path / "s.duckdb") as store:
        store.load(first)
        funnel(store, ["view"], allow_unknown=True)  # a funnel keeps the timeline
        store.load(later)
        assert filled == [1] and tl_mod.is_current(store), "streamed, and the timeline extended"
        channels = dict(store.db.rows("SELECT event_id, channel FROM events"))
        assert channels["f0"] == "paid search"  # the stored visit's, not the newsletter's
        live = funnel(store, ["view", "cart"], by="channel").breakdown
        columns = {row[0]: row[1] for row in store.db.rows("DESCRIBE events")}
        built = tl_mod.build(store.db, "events", '"person_id"', columns, key="reference")
        engine = LocalEngine(store, timeline=built)
        again = funnel(engine, ["view", "cart"], by="channel").breakdown
    pd.testing.assert_frame_equal(live, again)
    carts = live[live["step"] == 2].set_index("channel")["persons"].to_dict()
    # by the channel of each person's first step: a's view came by paid search, c's by email
    assert carts == {"email": 1, "organic social": 0, "paid search": 1}
